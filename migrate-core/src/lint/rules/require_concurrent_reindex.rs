//! # require-concurrent-reindex
//!
//! **What**: `REINDEX` without `CONCURRENTLY`.
//!
//! **Why it stalls traffic**: SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each
//! index being rebuilt (queries using it wait) for the whole rebuild.
//!
//! **Instead**: `REINDEX ... CONCURRENTLY` (PostgreSQL 12+) in a no-transaction migration.

use super::{Op, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "require-concurrent-reindex",
    summary: "REINDEX without CONCURRENTLY blocks writes during the rebuild",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::Reindex])
        .map(|e| Finding {
            message: format!("REINDEX takes a SHARE lock on `{}` (every write waits) and ACCESS EXCLUSIVE on the rebuilt indexes for the whole rebuild", e.effect.table),
            help: format!("rebuild without blocking, in a migration of its own:\n-- migrate:no-transaction\n{};", with_concurrently(ctx.sql)),
        })
        .collect()
}

/// `REINDEX TABLE t` -> `REINDEX TABLE CONCURRENTLY t`.
fn with_concurrently(sql: &str) -> String {
    let mut words: Vec<&str> = sql.split_whitespace().collect();
    if let Some(at) = words
        .iter()
        .position(|w| ["TABLE", "INDEX", "SCHEMA", "DATABASE"].contains(&w.to_uppercase().as_str()))
    {
        words.insert(at + 1, "CONCURRENTLY");
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_reindex() {
        assert_eq!(
            hits(
                &[BASE, "REINDEX TABLE posts;"],
                "require-concurrent-reindex"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn flags_reindex_of_a_schema_a_database_or_the_catalogs() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "-- migrate:no-transaction\nREINDEX SCHEMA public;\nREINDEX DATABASE app;\nREINDEX SYSTEM app;"
                ],
                "require-concurrent-reindex"
            ),
            ["m/1.sql:4", "m/1.sql:5", "m/1.sql:6"]
        );
    }

    #[test]
    fn rewrite_inserts_concurrently() {
        assert_eq!(
            super::with_concurrently("REINDEX INDEX posts_user_idx"),
            "REINDEX INDEX CONCURRENTLY posts_user_idx"
        );
    }

    #[test]
    fn passes_concurrently() {
        assert!(
            hits(
                &[
                    BASE,
                    "-- migrate:no-transaction\nREINDEX TABLE CONCURRENTLY posts;"
                ],
                "require-concurrent-reindex"
            )
            .is_empty()
        );
    }
}
