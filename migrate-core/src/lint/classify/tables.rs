//! Statements on whole tables and their rows: creating, dropping, truncating, vacuuming,
//! clustering and locking a table, and the DML a backfill is made of.

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::syntax::{
    child, descendant, foreign_key, has_token, name_of, table_ref, tables_read, type_text,
};
use super::{Classified, Detail, EVERY_CLUSTERED_TABLE, EVERY_TABLE, Effect};
use crate::lint::locks::{ALL_MODES, LockMode, Op};

/// `CREATE TABLE`, `CREATE TABLE AS`, `CREATE MATERIALIZED VIEW`, `SELECT INTO`.
pub(super) fn create_table(node: &SyntaxNode, out: &mut Classified) {
    let name = child(node, SyntaxKind::PATH)
        .or_else(|| descendant(node, SyntaxKind::PATH))
        .map(|p| name_of(&p));
    out.creates_table = name.clone();
    if node.kind() == SyntaxKind::CREATE_TABLE {
        let table = name.unwrap_or_default();
        for column in node
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::COLUMN)
        {
            let col = column
                .children()
                .find(|c| c.kind() == SyntaxKind::COLUMN_NAME)
                .map(|n| name_of(&n));
            if let (Some(col), Some(ty)) = (col, type_text(&column)) {
                out.columns.push((col, ty));
            }
        }
        for reference in node.descendants().filter(|n| {
            n.kind() == SyntaxKind::REFERENCES_CONSTRAINT
                || n.kind() == SyntaxKind::FOREIGN_KEY_CONSTRAINT
        }) {
            if let Some(key) = foreign_key(&reference, &table, None) {
                let other = key.references.clone();
                out.foreign_keys.push(key);
                if other != table {
                    out.effects.push(Effect {
                        op: Op::AddColumnReferences,
                        table: table.clone(),
                        other: Some(other),
                        detail: Detail::None,
                    });
                }
            }
        }
    } else {
        for table in tables_read(node) {
            out.effects.push(Effect::on(Op::ReadRows, table));
        }
    }
}

pub(super) fn drop_table(node: &SyntaxNode, out: &mut Classified) {
    let cascade =
        child(node, SyntaxKind::CASCADE).is_some() || has_token(node, SyntaxKind::CASCADE_KW);
    for table in node
        .children()
        .filter(|c| c.kind() == SyntaxKind::TABLE_NAME_REF || c.kind() == SyntaxKind::PATH_REF)
    {
        let op = if cascade {
            Op::DropTableCascade
        } else {
            Op::DropTable
        };
        out.effects.push(Effect::on(op, name_of(&table)));
    }
}

pub(super) fn truncate(node: &SyntaxNode, out: &mut Classified) {
    for table in node
        .descendants()
        .filter(|c| c.kind() == SyntaxKind::TABLE_NAME_REF)
    {
        out.effects.push(Effect::on(Op::Truncate, name_of(&table)));
    }
}

pub(super) fn vacuum(node: &SyntaxNode, out: &mut Classified) {
    let full = node
        .descendants_with_tokens()
        .any(|t| t.kind() == SyntaxKind::FULL_KW);
    out.concurrently = true; // VACUUM cannot run in a transaction block either
    if full {
        let tables: Vec<String> = node
            .descendants()
            .filter(|c| c.kind() == SyntaxKind::TABLE_NAME_REF)
            .map(|t| name_of(&t))
            .collect();
        if tables.is_empty() {
            out.effects
                .push(Effect::on(Op::VacuumFull, EVERY_TABLE.to_owned()));
        }
        for table in tables {
            out.effects.push(Effect::on(Op::VacuumFull, table));
        }
    }
}

pub(super) fn cluster(node: &SyntaxNode, out: &mut Classified) {
    let table = table_ref(node).unwrap_or_else(|| EVERY_CLUSTERED_TABLE.to_owned());
    out.effects.push(Effect::on(Op::Cluster, table));
}

/// `LOCK TABLE`.
pub(super) fn lock(node: &SyntaxNode, out: &mut Classified) {
    let mode = lock_mode(node);
    for relation in node
        .descendants()
        .filter(|c| c.kind() == SyntaxKind::RELATION_NAME_REF)
    {
        out.effects.push(Effect {
            op: Op::LockTable,
            table: name_of(&relation),
            other: None,
            detail: Detail::LockMode(mode),
        });
    }
}

/// The mode a `LOCK TABLE` asks for: ACCESS EXCLUSIVE unless the statement names one.
fn lock_mode(node: &SyntaxNode) -> LockMode {
    let Some(clause) = child(node, SyntaxKind::LOCK_MODE_CLAUSE) else {
        return LockMode::AccessExclusive;
    };
    let text = clause.text().to_string().to_uppercase();
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| *w != "IN" && *w != "MODE")
        .collect();
    let written = words.join(" ");
    ALL_MODES
        .iter()
        .copied()
        .find(|m| m.sql_name() == written)
        .unwrap_or(LockMode::AccessExclusive)
}

pub(super) fn update_or_delete(node: &SyntaxNode, out: &mut Classified) {
    if let Some(table) = table_ref(node) {
        out.effects.push(Effect::on(Op::WriteRows, table));
    }
    for table in tables_read(node) {
        out.effects.push(Effect::on(Op::ReadRows, table));
    }
}

pub(super) fn insert_or_merge(node: &SyntaxNode, out: &mut Classified) {
    out.inserts_into = table_ref(node);
    let sources = tables_read(node);
    // INSERT … VALUES writes a few rows: not a backfill.
    if !sources.is_empty() {
        if let Some(table) = table_ref(node) {
            out.effects.push(Effect::on(Op::WriteRows, table));
        }
        for table in sources {
            out.effects.push(Effect::on(Op::ReadRows, table));
        }
    }
}

pub(super) fn select(node: &SyntaxNode, out: &mut Classified) {
    for table in tables_read(node) {
        out.effects.push(Effect::on(Op::ReadRows, table));
    }
}
