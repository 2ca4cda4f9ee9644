//! # renaming-column
//!
//! **What**: `ALTER TABLE ... RENAME COLUMN` on an existing table.
//!
//! **Why**: the instances of the previous release still running during the deploy use the old
//! name: their queries fail the moment the migration commits.
//!
//! **Instead**: expand and contract: add the new column, write both, backfill, switch reads,
//! drop the old one once no running release uses it.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "renaming-column",
    summary: "a renamed column breaks the running previous release",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::Rename])
        .filter(|e| e.effect.detail == Detail::RenameColumn)
        .map(|e| Finding {
            message: format!("renaming a column of `{}` breaks every query of the previous release that still runs during the deploy", e.effect.table),
            help: "add the new column, write both, backfill, move reads over, then drop the old column in a later release".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_rename_column() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE users RENAME COLUMN name TO full_name;"],
                "renaming-column"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_on_a_new_table() {
        assert!(hits(&[BASE, "CREATE TABLE tags (id int, nm text);\nALTER TABLE tags RENAME COLUMN nm TO name;"], "renaming-column").is_empty());
    }
}
