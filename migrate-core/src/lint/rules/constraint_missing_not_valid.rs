//! # constraint-missing-not-valid
//!
//! **What**: `ADD FOREIGN KEY` or `ADD CHECK` without `NOT VALID` on an existing table.
//!
//! **Why it stalls traffic**: the new constraint is checked against every row while the lock is
//! held: ACCESS EXCLUSIVE for a CHECK (reads wait too), SHARE ROW EXCLUSIVE on both tables for a
//! foreign key (writes to both wait).
//!
//! **Instead**: add it `NOT VALID` (instant), then `VALIDATE CONSTRAINT` in a later migration
//! (SHARE UPDATE EXCLUSIVE: traffic goes on during the scan).

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "constraint-missing-not-valid",
    summary: "ADD FOREIGN KEY / CHECK validates every row under the lock",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    // `ADD COLUMN … CHECK` and `ADD COLUMN … DEFAULT x REFERENCES` check every row too (measured
    // on PostgreSQL 15), and an inline constraint cannot be NOT VALID: it moves to its own ADD
    // CONSTRAINT.
    let inline = on_existing(ctx, &[Op::AddColumnCheck, Op::AddColumnReferencesValidated]).map(|e| {
        let table = &e.effect.table;
        let column = match &e.effect.detail {
            Detail::Column(c) => c.as_str(),
            _ => "<column>",
        };
        let (kind, name, constraint, locks) = match &e.effect.other {
            Some(other) if e.effect.op == Op::AddColumnReferencesValidated => (
                "REFERENCES",
                format!("{table}_{column}_fkey"),
                format!("FOREIGN KEY ({column}) REFERENCES {other}"),
                format!("ACCESS EXCLUSIVE on `{table}` and SHARE ROW EXCLUSIVE on `{other}`, which blocks every read and write of `{table}` and every write to `{other}`"),
            ),
            _ => (
                "CHECK",
                format!("{table}_{column}_check"),
                "CHECK (<condition>)".to_owned(),
                format!("ACCESS EXCLUSIVE on `{table}`, which blocks every read and write"),
            ),
        };
        Finding {
            message: format!("adding `{column}` with an inline {kind} checks every row of `{table}` while holding {locks}"),
            help: format!(
                "add the column without the constraint, add the constraint unchecked, and validate it in a later migration:\nALTER TABLE {table} ADD COLUMN {column} <type, default>;\nALTER TABLE {table} ADD CONSTRAINT {name} {constraint} NOT VALID;\n-- next migration:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"
            ),
        }
    });
    on_existing(ctx, &[Op::AddForeignKey, Op::AddCheck])
        .map(|e| {
            let name = match &e.effect.detail {
                Detail::Constraint { name: Some(n), .. } => n.clone(),
                _ => "<name>".to_owned(),
            };
            let table = &e.effect.table;
            // The statement's own strongest lock on each table: in a multi-action ALTER TABLE
            // the check runs under the union of every action's locks.
            let on_table = ctx.strongest_on(table).or(e.row.table);
            let locks = match (&e.effect.other, ctx.strongest_on(e.effect.other.as_deref().unwrap_or_default()).or(e.row.other)) {
                (Some(other), Some(mode)) if on_table == Some(crate::lint::locks::LockMode::AccessExclusive) => format!("ACCESS EXCLUSIVE on `{table}` and {} on `{other}`, which blocks every read and write of `{table}` and every write to `{other}`", mode.sql_name()),
                (Some(other), Some(mode)) => format!("{} on `{table}` and {} on `{other}`, which blocks every write to both", on_table.map_or("", |m| m.sql_name()), mode.sql_name()),
                _ => format!("{} on `{table}`, which {}", on_table.map_or("", |m| m.sql_name()), on_table.map_or("", |m| m.blocks())),
            };
            let several_actions = ctx.classified.effects.len() > 1;
            let help = match ctx.constraint_action(&name).filter(|_| several_actions) {
                Some(action) => format!(
                    "take it out of this statement, add it unchecked, and validate it in a later migration:\nALTER TABLE {table} ADD {action} NOT VALID;\n-- next migration:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"
                ),
                None => format!(
                    "add it without the check, then validate it in a later migration:\n{} NOT VALID;\n-- next migration:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};",
                    ctx.sql.trim_end()
                ),
            };
            Finding {
                message: format!("adding constraint {name} checks every row of `{table}` while holding {locks}"),
                help,
            }
        })
        .chain(inline)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_fk_and_check_without_not_valid() {
        let hits = hits(
            &[
                BASE,
                "ALTER TABLE posts ADD CONSTRAINT posts_user2_fk FOREIGN KEY (user_id) REFERENCES users (id);",
                "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email <> '');",
            ],
            "constraint-missing-not-valid",
        );
        assert_eq!(hits, ["m/1.sql:3", "m/2.sql:3"]);
    }

    #[test]
    fn flags_inline_checks_and_references_that_validate_existing_rows() {
        let hits = hits(
            &[
                BASE,
                "ALTER TABLE users ADD COLUMN age int CHECK (age > 0);",
                "ALTER TABLE posts ADD COLUMN editor_id bigint NOT NULL DEFAULT 1 REFERENCES users (id);",
                // Empty new column, no default: nothing to check (measured instant).
                "ALTER TABLE posts ADD COLUMN reviewer_id bigint REFERENCES users (id);",
            ],
            "constraint-missing-not-valid",
        );
        assert_eq!(hits, ["m/1.sql:3", "m/2.sql:3"]);
    }

    #[test]
    fn in_a_multi_action_alter_each_constraint_is_named_with_the_statement_s_strongest_lock() {
        let findings = super::super::test_support::lint(&[
            BASE,
            "ALTER TABLE posts ALTER COLUMN user_id SET NOT NULL, ADD CONSTRAINT posts_user2_fk FOREIGN KEY (user_id) REFERENCES users (id), ADD CONSTRAINT posts_title_check CHECK (title NOT IN ('a, b'));",
        ]);
        let ours: Vec<_> = findings
            .iter()
            .filter(|d| d.check == "constraint-missing-not-valid")
            .collect();
        assert_eq!(ours.len(), 2);
        assert!(
            ours[0]
                .message
                .contains("ACCESS EXCLUSIVE on `posts` and SHARE ROW EXCLUSIVE on `users`"),
            "{}",
            ours[0].message
        );
        assert!(ours[0].help.as_deref().unwrap_or_default().contains("ALTER TABLE posts ADD CONSTRAINT posts_user2_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"), "{:?}", ours[0].help);
        assert!(ours[1].help.as_deref().unwrap_or_default().contains("ALTER TABLE posts ADD CONSTRAINT posts_title_check CHECK (title NOT IN ('a, b')) NOT VALID;"), "{:?}", ours[1].help);
    }

    #[test]
    fn passes_not_valid_and_new_tables() {
        assert!(hits(&[BASE, "ALTER TABLE posts ADD CONSTRAINT posts_user2_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"], "constraint-missing-not-valid").is_empty());
        assert!(hits(&[BASE, "CREATE TABLE tags (id int);\nALTER TABLE tags ADD CONSTRAINT tags_id_check CHECK (id > 0);"], "constraint-missing-not-valid").is_empty());
    }
}
