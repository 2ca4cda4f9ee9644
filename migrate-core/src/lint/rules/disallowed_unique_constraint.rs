//! # disallowed-unique-constraint
//!
//! **What**: `ADD UNIQUE` / `ADD PRIMARY KEY` (columns) on an existing table.
//!
//! **Why it stalls traffic**: it builds the index while holding ACCESS EXCLUSIVE: every read and
//! write waits for the whole build.
//!
//! **Instead**: `CREATE UNIQUE INDEX CONCURRENTLY` in a no-transaction migration, then
//! `ADD CONSTRAINT ... UNIQUE USING INDEX` (instant).

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "disallowed-unique-constraint",
    summary: "ADD UNIQUE / PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::AddUniqueOrPrimaryKey])
        .map(|e| {
            let table = &e.effect.table;
            let name = match &e.effect.detail {
                Detail::Constraint { name: Some(n), .. } => n.clone(),
                _ => format!("{table}_key"),
            };
            Finding {
                message: format!("this builds the index for {name} while holding ACCESS EXCLUSIVE on `{table}`, which blocks every read and write for the whole build"),
                help: format!(
                    "build the index first, then attach it (two migrations):\n-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY {name}_idx ON {table} (<columns>);\n-- next migration:\nALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}_idx;"
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_unique_and_primary_key_on_columns() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);"
                ],
                "disallowed-unique-constraint"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_using_index() {
        let steps = [
            BASE,
            "-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email);",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;",
        ];
        assert!(hits(&steps, "disallowed-unique-constraint").is_empty());
    }
}
