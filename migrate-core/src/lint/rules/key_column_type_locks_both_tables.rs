//! # key-column-type-locks-both-tables
//!
//! **What**: `ALTER COLUMN … TYPE` on a column of a foreign key (its own column or the key it
//! references), in a migration that does anything else in the same transaction. A change that
//! rewrites the table is `changing-column-type`'s; this one keeps the rows (`varchar(36)` to
//! `varchar(40)` or to `text`).
//!
//! **Why it stalls traffic**: PostgreSQL drops the foreign key and makes it again, which takes
//! ACCESS EXCLUSIVE on the table *and* on the table at the key's other end (measured on 14 to
//! 18: no scan when the change keeps the key's comparison, both tables locked). Alone it is
//! instant and the runner's lock_timeout and retries cover the wait; any other statement in the
//! transaction keeps both tables frozen until commit.
//!
//! **Instead**: keep the type change alone in its migration.

use super::{Op, on_existing};
use crate::lint::classify::Detail;
use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "key-column-type-locks-both-tables",
    summary: "a type change on a foreign key's column locks both tables; keep it alone",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    if ctx.statements_in_transaction <= 1 {
        return Vec::new();
    }
    on_existing(ctx, &[Op::AlterKeyColumnType])
        .filter_map(|e| {
            let other = e.effect.other.as_ref()?;
            let column = match &e.effect.detail {
                Detail::TypeChange { column, .. } => column.as_str(),
                _ => "the column",
            };
            Some(Finding {
                message: format!(
                    "`{}`.`{column}` is a column of a foreign key between `{}` and `{other}`: changing its type makes the key again, taking ACCESS EXCLUSIVE on both tables; the migration's other {} statement(s) keep both tables blocked until commit",
                    e.effect.table,
                    e.effect.table,
                    ctx.statements_in_transaction - 1
                ),
                help: format!(
                    "move `{}` into a migration of its own, where it is instant",
                    ctx.statement()
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits};

    const KEYS: &str = "CREATE TABLE comptes (code varchar(36) PRIMARY KEY);\nCREATE TABLE écritures (id bigint, compte varchar(36) REFERENCES comptes);\nCREATE TABLE lignes (id bigint, compte varchar(36), CONSTRAINT lignes_compte_fk FOREIGN KEY (compte) REFERENCES comptes (code));";

    #[test]
    fn flags_either_side_of_a_key_with_company() {
        for change in [
            "ALTER TABLE écritures ALTER COLUMN compte TYPE varchar(40);",
            "ALTER TABLE lignes ALTER COLUMN compte TYPE text;",
            "ALTER TABLE comptes ALTER COLUMN code TYPE text;",
        ] {
            assert_eq!(
                hits(
                    &[
                        BASE,
                        KEYS,
                        &format!("{change}\nALTER TABLE users ADD COLUMN note text;")
                    ],
                    "key-column-type-locks-both-tables"
                ),
                ["m/2.sql:3"],
                "{change}"
            );
        }
    }

    #[test]
    fn passes_alone_outside_any_key_and_once_the_key_is_gone() {
        for body in [
            "ALTER TABLE lignes ALTER COLUMN compte TYPE varchar(40);",
            "ALTER TABLE lignes ALTER COLUMN id TYPE bigint;\nALTER TABLE users ADD COLUMN note text;",
            "ALTER TABLE lignes RENAME COLUMN compte TO ancien;\nALTER TABLE lignes ADD COLUMN compte varchar(36);\nALTER TABLE lignes ALTER COLUMN compte TYPE text;",
            // The key is gone (named, or by PostgreSQL's name for an inline REFERENCES): only
            // the table is locked (measured).
            "ALTER TABLE lignes DROP CONSTRAINT lignes_compte_fk;\nALTER TABLE lignes ALTER COLUMN compte TYPE text;\nALTER TABLE users ADD COLUMN note text;",
            "ALTER TABLE écritures DROP CONSTRAINT écritures_compte_fkey;\nALTER TABLE écritures ALTER COLUMN compte TYPE text;\nALTER TABLE users ADD COLUMN note text;",
        ] {
            assert!(
                hits(&[BASE, KEYS, body], "key-column-type-locks-both-tables").is_empty(),
                "{body}"
            );
        }
    }
}
