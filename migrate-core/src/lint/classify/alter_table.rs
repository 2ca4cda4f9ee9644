//! `ALTER TABLE`: each action of the statement, on the table it names.

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::syntax::{
    called_functions, calls_volatile, child, children, constraint_name, descendant, foreign_key,
    in_schema_of, is_serial, is_the_column_or_its_cast, name_of, normalize, not_null_check_column,
    referenced_table, table_ref, type_text,
};
use super::{Classified, Detail, Effect, Rename};
use crate::lint::locks::Op;

/// An effect on the altered table.
fn effect(table: &str, op: Op, detail: Detail) -> Effect {
    Effect::with(op, table.to_owned(), detail)
}

/// The actions whose effect is the table's alone, with nothing more to say about it.
fn whole_table_op(action: SyntaxKind) -> Option<Op> {
    Some(match action {
        SyntaxKind::SET_OPTIONS | SyntaxKind::RESET_OPTIONS => Op::SetStatisticsOrStorage,
        SyntaxKind::SET_LOGGED | SyntaxKind::SET_UNLOGGED | SyntaxKind::SET_ACCESS_METHOD => {
            Op::SetLoggedUnlogged
        }
        SyntaxKind::SET_TABLESPACE => Op::SetTablespace,
        SyntaxKind::ENABLE_RLS
        | SyntaxKind::DISABLE_RLS
        | SyntaxKind::FORCE_RLS
        | SyntaxKind::NO_FORCE_RLS => Op::RowSecurity,
        SyntaxKind::ALTER_CONSTRAINT => Op::AlterConstraint,
        SyntaxKind::ENABLE_TRIGGER
        | SyntaxKind::DISABLE_TRIGGER
        | SyntaxKind::ENABLE_ALWAYS_TRIGGER
        | SyntaxKind::ENABLE_REPLICA_TRIGGER => Op::EnableDisableTrigger,
        _ => return None,
    })
}

pub(super) fn alter_table(node: &SyntaxNode, out: &mut Classified) {
    let table = table_ref(node).unwrap_or_default();
    let table = table.as_str();
    for action in &children(node).collect::<Vec<_>>() {
        if let Some(op) = whole_table_op(action.kind()) {
            out.effects.push(effect(table, op, Detail::None));
            continue;
        }
        match action.kind() {
            SyntaxKind::ADD_COLUMN => add_column(action, table, out),
            SyntaxKind::ALTER_COLUMN => alter_column(action, table, out),
            SyntaxKind::ADD_CONSTRAINT => add_constraint(action, table, out),
            SyntaxKind::RENAME_COLUMN
            | SyntaxKind::TABLE_RENAME_TO
            | SyntaxKind::SET_SCHEMA
            | SyntaxKind::RENAME_CONSTRAINT => rename(action, table, out),
            SyntaxKind::ATTACH_PARTITION | SyntaxKind::DETACH_PARTITION => {
                partition(action, table, out)
            }
            SyntaxKind::VALIDATE_CONSTRAINT => {
                let name = descendant(action, SyntaxKind::CONSTRAINT_NAME_REF).map(|n| name_of(&n));
                out.effects.push(effect(
                    table,
                    Op::ValidateCheck,
                    Detail::Constraint {
                        name,
                        not_null_column: None,
                    },
                ));
            }
            SyntaxKind::DROP_CONSTRAINT => {
                let name = descendant(action, SyntaxKind::CONSTRAINT_NAME_REF).map(|n| name_of(&n));
                out.effects.push(effect(
                    table,
                    Op::DropCheckConstraint,
                    Detail::Constraint {
                        name,
                        not_null_column: None,
                    },
                ));
            }
            SyntaxKind::DROP_COLUMN => {
                let column = child(action, SyntaxKind::COLUMN_NAME_REF)
                    .map(|c| name_of(&c))
                    .unwrap_or_default();
                out.effects
                    .push(effect(table, Op::DropColumn, Detail::Column(column)));
            }
            SyntaxKind::IF_EXISTS | SyntaxKind::TABLE_RELATION_NAME | SyntaxKind::RELATION_NAME => {
            }
            _ => out.unknown = true,
        }
    }
}

