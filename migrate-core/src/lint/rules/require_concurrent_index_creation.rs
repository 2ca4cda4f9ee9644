//! # require-concurrent-index-creation
//!
//! **What**: `CREATE INDEX` without `CONCURRENTLY` on a table that existed before the migration.
//!
//! **Why it stalls traffic**: the build holds a SHARE lock on the table for as long as it reads
//! every row: every INSERT, UPDATE and DELETE waits for the whole build.
//!
//! **Instead**: `CREATE INDEX CONCURRENTLY` (SHARE UPDATE EXCLUSIVE: writes go on) in its own
//! migration marked `-- migrate:no-transaction`. Indexes on tables created in the same migration
//! are fine.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "require-concurrent-index-creation",
    summary: "CREATE INDEX without CONCURRENTLY blocks writes for the whole build",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::CreateIndex])
        .map(|e| {
            let index = match &e.effect.detail {
                Detail::Index(i) if !i.is_empty() => i.clone(),
                _ => "the index".to_owned(),
            };
            let concurrent = ctx.sql.replacen("INDEX", "INDEX CONCURRENTLY", 1).replacen("index", "index concurrently", 1);
            Finding {
                message: format!(
                    "CREATE INDEX on existing table `{}` takes a SHARE lock, which blocks every write to `{}` until {index} is built",
                    e.effect.table, e.effect.table
                ),
                help: format!("build it without blocking writes, in a migration of its own:\n-- migrate:no-transaction\n{concurrent};"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn an_index_that_already_exists_is_not_built_again_by_if_not_exists() {
        let steps = [
            BASE,
            "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
            "CREATE INDEX IF NOT EXISTS users_email_idx ON users (email);\nCREATE INDEX IF NOT EXISTS users_name_idx ON users (name);",
        ];
        assert_eq!(
            hits(&steps, "require-concurrent-index-creation"),
            ["m/2.sql:4"]
        );
    }

    #[test]
    fn flags_an_index_on_an_existing_table() {
        assert_eq!(
            hits(
                &[BASE, "CREATE INDEX users_email_idx ON users (email);"],
                "require-concurrent-index-creation"
            ),
            ["m/1.sql:3"]
        );
    }

    #[test]
    fn passes_concurrently_and_new_tables() {
        assert!(hits(&[BASE, "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"], "require-concurrent-index-creation").is_empty());
        assert!(hits(&[BASE, "CREATE TABLE tags (id int, name text);\nCREATE INDEX tags_name_idx ON tags (name);"], "require-concurrent-index-creation").is_empty());
    }
}
