//! # changing-column-type
//!
//! **What**: `ALTER COLUMN ... TYPE` that rewrites the table: everything but PostgreSQL's
//! binary-compatible changes (a longer `varchar`, `varchar` to `text`, a wider `numeric` of the
//! same scale), judged from the column's type in earlier migrations.
//!
//! A change that keeps the rows still builds again every index that reads the column in an
//! expression or its predicate (`lower(keyword)`, `WHERE NOT processed`; measured: `varchar` to
//! `text` does it), which this rule flags as well.
//!
//! **Why it stalls traffic**: the table and its indexes are rewritten (or those indexes built
//! again, reading every row) under ACCESS EXCLUSIVE.
//!
//! **Instead**: add a new column, write to both, backfill in batches, switch reads, drop the old.
//! For the indexes alone: drop them concurrently first, change the type alone, build them again
//! concurrently.

use super::{Op, column_of, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "changing-column-type",
    summary: "a type change that rewrites the table under ACCESS EXCLUSIVE",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    let mut findings = rebuilt_indexes(ctx);
    findings.extend(on_existing(ctx, &[Op::AlterColumnTypeRewrite])
        .map(|e| {
            let (table, column) = (&e.effect.table, column_of(&e.effect));
            let (new_type, computed) = match &e.effect.detail {
                Detail::TypeChange { new_type, computed, .. } => (new_type.clone(), computed.clone()),
                _ => (String::new(), None),
            };
            let message = match (ctx.facts.columns.get(&(table.clone(), column.to_owned())), computed) {
                (_, Some(expression)) => format!("changing `{table}`.`{column}` to `{new_type}` computes every value anew (USING {expression}), so PostgreSQL rewrites the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"),
                (Some(old), None) => format!("changing `{table}`.`{column}` from `{old}` to `{new_type}` rewrites the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"),
                // Only a change between binary-compatible types is instant; without the old type
                // that cannot be shown, and the statement is judged as the rewrite it may be.
                (None, None) => format!("no earlier migration shows the type of `{table}`.`{column}`, so changing it to `{new_type}` may rewrite the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"),
            };
            Finding {
                message,
                help: format!(
                    "expand and contract over several deploys:\nALTER TABLE {table} ADD COLUMN {column}_new {new_type};\n-- write both columns in the application; backfill {column}_new in batches;\n-- switch reads to {column}_new; then drop {column} and rename"
                ),
            }
        }));
    findings
}

