//! # adding-field-with-volatile-default
//!
//! **What**: `ADD COLUMN` with a volatile default (`random()`, `gen_random_uuid()`,
//! `clock_timestamp()`, `nextval()`…), a `serial` type, an identity or a stored generated column
//! (a virtual one, PostgreSQL 18's default kind, is computed when read and writes nothing: it
//! passes when the target is 18 or later).
//!
//! **Why it stalls traffic**: every row needs its own value, so PostgreSQL rewrites the table and
//! all its indexes under ACCESS EXCLUSIVE. (A constant or `now()` default is instant since 11.)
//!
//! **Instead**: add the column nullable without default; set the default; backfill in batches in
//! later migrations.

use super::{Op, column_of, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "adding-field-with-volatile-default",
    summary: "ADD COLUMN with a per-row value rewrites the table",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::AddColumnVolatileDefault])
        .map(|e| {
            let (table, column) = (&e.effect.table, column_of(&e.effect));
            Finding {
                message: format!("adding `{column}` computes a value per row, so PostgreSQL rewrites `{table}` and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"),
                help: format!(
                    "add it empty, then fill it in batches in later migrations:\nALTER TABLE {table} ADD COLUMN {column} <type>;\nALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT <expression>; -- new rows\n-- later migrations: UPDATE {table} SET {column} = <expression> WHERE <batch> AND {column} IS NULL;"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_volatile_defaults_serial_and_generated() {
        let body = "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();\nALTER TABLE users ADD COLUMN n serial;\nALTER TABLE users ADD COLUMN l int GENERATED ALWAYS AS (length(name)) STORED;";
        let hits = hits(&[BASE, body], "adding-field-with-volatile-default");
        assert_eq!(hits, ["m/1.sql:3", "m/1.sql:4", "m/1.sql:5"]);
    }

    #[test]
    fn a_function_of_the_migrations_is_volatile_unless_it_says_otherwise() {
        let functions = "CREATE FUNCTION make_token() RETURNS text LANGUAGE sql AS $$ SELECT md5(random()::text) $$;\nCREATE FUNCTION pinned() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;\nCREATE FUNCTION says_stable() RETURNS text LANGUAGE sql AS $$ SELECT 'stable' $$;";
        let body = "ALTER TABLE users ADD COLUMN token text NOT NULL DEFAULT make_token();\nALTER TABLE users ADD COLUMN p int DEFAULT pinned();\nALTER TABLE users ADD COLUMN s text DEFAULT public.says_stable();";
        assert_eq!(
            hits(
                &[BASE, functions, body],
                "adding-field-with-volatile-default"
            ),
            ["m/2.sql:3", "m/2.sql:5"]
        );
    }

    #[test]
    fn a_virtual_generated_column_writes_nothing_from_postgresql_18() {
        let body = "ALTER TABLE users ADD COLUMN l int GENERATED ALWAYS AS (length(name)) VIRTUAL;\nALTER TABLE users ADD COLUMN m int GENERATED ALWAYS AS (length(email));\nALTER TABLE users ADD COLUMN s int GENERATED ALWAYS AS (length(name)) STORED;";
        let hits_on = |version: u32| -> Vec<String> {
            let config = crate::lint::LintConfig {
                target_version: version,
                ..crate::lint::LintConfig::default()
            };
            crate::lint::lint_migrations(
                &super::super::test_support::migrations(&[BASE, body]),
                &config,
            )
            .iter()
            .filter(|d| d.check == "adding-field-with-volatile-default")
            .filter_map(|d| d.location.as_ref().map(|l| l.line))
            .map(|line| line.to_string())
            .collect()
        };
        assert_eq!(hits_on(18), ["5"]);
        // Before 18 the server has no virtual column: judged as the stored one.
        assert_eq!(hits_on(17), ["3", "4", "5"]);
    }

    #[test]
    fn passes_constant_and_now_defaults() {
        let body = "ALTER TABLE users ADD COLUMN active boolean DEFAULT true;\nALTER TABLE users ADD COLUMN created_at timestamptz DEFAULT now();";
        assert!(hits(&[BASE, body], "adding-field-with-volatile-default").is_empty());
    }
}
