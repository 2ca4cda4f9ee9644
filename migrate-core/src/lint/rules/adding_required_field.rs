//! # adding-required-field
//!
//! **What**: `ADD COLUMN ... NOT NULL` without a `DEFAULT` on an existing table.
//!
//! **Why**: existing rows would have NULL in it: on a non-empty table the statement fails
//! (SQLSTATE 23502) and the deploy with it.
//!
//! **Instead**: give it a constant default (instant since PostgreSQL 11), or add it nullable.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "adding-required-field",
    summary: "ADD COLUMN NOT NULL without a default fails on a non-empty table",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::AddColumn])
        .filter_map(|e| match &e.effect.detail {
            Detail::RequiredColumn(column) => Some(Finding {
                message: format!("`{column}` is NOT NULL without a default: on a non-empty `{}` this fails with SQLSTATE 23502 (existing rows have no value)", e.effect.table),
                help: format!("give it a constant default (instant), e.g.\nALTER TABLE {} ADD COLUMN {column} <type> NOT NULL DEFAULT <constant>;", e.effect.table),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_not_null_without_default() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE users ADD COLUMN plan text NOT NULL;"],
                "adding-required-field"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_with_default_or_nullable() {
        assert!(hits(&[BASE, "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\nALTER TABLE users ADD COLUMN note text;"], "adding-required-field").is_empty());
    }
}
