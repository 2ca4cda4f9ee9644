//! # renaming-table
//!
//! **What**: `ALTER TABLE ... RENAME TO` on an existing table.
//!
//! **Why**: the previous release, still serving during the deploy, queries the old name.
//!
//! **Instead**: create the new table (or a view under the new name), move readers and writers
//! over, drop the old name in a later release.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "renaming-table",
    summary: "a renamed table breaks the running previous release",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::Rename])
        .filter(|e| e.effect.detail == Detail::RenameTable)
        .map(|e| Finding {
            message: format!("renaming `{}` breaks every query of the previous release that still runs during the deploy", e.effect.table),
            help: "expand and contract: introduce the new name alongside the old (e.g. a view), move the code over, remove the old name in a later release".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_rename_table() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE posts RENAME TO articles;"],
                "renaming-table"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_on_a_new_table() {
        assert!(
            hits(
                &[
                    BASE,
                    "CREATE TABLE tmp_tags (id int);\nALTER TABLE tmp_tags RENAME TO tags;"
                ],
                "renaming-table"
            )
            .is_empty()
        );
    }
}
