//! # lock-held-across-slow-statement
//!
//! **What**: a statement that scans or rewrites (an index build, a validation, a backfill
//! UPDATE/DELETE/INSERT … SELECT, CREATE TABLE AS, a DO block…) while the transaction already
//! holds a write-blocking lock (SHARE or stronger) on an existing table from an earlier
//! statement.
//!
//! **Why it stalls traffic**: locks are released only at commit. An instant `ALTER TABLE` holds
//! ACCESS EXCLUSIVE for the rest of the transaction, so the slow statement after it runs with the
//! table frozen. The classic case: `ADD ... NOT VALID; DROP CONSTRAINT old; RENAME;
//! VALIDATE` in one transaction — the VALIDATE scan runs under the DROP's ACCESS EXCLUSIVE on
//! both tables.
//!
//! A table created in the same migration carries no traffic, but one filled from existing
//! tables (`CREATE TABLE … AS`, `SELECT … INTO`, `INSERT … SELECT`) is as big as its sources:
//! building an index on it, or scanning it, while the transaction holds a write-blocking lock on
//! an existing table stalls that table just the same, so it counts here. An empty new table
//! does not.
//!
//! **Instead**: split the migration; run the slow part in its own migration (a backfill in
//! batches).

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "lock-held-across-slow-statement",
    summary: "a scan or rewrite runs while an earlier statement's write-blocking lock is held",
    check,
    default_level: Level::Error,
};

