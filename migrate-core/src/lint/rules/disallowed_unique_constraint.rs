//! # disallowed-unique-constraint
//!
//! **What**: `ADD UNIQUE` / `ADD PRIMARY KEY` (columns) on an existing table, and `ADD COLUMN …
//! UNIQUE` / `PRIMARY KEY` (the index is built even though the new column is empty; measured on
//! PostgreSQL 15: ACCESS EXCLUSIVE and a scan of the table).
//!
//! **Why it stalls traffic**: it builds the index while holding ACCESS EXCLUSIVE: every read and
//! write waits for the whole build.
//!
//! **Instead**: `CREATE UNIQUE INDEX CONCURRENTLY` in a no-transaction migration, then
//! `ADD CONSTRAINT ... UNIQUE USING INDEX` (instant).

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "disallowed-unique-constraint",
    summary: "ADD UNIQUE / PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    let inline = on_existing(ctx, &[Op::AddColumnUnique]).map(|e| {
        let table = &e.effect.table;
        let column = match &e.effect.detail {
            Detail::Column(c) => c.as_str(),
            _ => "<column>",
        };
        Finding {
            message: format!("adding `{column}` with UNIQUE or PRIMARY KEY builds its index while holding ACCESS EXCLUSIVE on `{table}`, which blocks every read and write for the whole build"),
            help: format!(
                "add the column alone, build the index concurrently, then attach it (three migrations):\nALTER TABLE {table} ADD COLUMN {column} <type>;\n-- next migration:\n-- migrate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY {table}_{column}_key ON {table} ({column});\n-- next migration:\nALTER TABLE {table} ADD CONSTRAINT {table}_{column}_key UNIQUE USING INDEX {table}_{column}_key;"
            ),
        }
    });
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
        .chain(inline)
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
    fn flags_an_added_column_with_an_inline_unique_or_primary_key() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE users ADD COLUMN handle text UNIQUE;",
                    "CREATE TABLE tags (id int);\nALTER TABLE tags ADD COLUMN name text UNIQUE;",
                ],
                "disallowed-unique-constraint"
            ),
            ["m/1.sql:3"],
            "a table created in the same migration is exempt"
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
