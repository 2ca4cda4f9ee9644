//! # require-concurrent-index-deletion
//!
//! **What**: `DROP INDEX` without `CONCURRENTLY`.
//!
//! **Why it stalls traffic**: it needs ACCESS EXCLUSIVE on the index's table. The drop itself is
//! instant, but the request queues behind every running query and every later query queues
//! behind it: reads included, the table freezes.
//!
//! **Instead**: `DROP INDEX CONCURRENTLY` in a migration marked `-- migrate:no-transaction`.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "require-concurrent-index-deletion",
    summary: "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::DropIndex])
        .map(|e| {
            let index = match &e.effect.detail {
                Detail::Index(i) => i.clone(),
                _ => String::new(),
            };
            Finding {
                message: format!(
                    "DROP INDEX {index} takes an ACCESS EXCLUSIVE lock on `{}`, which blocks every read and write of it while the request waits for running queries",
                    e.effect.table
                ),
                help: format!("drop it without blocking, in a migration of its own:\n-- migrate:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS {index};"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_drop_index() {
        assert_eq!(
            hits(
                &[BASE, "DROP INDEX posts_user_idx;"],
                "require-concurrent-index-deletion"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_concurrently() {
        assert!(
            hits(
                &[
                    BASE,
                    "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY posts_user_idx;"
                ],
                "require-concurrent-index-deletion"
            )
            .is_empty()
        );
    }
}