/// `ADD COLUMN`: what filling it costs (nothing, a rewrite, a check of every row), and the
/// constraints written on it.
fn add_column(action: &SyntaxNode, table: &str, out: &mut Classified) {
    let column = child(action, SyntaxKind::COLUMN_NAME)
        .map(|c| name_of(&c))
        .unwrap_or_default();
    let ty = type_text(action).unwrap_or_default();
    let default = descendant(action, SyntaxKind::DEFAULT_CONSTRAINT);
    let generated = descendant(action, SyntaxKind::GENERATED_CONSTRAINT);
    let not_null = descendant(action, SyntaxKind::NOT_NULL_CONSTRAINT).is_some()
        || descendant(action, SyntaxKind::PRIMARY_KEY_CONSTRAINT).is_some();
    // PostgreSQL 18's virtual generated column (`VIRTUAL`, or no kind at all) is
    // computed when read: nothing is written. Identity and STORED fill every row.
    let virtual_column = generated.as_ref().is_some_and(|g| {
        !g.descendants_with_tokens()
            .any(|t| matches!(t.kind(), SyntaxKind::STORED_KW | SyntaxKind::IDENTITY_KW))
    });
    let rewrites = is_serial(&ty)
        || (generated.is_some() && !virtual_column)
        || default.as_ref().is_some_and(calls_volatile);
    if let Some(default) = &default {
        out.default_calls
            .push((column.clone(), called_functions(default)));
    }
    out.columns.push((column.clone(), ty));
    if let Some(reference) = descendant(action, SyntaxKind::REFERENCES_CONSTRAINT) {
        let key = foreign_key(&reference, table, Some(&column));
        let other = key.as_ref().map(|key| key.references.clone());
        out.foreign_keys.extend(key);
        // With a default every existing row gets a value, and each one is checked
        // against the other table (measured: both tables scanned).
        let op = if default.is_some() {
            Op::AddColumnReferencesValidated
        } else {
            Op::AddColumnReferences
        };
        out.effects.push(Effect {
            op,
            table: table.to_owned(),
            other,
            detail: Detail::Column(column.clone()),
        });
    }
    if descendant(action, SyntaxKind::UNIQUE_CONSTRAINT).is_some()
        || descendant(action, SyntaxKind::PRIMARY_KEY_CONSTRAINT).is_some()
    {
        out.effects.push(effect(
            table,
            Op::AddColumnUnique,
            Detail::Column(column.clone()),
        ));
    }
    if descendant(action, SyntaxKind::CHECK_CONSTRAINT).is_some() {
        out.effects.push(effect(
            table,
            Op::AddColumnCheck,
            Detail::Column(column.clone()),
        ));
    }
    if rewrites {
        out.effects.push(effect(
            table,
            Op::AddColumnVolatileDefault,
            Detail::Column(column),
        ));
    } else if virtual_column {
        // Nothing is written, but NOT NULL is checked on every row (measured on 18).
        if not_null {
            out.effects.push(effect(
                table,
                Op::SetNotNull,
                Detail::Column(column.clone()),
            ));
        }
        out.effects.push(effect(
            table,
            Op::AddColumnVirtualGenerated,
            Detail::Column(column),
        ));
    } else if not_null && default.is_none() {
        out.effects
            .push(effect(table, Op::AddColumn, Detail::RequiredColumn(column)));
    } else {
        out.effects
            .push(effect(table, Op::AddColumn, Detail::Column(column)));
    }
}

/// `ALTER COLUMN`: each of its sub-commands.
fn alter_column(action: &SyntaxNode, table: &str, out: &mut Classified) {
    let column = child(action, SyntaxKind::COLUMN_NAME_REF)
        .map(|c| name_of(&c))
        .unwrap_or_default();
    for sub in children(action) {
        match sub.kind() {
            SyntaxKind::SET_TYPE => {
                let new_type = type_text(&sub).unwrap_or_default();
                let computed = child(&sub, SyntaxKind::USING_EXPR)
                    .map(|using| {
                        using
                            .children()
                            .map(|expr| expr.text().to_string())
                            .collect::<String>()
                    })
                    .filter(|expr| !is_the_column_or_its_cast(expr, &column));
                out.effects.push(effect(
                    table,
                    Op::AlterColumnTypeRewrite,
                    Detail::TypeChange {
                        column: column.clone(),
                        new_type,
                        computed,
                    },
                ));
            }
            SyntaxKind::SET_NOT_NULL => out.effects.push(effect(
                table,
                Op::SetNotNull,
                Detail::Column(column.clone()),
            )),
            SyntaxKind::DROP_NOT_NULL | SyntaxKind::SET_DEFAULT | SyntaxKind::DROP_DEFAULT => {
                out.effects.push(effect(
                    table,
                    Op::DropNotNullOrDefault,
                    Detail::Column(column.clone()),
                ));
            }
            SyntaxKind::SET_STATISTICS | SyntaxKind::SET_OPTIONS | SyntaxKind::RESET_OPTIONS => {
                out.effects.push(effect(
                    table,
                    Op::SetStatisticsOrStorage,
                    Detail::Column(column.clone()),
                ));
            }
            SyntaxKind::SET_STORAGE | SyntaxKind::SET_COMPRESSION => {
                out.effects.push(effect(
                    table,
                    Op::SetStorageOrCompression,
                    Detail::Column(column.clone()),
                ));
            }
            SyntaxKind::COLUMN_NAME_REF => {}
            _ => out.unknown = true,
        }
    }
}

