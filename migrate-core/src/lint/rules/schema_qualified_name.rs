//! # schema-qualified-name
//!
//! **What**: an object named with its schema (`CREATE TABLE app.users`, `REFERENCES
//! public.orgs`), in migrations run on every tenant schema of a database (`--each-schema`).
//!
//! **Why**: a fleet runs each tenant's migrations with the tenant's schema first in
//! `search_path`, so that unqualified names land in it. A name with its schema escapes that: every
//! tenant's run creates, alters or fills the one object in that schema, the first tenant's run
//! succeeds and the others fail on it, or change it again.
//!
//! **Instead**: leave the name unqualified. An object all tenants share on purpose (a registry in
//! `public`) belongs in a migration of its own, with
//! `-- migrate:allow schema-qualified-name: <reason>`.
//!
//! Off unless asked for: `migrate apply|status|plan|diff --each-schema` report it as a warning
//! (a migration already applied cannot be edited to allow it), and `schema-qualified-name =
//! "error"` under `[rules]` in `migrate.toml` makes it an error there and in the compiler (what
//! a host that migrates tenant schemas at startup embeds).
//!
//! `ALTER … SET SCHEMA other` is flagged too: it moves a tenant's object out of its schema.
//!
//! A table's column (`users.id`, `COMMENT ON COLUMN users.email`) and a setting (`SET LOCAL
//! app.tenant = …`) name no schema; a function called by a two-part name does. Names inside
//! string literals (`nextval('app.seq')`) and function bodies are not read.

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "schema-qualified-name",
    summary: "a name with its schema escapes a tenant's search_path",
    check,
    default_level: Level::Off,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let names = &ctx.classified.schema_qualified;
    if !names.is_empty() {
        let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        findings.push(Finding {
            message: format!(
                "{} names its schema: run on every tenant schema, each tenant's run reaches the same object instead of its own",
                listed.join(", ")
            ),
            help: "leave the name unqualified, so that it resolves in the tenant's schema (first in `search_path` while its migrations run)".to_owned(),
        });
    }
    if let Some(schema) = &ctx.classified.moves_to_schema {
        findings.push(Finding {
            message: format!(
                "`SET SCHEMA {schema}` moves the object into `{schema}`, out of the tenant's schema: run on every tenant schema, every tenant's run reaches that one schema instead of its own"
            ),
            help: "keep each tenant's objects in its schema; an object all tenants share belongs in a migration of its own".to_owned(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, lint_with};
    use crate::lint::config::LintConfig;
    use crate::lint::rule::Level;

    fn hits(bodies: &[&str]) -> Vec<String> {
        let mut config = LintConfig::default();
        config
            .levels
            .insert("schema-qualified-name".to_owned(), Level::Error);
        lint_with(bodies, &config)
            .iter()
            .filter(|d| d.check == "schema-qualified-name")
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn flags_every_kind_of_name_written_with_its_schema() {
        let found = hits(&[
            BASE,
            "CREATE TABLE app.commandes (id bigint REFERENCES public.users (id));\n\
             INSERT INTO \"Société\".journal SELECT id FROM users;\n\
             COMMENT ON COLUMN app.commandes.id IS 'numéro';",
        ]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains("`app.commandes`, `public.users` names its schema"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("`\"Société\".journal` names its schema"),
            "{found:#?}"
        );
        assert!(
            found[2].contains("`app.commandes.id` names its schema"),
            "{found:#?}"
        );
    }

    /// Functions called by a schema-qualified name reach one function for every tenant too.
    #[test]
    fn flags_functions_called_with_their_schema() {
        let found = hits(&[
            BASE,
            "ALTER TABLE users ALTER COLUMN email SET DEFAULT app.default_email();\n\
             CREATE INDEX CONCURRENTLY users_norm ON users (app.norm(email));\n\
             SELECT pg_catalog.now(), pg_catalog /* c */ . version();",
        ]);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("`app.default_email` names its schema"),
            "{found:#?}"
        );
        assert!(
            found[1].contains("`app.norm` names its schema"),
            "{found:#?}"
        );
    }

    /// A column named with its table, a setting of an extension's namespace, a comment inside
    /// a system name: none names a tenant-escaping schema.
    #[test]
    fn passes_columns_settings_and_commented_system_names() {
        assert!(
            hits(&[
                BASE,
                "CREATE SEQUENCE s;\n\
                 ALTER SEQUENCE s OWNED BY users.id;\n\
                 COMMENT ON COLUMN users.email IS 'adresse';\n\
                 CREATE FUNCTION f(p users.email%TYPE) RETURNS users.email%TYPE LANGUAGE sql AS 'select p';\n\
                 SET LOCAL app.tenant_id = '42';\n\
                 RESET app.flag;\n\
                 CREATE VIEW v AS SELECT relname FROM pg_catalog /* système */ . pg_class;",
            ])
            .is_empty()
        );
        let found = hits(&[BASE, "COMMENT ON COLUMN app.users.email IS 'x';"]);
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    #[test]
    fn passes_unqualified_names_columns_of_tables_and_the_system_schemas() {
        assert!(
            hits(&[
                BASE,
                "CREATE TABLE commandes (id bigint REFERENCES users (id));\n\
                 UPDATE posts SET title = users.name FROM users WHERE posts.user_id = users.id;\n\
                 CREATE VIEW classes AS SELECT relname FROM pg_catalog.pg_class;\n\
                 CREATE VIEW colonnes AS SELECT column_name FROM information_schema.columns;",
            ])
            .is_empty()
        );
    }

    /// Moving an object into a named schema takes it out of the tenant's, whatever kind it is.
    #[test]
    fn flags_objects_moved_into_another_schema() {
        let found = hits(&[
            BASE,
            "ALTER TABLE users SET SCHEMA partagé;\n\
             ALTER FUNCTION f(int) SET SCHEMA \"Grüße\";\n\
             ALTER TABLE users RENAME TO membres;",
        ]);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains(
                "`SET SCHEMA partagé` moves the object into `partagé`, out of the tenant's schema"
            ),
            "{found:#?}"
        );
        assert!(
            found[1].contains("moves the object into `\"Grüße\"`, out of"),
            "{found:#?}"
        );
    }

    /// Off by default: a project without tenants names schemas freely.
    #[test]
    fn is_off_unless_asked_for() {
        let findings = super::super::test_support::lint(&[BASE, "CREATE TABLE app.t (id int);"]);
        assert!(
            findings.iter().all(|d| d.check != "schema-qualified-name"),
            "{findings:#?}"
        );
    }
}
