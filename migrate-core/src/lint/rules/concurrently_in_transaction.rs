//! # concurrently-in-transaction
//!
//! **What**: a `CONCURRENTLY` statement (or `VACUUM`) in a migration that runs in a transaction.
//!
//! **Why**: PostgreSQL refuses it inside a transaction block (SQLSTATE 25001): the deploy fails
//! at runtime, after the build passed.
//!
//! **Instead**: mark the migration `-- migrate:no-transaction` (and keep such statements in a
//! migration of their own).

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    summary: "CONCURRENTLY cannot run inside a transaction",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if !(ctx.in_transaction && ctx.classified.concurrently) {
        return Vec::new();
    }
    vec![Finding {
        message: format!(
            "`{}` cannot run inside a transaction block, and this migration runs in one (it would fail with SQLSTATE 25001)",
            ctx.statement()
        ),
        help: format!(
            "add this line to the header of {}:\n-- migrate:no-transaction",
            ctx.migration.path
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_concurrently_in_a_transaction() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);"
                ],
                "concurrently-in-transaction"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_in_a_no_transaction_migration() {
        assert!(hits(&[BASE, "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"], "concurrently-in-transaction").is_empty());
    }
}