/// `pg_index`, `pg_catalog.pg_class`, `information_schema.columns`: small, and no migration's
/// lock is on them.
fn is_system_catalog(table: &str) -> bool {
    table.starts_with("pg_catalog.")
        || table.starts_with("information_schema.")
        || (!table.contains('.') && table.starts_with("pg_"))
}

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if !ctx.in_transaction {
        return Vec::new();
    }
    let held = ctx.write_blocking_held();
    if held.is_empty() {
        return Vec::new();
    }
    let slow: Vec<String> = ctx
        .effects
        .iter()
        .filter(|e| {
            e.row.cost.is_slow()
                && !is_system_catalog(&e.effect.table)
                && (ctx.is_existing(&e.effect.table) || ctx.filled_tables.contains(&e.effect.table))
        })
        .map(|e| format!("{:?} `{}`", e.row.cost, e.effect.table).to_lowercase())
        .collect();
    if slow.is_empty() && !ctx.classified.opaque {
        return Vec::new();
    }
    let what = if slow.is_empty() {
        "runs code that may read or write any table".to_owned()
    } else {
        slow.join(", ")
            .replace("scan ", "scans ")
            .replace("rewrite ", "rewrites ")
    };
    let tables: Vec<&str> = ctx
        .held
        .iter()
        .filter(|(t, h)| h.mode.blocks_writes() && ctx.is_existing(t))
        .map(|(t, _)| t.as_str())
        .collect();
    vec![Finding {
        message: format!(
            "this statement {what} while the transaction holds {}; locks are kept until commit, so `{}` stay blocked for the whole statement",
            held.join(", "),
            tables.join("`, `")
        ),
        help: format!(
            "split the migration: end it before line {}, and run `{}` in a migration of its own (a backfill: in batches)",
            ctx.span.line,
            ctx.statement()
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn an_index_on_a_table_filled_from_existing_ones_is_slow_under_a_held_lock() {
        let steps = [
            BASE,
            "LOCK TABLE users IN SHARE MODE;\nCREATE TABLE big AS SELECT * FROM posts;\nCREATE INDEX big_title ON big (title);",
            "ALTER TABLE users ADD COLUMN z int;\nCREATE TABLE big2 (id bigint, title text);\nINSERT INTO big2 SELECT id, title FROM posts;\nCREATE INDEX big2_title ON big2 (title);",
            // Empty new table: its index build is instant.
            "ALTER TABLE users ADD COLUMN y int;\nCREATE TABLE empty (id int);\nCREATE INDEX empty_id ON empty (id);",
            // Filled, but no write-blocking lock on an existing table is held.
            "CREATE TABLE big3 AS SELECT * FROM posts;\nCREATE INDEX big3_title ON big3 (title);",
        ];
        assert_eq!(
            hits(&steps, "lock-held-across-slow-statement"),
            ["m/1.sql:4", "m/1.sql:5", "m/2.sql:5", "m/2.sql:6"]
        );
    }

    #[test]
    fn flags_a_backfill_after_an_alter() {
        let body = "ALTER TABLE users ADD COLUMN active boolean;\nUPDATE users SET active = true;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:4"]
        );
        let body = "ALTER TABLE users ADD COLUMN score int;\nINSERT INTO posts (id, user_id) SELECT id, id FROM users;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:4"]
        );
    }

    /// PostgreSQL 17's `MERGE … RETURNING` parses, and is judged as the backfill it is.
    #[test]
    fn flags_a_merge_backfill_with_returning_after_an_alter() {
        let body = "ALTER TABLE users ADD COLUMN score int;\nMERGE INTO posts p USING users u ON p.user_id = u.id WHEN MATCHED THEN UPDATE SET title = 'Grüße' WHEN NOT MATCHED THEN INSERT (id, user_id) VALUES (u.id, u.id) RETURNING merge_action(), p.id;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:4"]
        );
        assert!(hits(&[BASE, body], "unknown-statement").is_empty());
    }

    #[test]
    fn flags_a_backfill_after_row_security_or_a_policy() {
        // Both take ACCESS EXCLUSIVE (measured on the server, see the lock model), held to commit.
        for first in [
            "ALTER TABLE users ENABLE ROW LEVEL SECURITY;",
            "CREATE POLICY own ON users USING (true);",
        ] {
            let body = format!("{first}\nUPDATE users SET name = lower(name);");
            assert_eq!(
                hits(&[BASE, &body], "lock-held-across-slow-statement"),
                ["m/1.sql:4"],
                "{first}"
            );
        }
    }

    #[test]
    fn reading_a_view_reads_the_tables_under_it() {
        // DROP VIEW holds ACCESS EXCLUSIVE on the view; the copy then reads `users` through it.
        let steps = [
            BASE,
            "CREATE VIEW user_names AS SELECT name FROM users;",
            "DROP VIEW user_names;\nCREATE VIEW user_names AS SELECT name FROM users;\nCREATE TABLE names_copy AS SELECT * FROM user_names;",
        ];
        assert_eq!(
            hits(&steps, "lock-held-across-slow-statement"),
            ["m/2.sql:5"]
        );
        // Without a lock held, the same copy stalls nobody.
        let steps = [
            BASE,
            "CREATE VIEW user_names AS SELECT name FROM users;",
            "CREATE TABLE names_copy AS SELECT * FROM user_names;",
        ];
        assert!(hits(&steps, "lock-held-across-slow-statement").is_empty());
    }

    #[test]
    fn reading_the_system_catalogs_under_a_lock_stalls_no_table() {
        // The catalogs are small and no migration's lock is on them.
        let body = "ALTER TABLE users ADD COLUMN x int;\nUPDATE pg_index SET indisready = false WHERE indrelid = (SELECT oid FROM pg_class WHERE relname = 'users');\nSELECT count(*) FROM pg_catalog.pg_attribute;";
        assert!(hits(&[BASE, body], "lock-held-across-slow-statement").is_empty());
    }

    #[test]
    fn flags_a_scan_under_an_explicit_lock_table() {
        let body = "LOCK TABLE users IN SHARE MODE;\nDELETE FROM users WHERE name IS NULL;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:4"]
        );
        let body = "LOCK users;\nSELECT count(*) FROM posts;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:4"]
        );
        // ACCESS SHARE blocks no write: reading under it stalls nobody.
        let body = "LOCK TABLE users IN ACCESS SHARE MODE;\nSELECT count(*) FROM users;";
        assert!(hits(&[BASE, body], "lock-held-across-slow-statement").is_empty());
    }

    #[test]
    fn flags_the_one_transaction_fk_replacement() {
        let body = "ALTER TABLE posts ADD CONSTRAINT posts_user_fk2 FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE posts DROP CONSTRAINT posts_user_fk;\nALTER TABLE posts RENAME CONSTRAINT posts_user_fk2 TO posts_user_fk;\nALTER TABLE posts VALIDATE CONSTRAINT posts_user_fk;";
        assert_eq!(
            hits(&[BASE, body], "lock-held-across-slow-statement"),
            ["m/1.sql:6"]
        );
    }

    #[test]
    fn passes_a_backfill_alone() {
        assert!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE users ADD COLUMN active boolean;",
                    "UPDATE users SET active = true;"
                ],
                "lock-held-across-slow-statement"
            )
            .is_empty()
        );
    }
}
