//! # transaction-control
//!
//! **What**: `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`… inside a migration.
//!
//! **Why**: the runner wraps each migration and its history row in one transaction; a `COMMIT`
//! in the file would commit half a migration without its history row, so the next start runs
//! it again.
//!
//! **Instead**: remove it; split the file into several migrations, or mark it
//! `-- migrate:no-transaction` to run statement by statement.

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "transaction-control",
    summary: "transaction statements break the migration's atomicity",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if !ctx.classified.transaction_control {
        return Vec::new();
    }
    vec![Finding {
        message: format!("`{}` controls the transaction that the runner opens for this migration and its history row", ctx.statement()),
        help: "remove it: each migration already runs in one transaction; split the file into several migrations where a commit is needed".to_owned(),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_commit() {
        assert_eq!(
            hits(
                &[BASE, "BEGIN;\nALTER TABLE users ADD COLUMN x int;\nCOMMIT;"],
                "transaction-control"
            ),
            ["m/1.sql:3", "m/1.sql:5"]
        );
    }

    #[test]
    fn passes_without() {
        assert!(
            hits(
                &[BASE, "ALTER TABLE users ADD COLUMN x int;"],
                "transaction-control"
            )
            .is_empty()
        );
    }
}
