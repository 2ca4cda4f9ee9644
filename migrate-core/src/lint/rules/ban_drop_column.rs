//! # ban-drop-column
//!
//! **What**: `ALTER TABLE ... DROP COLUMN` on an existing table.
//!
//! **Why**: destructive, and the previous release (still serving during the deploy) may select or
//! insert the column: its queries fail.
//!
//! **Instead**: stop using the column in a release first; drop it in a later one, with
//! `-- migrate:allow ban-drop-column: <which release stopped using it>`.

use super::{Op, column_of, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "ban-drop-column",
    summary: "dropping a column loses data and breaks the previous release",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::DropColumn])
        .map(|e| Finding {
            message: format!("dropping `{}`.`{}` destroys its data and breaks the previous release if it still reads or writes the column", e.effect.table, column_of(&e.effect)),
            help: "drop it only after a release that no longer uses it has been deployed everywhere".to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_drop_column() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE users DROP COLUMN name;"],
                "ban-drop-column"
            ),
            ["m/1.sql:3"]
        );
        let found =
            super::super::test_support::lint(&[BASE, "ALTER TABLE users DROP COLUMN name;"]);
        assert!(
            found[0]
                .message
                .starts_with("dropping `users`.`name` destroys its data"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn passes_with_an_allow() {
        let body = "-- migrate:allow ban-drop-column: unused since release 41\nALTER TABLE users DROP COLUMN name;";
        assert!(hits(&[BASE, body], "ban-drop-column").is_empty());
    }
}