fn add_constraint(action: &SyntaxNode, table: &str, out: &mut Classified) {
    let Some(constraint) = action.children().next() else {
        return;
    };
    let name = constraint_name(&constraint);
    let not_valid = descendant(action, SyntaxKind::NOT_VALID).is_some();
    let using_index = descendant(&constraint, SyntaxKind::USING_INDEX_NAME).is_some()
        || descendant(&constraint, SyntaxKind::USING_INDEX).is_some();
    match constraint.kind() {
        SyntaxKind::FOREIGN_KEY_CONSTRAINT => {
            let other = referenced_table(&constraint);
            out.foreign_keys
                .extend(foreign_key(&constraint, table, None));
            let op = if not_valid {
                Op::AddForeignKeyNotValid
            } else {
                Op::AddForeignKey
            };
            out.effects.push(Effect {
                op,
                table: table.to_owned(),
                other,
                detail: Detail::Constraint {
                    name,
                    not_null_column: None,
                },
            });
        }
        SyntaxKind::CHECK_CONSTRAINT => {
            let op = if not_valid {
                Op::AddCheckNotValid
            } else {
                Op::AddCheck
            };
            let not_null_column = not_null_check_column(&constraint);
            out.effects.push(effect(
                table,
                op,
                Detail::Constraint {
                    name,
                    not_null_column,
                },
            ));
        }
        SyntaxKind::UNIQUE_CONSTRAINT
        | SyntaxKind::PRIMARY_KEY_CONSTRAINT
        | SyntaxKind::EXCLUDE_CONSTRAINT => {
            let op = match (using_index, constraint.kind()) {
                (true, SyntaxKind::PRIMARY_KEY_CONSTRAINT) => Op::AddPrimaryKeyUsingIndex,
                (true, _) => Op::AddConstraintUsingIndex,
                (false, _) => Op::AddUniqueOrPrimaryKey,
            };
            out.effects.push(effect(
                table,
                op,
                Detail::Constraint {
                    name,
                    not_null_column: None,
                },
            ));
        }
        _ => out.unknown = true,
    }
}

/// Renames of a column, the table, its schema or a constraint: the effect, and the new name for
/// what is known of the old one.
fn rename(action: &SyntaxNode, table: &str, out: &mut Classified) {
    match action.kind() {
        SyntaxKind::RENAME_COLUMN => {
            out.effects
                .push(effect(table, Op::Rename, Detail::RenameColumn));
            if let (Some(from), Some(to)) = (
                child(action, SyntaxKind::COLUMN_NAME_REF),
                child(action, SyntaxKind::COLUMN_NAME),
            ) {
                out.renames.push(Rename::Column {
                    table: table.to_owned(),
                    from: name_of(&from),
                    to: name_of(&to),
                });
            }
        }
        SyntaxKind::TABLE_RENAME_TO => {
            out.effects
                .push(effect(table, Op::Rename, Detail::RenameTable));
            if let Some(to) = child(action, SyntaxKind::TABLE_NAME) {
                out.renames.push(Rename::Table {
                    from: table.to_owned(),
                    to: in_schema_of(table, &name_of(&to)),
                });
            }
        }
        SyntaxKind::SET_SCHEMA => {
            out.effects.push(effect(table, Op::Rename, Detail::None));
            if let Some(schema) = child(action, SyntaxKind::SCHEMA_REF) {
                let bare = table.rsplit('.').next().unwrap_or_default();
                out.renames.push(Rename::Table {
                    from: table.to_owned(),
                    to: normalize(&format!("{}.{bare}", schema.text())),
                });
            }
        }
        SyntaxKind::RENAME_CONSTRAINT => {
            out.effects.push(effect(table, Op::Rename, Detail::None));
            if let (Some(from), Some(to)) = (
                child(action, SyntaxKind::CONSTRAINT_NAME_REF),
                child(action, SyntaxKind::CONSTRAINT_NAME),
            ) {
                out.renames.push(Rename::Constraint {
                    table: table.to_owned(),
                    from: name_of(&from),
                    to: name_of(&to),
                });
            }
        }
        _ => {}
    }
}

/// `ATTACH PARTITION` / `DETACH PARTITION [CONCURRENTLY]`: the partition is the other table.
fn partition(action: &SyntaxNode, table: &str, out: &mut Classified) {
    let partition = descendant(action, SyntaxKind::TABLE_NAME_REF).map(|t| name_of(&t));
    if action.kind() == SyntaxKind::ATTACH_PARTITION {
        out.effects.push(Effect {
            op: Op::AttachPartition,
            table: table.to_owned(),
            other: partition,
            detail: Detail::None,
        });
        return;
    }
    let concurrently = descendant(action, SyntaxKind::DETACH_CONCURRENTLY).is_some();
    out.concurrently |= concurrently;
    let op = if concurrently {
        Op::DetachPartitionConcurrently
    } else {
        Op::DetachPartition
    };
    out.effects.push(Effect {
        op,
        table: table.to_owned(),
        other: partition,
        detail: Detail::None,
    });
}
