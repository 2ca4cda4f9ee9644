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
//! Off unless asked for: `migrate apply|status|plan --each-schema` turn it on as an error, and
//! so does `schema-qualified-name = "error"` under `[rules]` in `migrate.toml` (what a host that
//! migrates tenant schemas at startup embeds).

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "schema-qualified-name",
    summary: "a name with its schema escapes a tenant's search_path",
    check,
    default_level: Level::Off,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    let names = &ctx.classified.schema_qualified;
    if names.is_empty() {
        return Vec::new();
    }
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    vec![Finding {
        message: format!(
            "{} names its schema: run on every tenant schema, each tenant's run reaches the same object instead of its own",
            listed.join(", ")
        ),
        help: "leave the name unqualified, so that it resolves in the tenant's schema (first in `search_path` while its migrations run)".to_owned(),
    }]
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
