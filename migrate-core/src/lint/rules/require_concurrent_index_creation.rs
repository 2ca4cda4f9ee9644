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

use squawk_syntax::ast;

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

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
            let concurrent = with_concurrently(ctx.sql);
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

/// The statement with `CONCURRENTLY` right after its `INDEX` keyword, found in the syntax tree:
/// an index named `index_…`, a predicate mentioning 'INDEX' or another spelling of the keyword
/// does not move it. The statement as written when it cannot be parsed alone.
fn with_concurrently(sql: &str) -> String {
    let keyword_end = crate::analysis::statements::parse_source(sql).and_then(|(parse, _)| {
        parse.tree().stmts().find_map(|stmt| match stmt {
            ast::Stmt::CreateIndex(create) => create
                .index_token()
                .map(|token| usize::from(token.text_range().end())),
            _ => None,
        })
    });
    // A token ends on a character boundary; `get` refuses anything else all the same.
    match keyword_end.and_then(|end| Some((sql.get(..end)?, sql.get(end..)?))) {
        Some((head, tail)) => format!("{head} CONCURRENTLY{tail}"),
        None => sql.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits, lint};

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

    /// An index goes with its column or its table: `IF NOT EXISTS` of the same name builds it
    /// again (a miss on crates.io's migrations, where `DROP COLUMN id` had dropped it).
    #[test]
    fn an_index_dropped_with_its_column_or_table_is_built_again_by_if_not_exists() {
        let created = "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email) WHERE name <> '';";
        for drop in [
            "-- migrate:allow ban-drop-column: moved to profiles\nALTER TABLE users DROP COLUMN name;",
            "-- migrate:allow ban-drop-column: moved to profiles\nALTER TABLE users DROP COLUMN email;",
        ] {
            let steps = [
                BASE,
                created,
                drop,
                "CREATE INDEX IF NOT EXISTS users_email_idx ON users (id);",
            ];
            assert_eq!(
                hits(&steps, "require-concurrent-index-creation"),
                ["m/3.sql:3"],
                "{drop}"
            );
        }
        let steps = [
            BASE,
            "CREATE TABLE tags (id int, label text);\nCREATE INDEX tags_label ON tags (label);",
            "-- migrate:allow ban-drop-table: replaced\nDROP TABLE tags;\nCREATE TABLE labels (id int, label text);",
            "CREATE INDEX IF NOT EXISTS tags_label ON users (name);",
        ];
        assert_eq!(
            hits(&steps, "require-concurrent-index-creation"),
            ["m/3.sql:3"]
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

    /// The help's rewrite puts CONCURRENTLY after the INDEX keyword, whatever the index is
    /// called (a name starting with "index" took the keyword's place) and however it is spelled.
    #[test]
    fn the_rewrite_adds_concurrently_after_the_index_keyword_only() {
        for (statement, rewrite) in [
            (
                "CREATE INDEX index_users_on_email ON users (email)",
                "CREATE INDEX CONCURRENTLY index_users_on_email ON users (email)",
            ),
            (
                "create unique index idx_indexed on users (email)",
                "create unique index CONCURRENTLY idx_indexed on users (email)",
            ),
            (
                "CREATE INDEX\n  \"Index Über\" ON users USING btree (name) WHERE name <> 'INDEX'",
                "CREATE INDEX CONCURRENTLY\n  \"Index Über\" ON users USING btree (name) WHERE name <> 'INDEX'",
            ),
            (
                "CREATE INDEX ON users (email)",
                "CREATE INDEX CONCURRENTLY ON users (email)",
            ),
        ] {
            let diagnostics = lint(&[BASE, &format!("{statement};")]);
            let help = diagnostics
                .iter()
                .find(|d| d.check == "require-concurrent-index-creation")
                .and_then(|d| d.help.clone())
                .unwrap_or_default();
            let expected = format!(
                "build it without blocking writes, in a migration of its own:\n-- migrate:no-transaction\n{rewrite};\n"
            );
            assert!(help.starts_with(&expected), "{statement}: {help}");
        }
    }

    #[test]
    fn passes_concurrently_and_new_tables() {
        assert!(hits(&[BASE, "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"], "require-concurrent-index-creation").is_empty());
        assert!(hits(&[BASE, "CREATE TABLE tags (id int, name text);\nCREATE INDEX tags_name_idx ON tags (name);"], "require-concurrent-index-creation").is_empty());
    }
}
