//! # changing-column-type
//!
//! **What**: `ALTER COLUMN ... TYPE` that rewrites the table: everything but PostgreSQL's
//! binary-compatible changes (a longer `varchar`, `varchar` to `text`, a wider `numeric` of the
//! same scale), judged from the column's type in earlier migrations.
//!
//! **Why it stalls traffic**: the table and its indexes are rewritten under ACCESS EXCLUSIVE.
//!
//! **Instead**: add a new column, write to both, backfill in batches, switch reads, drop the old.

use super::{Op, column_of, on_existing};
use crate::lint::classify::Detail;
use crate::lint::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "changing-column-type",
    summary: "a type change that rewrites the table under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::AlterColumnTypeRewrite])
        .map(|e| {
            let (table, column) = (&e.effect.table, column_of(&e.effect));
            let new_type = match &e.effect.detail {
                Detail::TypeChange { new_type, .. } => new_type.clone(),
                _ => String::new(),
            };
            let old = ctx.facts.columns.get(&(table.clone(), column.to_owned())).map_or("an unknown type".to_owned(), |t| format!("`{t}`"));
            Finding {
                message: format!("changing `{table}`.`{column}` from {old} to `{new_type}` rewrites the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"),
                help: format!(
                    "expand and contract over several deploys:\nALTER TABLE {table} ADD COLUMN {column}_new {new_type};\n-- write both columns in the application; backfill {column}_new in batches;\n-- switch reads to {column}_new; then drop {column} and rename"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_rewriting_changes() {
        assert_eq!(
            hits(
                &[BASE, "ALTER TABLE users ALTER COLUMN id TYPE int;"],
                "changing-column-type"
            ),
            ["m/1.sql:3"]
        );
        assert_eq!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE posts ALTER COLUMN title TYPE varchar(20);"
                ],
                "changing-column-type"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_binary_compatible_changes() {
        assert!(hits(&[BASE, "ALTER TABLE posts ALTER COLUMN title TYPE varchar(80);\nALTER TABLE users ALTER COLUMN email TYPE text;"], "changing-column-type").is_empty());
    }
}
