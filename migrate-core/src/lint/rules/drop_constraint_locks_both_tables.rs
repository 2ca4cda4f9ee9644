//! # drop-constraint-locks-both-tables
//!
//! **What**: dropping a foreign key (`DROP CONSTRAINT`, or `DROP TABLE ... CASCADE` that drops
//! one) in a migration that does anything else in the same transaction.
//!
//! **Why it stalls traffic**: it takes ACCESS EXCLUSIVE on the table *and* on the referenced
//! table. Alone it is instant and the runner's lock_timeout and retries cover the wait; any other
//! statement in the transaction keeps both tables frozen until commit.
//!
//! **Instead**: keep the drop alone in its migration.

use super::{Op, on_existing};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "drop-constraint-locks-both-tables",
    summary: "dropping a foreign key locks both tables; keep it alone",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if ctx.statements_in_transaction <= 1 {
        return Vec::new();
    }
    on_existing(ctx, &[Op::DropForeignKey, Op::DropTableCascade])
        .filter_map(|e| {
            let other = e.effect.other.as_ref()?;
            Some(Finding {
                message: format!(
                    "this drops a foreign key between `{}` and `{other}`, taking ACCESS EXCLUSIVE on both; the migration's other {} statement(s) keep both tables blocked until commit",
                    e.effect.table,
                    ctx.statements_in_transaction - 1
                ),
                help: format!("move `{}` into a migration of its own, where it is instant", ctx.statement()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_a_fk_drop_with_company() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "ALTER TABLE posts DROP CONSTRAINT posts_user_fk;\nALTER TABLE posts ADD COLUMN note text;"
                ],
                "drop-constraint-locks-both-tables"
            ),
            ["m/1.sql:3"]
        );
        assert_eq!(
            hits(
                &[
                    BASE,
                    "-- migrate:allow ban-drop-table: replaced by accounts\nDROP TABLE users CASCADE;\nCREATE TABLE accounts (id int);"
                ],
                "drop-constraint-locks-both-tables"
            ),
            ["m/1.sql:4"]
        );
    }

    #[test]
    fn passes_alone() {
        assert!(
            hits(
                &[BASE, "ALTER TABLE posts DROP CONSTRAINT posts_user_fk;"],
                "drop-constraint-locks-both-tables"
            )
            .is_empty()
        );
    }
}
