//! # unknown-statement
//!
//! **What**: a statement, or an action of an `ALTER TABLE`, that the lock model does not know
//! (`CREATE POLICY`, `ALTER TABLE … ENABLE ROW LEVEL SECURITY`, `CREATE RULE`, `ALTER VIEW`, …).
//! Statements on objects other than tables (types, functions, schemas, sequences, views, roles,
//! grants, comments) and session commands are known to be harmless and are not reported.
//!
//! **Why**: the linter cannot tell what it locks, for how long, or whether a later statement of
//! the same transaction runs under that lock; passing it silently would claim it is safe.
//!
//! **Instead**: check its lock level in PostgreSQL's documentation. When it is fine, say so above
//! it with `-- migrate:allow unknown-statement: <reason>`. A warning by default; a project may
//! raise it to an error or turn it off.

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "unknown-statement",
    summary: "the lock model does not know this statement",
    check,
    default_level: Level::Warning,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if !ctx.classified.unknown {
        return Vec::new();
    }
    vec![Finding {
        message: format!(
            "the lock model does not know `{}`: which locks it takes and what it costs are not checked",
            ctx.statement()
        ),
        help: "check its lock level in PostgreSQL's documentation (\"Explicit Locking\" and the statement's page) and accept it only if it is safe for live traffic".to_owned(),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits, lint};
    use crate::analysis::Severity;

    #[test]
    fn flags_statements_and_actions_the_model_does_not_know() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE posts REPLICA IDENTITY FULL;\nALTER TABLE users OWNER TO postgres;\nALTER TABLE users ADD COLUMN x int, OWNER TO postgres;"
                ],
                "unknown-statement"
            ),
            ["m/1.sql:3", "m/1.sql:4", "m/1.sql:5"]
        );
        let findings = lint(&[BASE, "ALTER TABLE posts REPLICA IDENTITY FULL;"]);
        assert!(
            findings
                .iter()
                .all(|d| d.check != "unknown-statement" || d.severity == Severity::Warning),
            "a warning by default: {findings:?}"
        );
    }

    /// Common DDL of real migrations, each with its row in the lock model (checked on a live
    /// server by `tests/lock_ground_truth.rs`).
    #[test]
    fn knows_triggers_materialized_views_constraint_changes_and_statistics() {
        let statements = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\nCREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();\nALTER TRIGGER users_touch ON users RENAME TO users_touched;\nDROP TRIGGER IF EXISTS users_touched ON public.users;\nCREATE MATERIALIZED VIEW user_names AS SELECT name FROM users;\nDROP MATERIALIZED VIEW user_names;\nALTER TABLE posts ALTER CONSTRAINT posts_user_fk DEFERRABLE INITIALLY DEFERRED;\nCREATE STATISTICS users_stats ON email, name FROM users;\nALTER STATISTICS users_stats SET STATISTICS 500;\nDROP STATISTICS users_stats;";
        let ops: Vec<String> = super::super::test_support::lint(&[BASE, statements])
            .iter()
            .filter(|d| d.check == "unknown-statement")
            .map(ToString::to_string)
            .collect();
        assert_eq!(ops, Vec::<String>::new());
    }

    #[test]
    fn passes_known_and_table_free_statements() {
        assert!(
            hits(
                &[
                    BASE,
                    "CREATE TYPE mood AS ENUM ('ok');\nALTER TYPE mood ADD VALUE 'sad';\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1';\nCOMMENT ON TABLE users IS 'Utilisateurs 🚀';\nALTER TABLE users ENABLE ROW LEVEL SECURITY;\nCREATE POLICY own ON users USING (true);\nALTER POLICY own ON users USING (false);\nDROP POLICY own ON users;\nGRANT SELECT ON users TO PUBLIC;\nCREATE SEQUENCE s;\nCREATE VIEW v AS SELECT 1;\nSET search_path = public;\nALTER TABLE users ADD COLUMN x int;\nINSERT INTO users (id) VALUES (1);"
                ],
                "unknown-statement"
            )
            .is_empty()
        );
    }
}
