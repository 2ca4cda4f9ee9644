//! # validate-in-same-transaction
//!
//! **What**: `VALIDATE CONSTRAINT` in the transaction that added the constraint, or that already
//! holds a lock stronger than the validation's own on the table.
//!
//! **Why it stalls traffic**: VALIDATE is safe alone (SHARE UPDATE EXCLUSIVE while it scans).
//! After `ADD CONSTRAINT ... NOT VALID` in the same transaction, the ADD's lock (ACCESS
//! EXCLUSIVE for a CHECK, SHARE ROW EXCLUSIVE for a FK) is still held during the scan.
//!
//! **Instead**: move the `VALIDATE CONSTRAINT` into the next migration.

use crate::lint::classify::Detail;
use crate::lint::locks::{LockMode, Op};
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "validate-in-same-transaction",
    summary: "VALIDATE in the same transaction keeps the earlier lock during the scan",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if !ctx.in_transaction {
        return Vec::new();
    }
    ctx.effects
        .iter()
        .filter(|e| matches!(e.effect.op, Op::ValidateCheck | Op::ValidateForeignKey) && ctx.is_existing(&e.effect.table))
        .filter_map(|e| {
            let table = &e.effect.table;
            let name = match &e.effect.detail {
                Detail::Constraint { name: Some(n), .. } => n.clone(),
                _ => String::new(),
            };
            let added_here = ctx.added_in_transaction.contains(&(table.clone(), name.clone()));
            let held = ctx.held.get(table).filter(|h| h.mode > LockMode::ShareUpdateExclusive);
            if !added_here && held.is_none() {
                return None;
            }
            let why = match held {
                Some(h) => format!("this transaction already holds {} on `{table}` (from line {}), so the scan runs under it", h.mode.sql_name(), h.line),
                None => format!("constraint {name} was added earlier in this transaction"),
            };
            Some(Finding {
                message: format!("VALIDATE CONSTRAINT {name} scans all of `{table}`, and {why}"),
                help: format!("move it into a migration of its own, after this one:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    #[test]
    fn flags_validate_after_add_in_one_transaction() {
        let add = "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email <> '') NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_email_check;";
        assert_eq!(
            hits(&[BASE, add], "validate-in-same-transaction"),
            ["m/1.sql:4"]
        );
    }

    #[test]
    fn passes_validate_in_its_own_migration() {
        let add =
            "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email <> '') NOT VALID;";
        assert!(
            hits(
                &[
                    BASE,
                    add,
                    "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;"
                ],
                "validate-in-same-transaction"
            )
            .is_empty()
        );
    }
}
