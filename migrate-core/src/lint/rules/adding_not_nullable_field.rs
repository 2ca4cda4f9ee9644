//! # adding-not-nullable-field
//!
//! **What**: `ALTER COLUMN ... SET NOT NULL` on an existing table, and PostgreSQL 18's
//! `ADD COLUMN … GENERATED ALWAYS AS (…) VIRTUAL NOT NULL` (nothing is written, but every row is
//! checked).
//!
//! **Why it stalls traffic**: ACCESS EXCLUSIVE (reads wait too) while every row is checked.
//! From PostgreSQL 12 the scan is skipped when a valid `CHECK (col IS NOT NULL)` exists, which
//! this rule sees when an earlier migration added and validated one.
//!
//! **Instead**: `ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID`; `VALIDATE CONSTRAINT c`
//! in the next migration; then `SET NOT NULL` and `DROP CONSTRAINT c`.

use super::{Op, column_of, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "adding-not-nullable-field",
    summary: "SET NOT NULL scans the table under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::SetNotNull])
        .filter(|e| e.row.cost.is_slow())
        .map(|e| {
            let (table, column) = (&e.effect.table, column_of(&e.effect));
            Finding {
                message: format!("SET NOT NULL on `{table}`.`{column}` checks every row while holding ACCESS EXCLUSIVE, which blocks every read and write of `{table}`"),
                help: format!(
                    "prove the column first, one migration each:\nALTER TABLE {table} ADD CONSTRAINT {table}_{column}_not_null CHECK ({column} IS NOT NULL) NOT VALID;\nALTER TABLE {table} VALIDATE CONSTRAINT {table}_{column}_not_null;\nALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL; -- no scan on PostgreSQL 12+\nALTER TABLE {table} DROP CONSTRAINT {table}_{column}_not_null;"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    /// Measured on PostgreSQL 18: a virtual column writes nothing, but its NOT NULL reads every
    /// row under ACCESS EXCLUSIVE.
    #[test]
    fn a_virtual_column_that_is_not_null_checks_every_row() {
        let body = "ALTER TABLE users ADD COLUMN l int GENERATED ALWAYS AS (length(name)) VIRTUAL NOT NULL;\nALTER TABLE users ADD COLUMN m int GENERATED ALWAYS AS (length(email)) VIRTUAL;";
        let config = crate::lint::LintConfig {
            target_version: 18,
            ..crate::lint::LintConfig::default()
        };
        let lines: Vec<usize> = crate::lint::lint_migrations(
            &super::super::test_support::migrations(&[BASE, body]),
            &config,
        )
        .iter()
        .filter(|d| d.check == "adding-not-nullable-field")
        .filter_map(|d| d.location.as_ref().map(|l| l.line))
        .collect();
        assert_eq!(lines, [3]);
    }

    #[test]
    fn flags_set_not_null() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"],
                "adding-not-nullable-field"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_after_a_validated_check() {
        let steps = [
            BASE,
            "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_not_null;",
        ];
        assert!(hits(&steps, "adding-not-nullable-field").is_empty());
    }
}
