//! # ban-drop-table
//!
//! **What**: `DROP TABLE` of an existing table.
//!
//! **Why**: destructive, and the previous release (still serving during the deploy) may use it.
//!
//! **Instead**: stop using it in a release first; drop it in a later one, with
//! `-- migrate:allow ban-drop-table: <reason>`.

use super::{Op, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "ban-drop-table",
    summary: "dropping a table loses data and breaks the previous release",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::DropTable, Op::DropTableCascade])
        .take(1)
        .map(|e| Finding {
            message: format!("dropping `{}` destroys its data and breaks the previous release if it still uses the table", e.effect.table),
            help: "drop it only after a release that no longer uses it has been deployed everywhere".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_drop_table() {
        assert_eq!(
            hits(&[BASE, "DROP TABLE posts;"], "ban-drop-table"),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_a_table_created_in_the_same_migration() {
        assert!(
            hits(
                &[BASE, "CREATE TABLE scratch (id int);\nDROP TABLE scratch;"],
                "ban-drop-table"
            )
            .is_empty()
        );
    }
}
