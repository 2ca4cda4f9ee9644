//! `CREATE INDEX`, `DROP INDEX`, `REINDEX`, `ALTER INDEX … RENAME`, and the columns an index
//! covers or reads.

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::syntax::{child, descendant, has_token, in_schema_of, name_of, table_ref};
use super::{Classified, Detail, EVERY_SYSTEM_CATALOG, EVERY_TABLE, Effect, Rename};
use crate::lint::locks::Op;

pub(super) fn create_index(node: &SyntaxNode, out: &mut Classified) {
    let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
    out.concurrently = concurrently;
    let table = table_ref(node).unwrap_or_default();
    let index = child(node, SyntaxKind::INDEX)
        .map(|i| name_of(&i))
        .unwrap_or_default();
    out.creates_index = Some((index.clone(), table.clone()));
    out.index_reads = index_reads(node);
    let op = if concurrently {
        Op::CreateIndexConcurrently
    } else {
        Op::CreateIndex
    };
    out.effects
        .push(Effect::with(op, table, Detail::Index(index)));
}

pub(super) fn drop_index(node: &SyntaxNode, out: &mut Classified) {
    let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
    out.concurrently = concurrently;
    for index in node
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::INDEX_REF || n.kind() == SyntaxKind::PATH_REF)
        .take(1)
    {
        let index = name_of(&index);
        let op = if concurrently {
            Op::DropIndexConcurrently
        } else {
            Op::DropIndex
        };
        // The table is resolved from the index by the walker.
        out.effects
            .push(Effect::with(op, String::new(), Detail::Index(index)));
    }
}

pub(super) fn reindex(node: &SyntaxNode, out: &mut Classified) {
    let concurrently = node
        .descendants_with_tokens()
        .any(|t| t.kind() == SyntaxKind::CONCURRENTLY_KW);
    out.concurrently = concurrently;
    let op = if concurrently {
        Op::ReindexConcurrently
    } else {
        Op::Reindex
    };
    if let Some(target) = descendant(node, SyntaxKind::REINDEX_TARGET_TABLE) {
        let table = descendant(&target, SyntaxKind::TABLE_NAME_REF)
            .map(|t| name_of(&t))
            .unwrap_or_default();
        out.effects.push(Effect::on(op, table));
    } else if let Some(index) = descendant(node, SyntaxKind::INDEX_REF) {
        out.effects.push(Effect::with(
            op,
            String::new(),
            Detail::Index(name_of(&index)),
        ));
    } else if let Some(schema) = descendant(node, SyntaxKind::REINDEX_TARGET_SCHEMA) {
        let name = descendant(&schema, SyntaxKind::SCHEMA_REF)
            .map(|s| name_of(&s))
            .unwrap_or_default();
        out.effects
            .push(Effect::on(op, format!("(every table in schema {name})")));
    } else if descendant(node, SyntaxKind::REINDEX_TARGET_SYSTEM).is_some() {
        out.effects
            .push(Effect::on(op, EVERY_SYSTEM_CATALOG.to_owned()));
    } else if descendant(node, SyntaxKind::REINDEX_TARGET_DATABASE).is_some() {
        out.effects.push(Effect::on(op, EVERY_TABLE.to_owned()));
    } else {
        out.unknown = true;
    }
}

pub(super) fn alter_index(node: &SyntaxNode, out: &mut Classified) {
    if let Some(rename) = child(node, SyntaxKind::INDEX_RENAME_TO)
        && let Some(index) = child(node, SyntaxKind::INDEX_REF)
    {
        if let Some(to) = child(&rename, SyntaxKind::INDEX) {
            let from = name_of(&index);
            out.renames.push(Rename::Index {
                to: in_schema_of(&from, &name_of(&to)),
                from,
            });
        }
        out.effects.push(Effect::with(
            Op::AlterIndexRename,
            String::new(),
            Detail::Index(name_of(&index)),
        ));
    }
}

/// What `CREATE INDEX` reads of its table: see [`Classified::index_reads`]. An item that is an
/// expression is a function call or parenthesized, so it holds a `(` token; a column with its
/// operator class, collation or order does not.
pub(super) fn index_reads(node: &SyntaxNode) -> Vec<(String, bool)> {
    let names = |n: &SyntaxNode| -> Vec<String> {
        n.descendants()
            .filter(|d| d.kind() == SyntaxKind::NAME_REF)
            .map(|d| name_of(&d))
            .collect()
    };
    let mut reads = Vec::new();
    if let Some(items) = child(node, SyntaxKind::PARTITION_ITEM_LIST) {
        for item in items.children() {
            let computed = item
                .descendants_with_tokens()
                .any(|t| t.kind() == SyntaxKind::L_PAREN);
            reads.extend(names(&item).into_iter().map(|c| (c, computed)));
        }
    }
    if let Some(predicate) = child(node, SyntaxKind::WHERE_CLAUSE) {
        reads.extend(names(&predicate).into_iter().map(|c| (c, true)));
    }
    reads
}

/// The columns the indexes a statement builds cover (function names inside an expression
/// index come along: they name no column, so they never match one).
pub(super) fn indexed_columns(node: &SyntaxNode, classified: &Classified) -> Vec<(String, String)> {
    let table = match &classified.creates_index {
        Some((_, table)) => Some(table.clone()),
        None if node.kind() == SyntaxKind::ALTER_TABLE => table_ref(node),
        None => classified.creates_table.clone(),
    };
    let Some(table) = table else {
        return Vec::new();
    };
    let mut columns = Vec::new();
    if classified.creates_index.is_some()
        && let Some(items) = child(node, SyntaxKind::PARTITION_ITEM_LIST)
    {
        columns.extend(
            items
                .descendants()
                .filter(|n| n.kind() == SyntaxKind::NAME_REF)
                .map(|n| name_of(&n)),
        );
    }
    for constraint in node.descendants().filter(|n| {
        matches!(
            n.kind(),
            SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::UNIQUE_CONSTRAINT
        )
    }) {
        let listed: Vec<String> = constraint
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::COLUMN_NAME_REF)
            .map(|n| name_of(&n))
            .collect();
        if listed.is_empty() {
            if let Some(column) = constraint
                .parent()
                .filter(|p| p.kind() == SyntaxKind::COLUMN)
                .and_then(|p| child(&p, SyntaxKind::COLUMN_NAME))
            {
                columns.push(name_of(&column));
            }
        } else {
            columns.extend(listed);
        }
    }
    columns.into_iter().map(|c| (table.clone(), c)).collect()
}
