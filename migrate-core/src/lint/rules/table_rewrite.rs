//! # table-rewrite
//!
//! **What**: `VACUUM FULL`, `CLUSTER` (with or without a table name: without one, every table
//! they apply to), `ALTER TABLE ... SET LOGGED/UNLOGGED`, `SET TABLESPACE` (and
//! `REFRESH MATERIALIZED VIEW` without CONCURRENTLY) on an existing relation.
//!
//! **Why it stalls traffic**: the relation is rewritten while holding ACCESS EXCLUSIVE: every
//! read and write waits for the whole rewrite.
//!
//! **Instead**: avoid it in a deploy; use pg_repack for bloat, `REFRESH ... CONCURRENTLY` for
//! materialized views with a unique index.

use super::{Op, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "table-rewrite",
    summary: "a full rewrite under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::VacuumFull, Op::Cluster, Op::SetLoggedUnlogged, Op::SetTablespace, Op::RefreshMaterializedView])
        .map(|e| {
            let help = if e.effect.op == Op::RefreshMaterializedView {
                format!("refresh without blocking readers (needs a unique index on the view):\nREFRESH MATERIALIZED VIEW CONCURRENTLY {};", e.effect.table)
            } else {
                "do not rewrite a live table in a deploy: reclaim space with pg_repack, or schedule it in a maintenance window outside migrations".to_owned()
            };
            Finding {
                message: format!("`{}` rewrites `{}` while holding ACCESS EXCLUSIVE, which blocks every read and write for the whole rewrite", ctx.statement(), e.effect.table),
                help,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_rewrites() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "CLUSTER posts USING posts_pkey;\nALTER TABLE users SET UNLOGGED;"
                ],
                "table-rewrite"
            ),
            ["m/1.sql:3", "m/1.sql:4"]
        );
    }

    #[test]
    fn flags_tablespace_moves_and_whole_database_rewrites() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE posts SET TABLESPACE archive;"],
                "table-rewrite"
            ),
            ["m/1.sql:3"]
        );
        assert_eq!(
            hits(
                &[BASE, "-- migrate:no-transaction\nVACUUM FULL;\nCLUSTER;"],
                "table-rewrite"
            ),
            ["m/1.sql:4", "m/1.sql:5"]
        );
    }

    #[test]
    fn passes_plain_vacuum() {
        assert!(
            hits(
                &[BASE, "-- migrate:no-transaction\nVACUUM ANALYZE posts;"],
                "table-rewrite"
            )
            .is_empty()
        );
    }
}