/// A type change that keeps the rows but builds again the indexes that compute on the column.
fn rebuilt_indexes(ctx: &StatementContext<'_>) -> Vec<Finding> {
    on_existing(ctx, &[Op::AlterColumnTypeRebuildsIndex])
        .map(|e| {
            let (table, column) = (&e.effect.table, column_of(&e.effect));
            let indexes = ctx.facts.computing_indexes(table, column);
            let listed = indexes
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ");
            Finding {
                message: format!(
                    "changing the type of `{table}`.`{column}` keeps its rows, but an expression or a predicate of {listed} reads the column, so PostgreSQL builds that index again, reading every row while holding ACCESS EXCLUSIVE, which blocks every read and write"
                ),
                help: format!(
                    "take the index out of the way first, in a no-transaction migration:\n{}\nthen change the type alone:\n{};\nthen build the index again with CREATE INDEX CONCURRENTLY, in a no-transaction migration",
                    indexes
                        .iter()
                        .map(|i| format!("DROP INDEX CONCURRENTLY {i};"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    ctx.statement()
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits, lint};

    #[test]
    fn a_domain_is_its_base_type_unless_it_checks_its_values() {
        // Measured on PostgreSQL 15: text -> a plain domain over text and back keep the table;
        // text -> a domain with a CHECK, or a domain over text -> varchar(20), rewrite it.
        let base = "CREATE DOMAIN short_text AS text;\nCREATE DOMAIN label AS text CHECK (VALUE <> '');\nCREATE TABLE notes (a text, b short_text, c text, d short_text);";
        let body = "ALTER TABLE notes ALTER COLUMN a TYPE short_text;\nALTER TABLE notes ALTER COLUMN b TYPE text;\nALTER TABLE notes ALTER COLUMN c TYPE label;\nALTER TABLE notes ALTER COLUMN d TYPE varchar(20);";
        assert_eq!(
            hits(&[base, body], "changing-column-type"),
            ["m/1.sql:5", "m/1.sql:6"]
        );
        // A constraint added later makes the domain a checking one; leaving it costs nothing.
        let later = "ALTER DOMAIN short_text ADD CONSTRAINT short CHECK (length(VALUE) < 10);\nALTER TABLE notes ALTER COLUMN c TYPE short_text;\nALTER TABLE notes ALTER COLUMN b TYPE text;";
        assert_eq!(hits(&[base, later], "changing-column-type"), ["m/1.sql:4"]);
    }

    #[test]
    fn a_using_expression_rewrites_unless_it_is_the_column_or_its_cast() {
        // Measured on PostgreSQL 15: `USING title`, `USING title::varchar(80)` and
        // `USING CAST(title AS text)` keep the table; `USING lower(title)` rewrites it.
        let change = |using: &str| {
            hits(
                &[
                    BASE,
                    &format!(
                        "ALTER TABLE posts ALTER COLUMN title TYPE varchar(80) USING {using};"
                    ),
                ],
                "changing-column-type",
            )
        };
        assert!(change("title").is_empty());
        assert!(change("title::varchar(80)").is_empty());
        assert!(change("CAST(title AS text)").is_empty());
        assert_eq!(change("lower(title)"), ["m/1.sql:3"]);
        assert_eq!(
            message_for("ALTER TABLE posts ALTER COLUMN title TYPE text USING lower(title);"),
            "changing `posts`.`title` to `text` computes every value anew (USING lower(title)), so PostgreSQL rewrites the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"
        );
    }

    /// The rule's message on `statement`, after the base schema.
    fn message_for(statement: &str) -> String {
        lint(&[BASE, statement])
            .into_iter()
            .find(|d| d.check == "changing-column-type")
            .map(|d| d.message)
            .unwrap_or_default()
    }

    #[test]
    fn a_type_change_that_keeps_the_rows_still_builds_an_index_computing_on_the_column() {
        // Measured on PostgreSQL 15 and 18: `varchar` to `text` keeps the table and a plain
        // index on the column, but builds `lower(mot)` and the partial index again.
        let keys = "CREATE TABLE mots (id bigint, mot varchar, rang int);\nCREATE INDEX mots_mot ON mots (mot);\nCREATE INDEX mots_rang ON mots (rang DESC);";
        let computing = [
            "CREATE INDEX mots_minuscules ON mots (lower(mot));",
            "CREATE INDEX mots_courts ON mots (id) WHERE mot <> '';",
            "CREATE INDEX mots_tri ON mots ((mot || '🔤'));",
        ];
        for index in computing {
            assert_eq!(
                hits(
                    &[
                        BASE,
                        &format!("{keys}\n{index}"),
                        "ALTER TABLE mots ALTER COLUMN mot TYPE text;"
                    ],
                    "changing-column-type"
                ),
                ["m/2.sql:3"],
                "{index}"
            );
        }
        // A plain index, an index on another column, one dropped, or one that went with a
        // dropped column: nothing is built again.
        for before in [
            "",
            "CREATE INDEX mots_rang_id ON mots ((rang + id));",
            "CREATE INDEX mots_minuscules ON mots (lower(mot));\nDROP INDEX mots_minuscules;",
        ] {
            assert!(
                hits(
                    &[
                        BASE,
                        &format!("{keys}\n{before}"),
                        "ALTER TABLE mots ALTER COLUMN mot TYPE text;"
                    ],
                    "changing-column-type"
                )
                .is_empty(),
                "{before}"
            );
        }
        let message = lint(&[
            BASE,
            &format!("{keys}\n{}", computing[0]),
            "ALTER TABLE mots ALTER COLUMN mot TYPE text;",
        ])
        .into_iter()
        .find(|d| d.check == "changing-column-type")
        .map(|d| (d.message, d.help.unwrap_or_default()))
        .unwrap_or_default();
        assert_eq!(
            message.0,
            "changing the type of `mots`.`mot` keeps its rows, but an expression or a predicate of `mots_minuscules` reads the column, so PostgreSQL builds that index again, reading every row while holding ACCESS EXCLUSIVE, which blocks every read and write"
        );
        assert!(
            message.1.starts_with("take the index out of the way first, in a no-transaction migration:\nDROP INDEX CONCURRENTLY mots_minuscules;\nthen change the type alone:\nALTER TABLE mots ALTER COLUMN mot TYPE text;\n"),
            "{}",
            message.1
        );
    }

    #[test]
    fn an_unknown_earlier_type_is_said_not_asserted() {
        assert_eq!(
            message_for("ALTER TABLE users ALTER COLUMN legacy TYPE int;"),
            "no earlier migration shows the type of `users`.`legacy`, so changing it to `int` may rewrite the table and its indexes while holding ACCESS EXCLUSIVE, which blocks every read and write"
        );
    }

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
    fn column_types_follow_table_column_and_schema_renames() {
        let grow = |renames: &str, table: &str, column: &str, ty: &str| {
            hits(
                &[
                    BASE,
                    renames,
                    &format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE {ty};"),
                ],
                "changing-column-type",
            )
        };
        assert!(
            grow(
                "ALTER TABLE users RENAME TO accounts;",
                "accounts",
                "email",
                "varchar(255)"
            )
            .is_empty()
        );
        assert!(
            grow(
                "ALTER TABLE users RENAME COLUMN email TO mail;",
                "users",
                "mail",
                "varchar(255)"
            )
            .is_empty()
        );
        assert!(
            grow(
                "ALTER TABLE users RENAME email TO mail;\nALTER TABLE users RENAME TO accounts;",
                "accounts",
                "mail",
                "text"
            )
            .is_empty()
        );
        assert!(
            grow(
                "CREATE SCHEMA app;\nALTER TABLE users SET SCHEMA app;",
                "app.users",
                "email",
                "varchar(255)"
            )
            .is_empty()
        );
        // Still judged: shrinking after a rename rewrites.
        assert_eq!(
            grow(
                "ALTER TABLE users RENAME TO accounts;",
                "accounts",
                "email",
                "varchar(10)"
            ),
            ["m/2.sql:3"]
        );
        // Renamed in the same migration that changes the type.
        assert!(
            hits(
                &[BASE, "ALTER TABLE posts RENAME TO articles;\nALTER TABLE articles ALTER COLUMN title TYPE varchar(80);"],
                "changing-column-type"
            )
            .is_empty()
        );
    }

    #[test]
    fn passes_binary_compatible_changes() {
        assert!(hits(&[BASE, "ALTER TABLE posts ALTER COLUMN title TYPE varchar(80);\nALTER TABLE users ALTER COLUMN email TYPE text;"], "changing-column-type").is_empty());
    }
}
