//! Objects other than tables and indexes that a statement creates, changes or drops: functions,
//! domains, views, materialized views, policies, triggers, statistics and type renames.

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::syntax::{child, descendant, has_token, in_schema_of, name_of, tables_read, type_text};
use super::{Classified, Effect, Rename};
use crate::lint::locks::Op;

pub(super) fn drop_view(node: &SyntaxNode, out: &mut Classified) {
    for view in node
        .descendants()
        .filter(|c| c.kind() == SyntaxKind::PATH_REF)
    {
        if view
            .parent()
            .is_some_and(|p| p.kind() != SyntaxKind::PATH_REF)
        {
            out.effects.push(Effect::on(Op::DropView, name_of(&view)));
        }
    }
}

/// `REFRESH MATERIALIZED VIEW [CONCURRENTLY]`.
pub(super) fn refresh(node: &SyntaxNode, out: &mut Classified) {
    let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
    let view = descendant(node, SyntaxKind::VIEW_REF)
        .map(|v| name_of(&v))
        .unwrap_or_default();
    let op = if concurrently {
        Op::RefreshMaterializedViewConcurrently
    } else {
        Op::RefreshMaterializedView
    };
    out.effects.push(Effect::on(op, view));
}

pub(super) fn policy(node: &SyntaxNode, out: &mut Classified) {
    if let Some(table) = child(node, SyntaxKind::ON_TABLE)
        .and_then(|on| child(&on, SyntaxKind::TABLE_NAME_REF))
        .map(|t| {
            let inner = descendant(&t, SyntaxKind::PATH_REF).unwrap_or(t);
            name_of(&inner)
        })
    {
        out.effects.push(Effect::on(Op::Policy, table));
    } else {
        out.unknown = true;
    }
}

pub(super) fn trigger(node: &SyntaxNode, out: &mut Classified) {
    let op = match node.kind() {
        SyntaxKind::CREATE_TRIGGER => Op::CreateTrigger,
        SyntaxKind::DROP_TRIGGER => Op::DropTrigger,
        _ => Op::AlterTrigger,
    };
    match child(node, SyntaxKind::ON_RELATION) {
        Some(on) => {
            let table = descendant(&on, SyntaxKind::PATH_REF)
                .map(|p| name_of(&p))
                .unwrap_or_default();
            out.effects.push(Effect::on(op, table));
        }
        None => out.unknown = true,
    }
}

pub(super) fn drop_materialized_view(node: &SyntaxNode, out: &mut Classified) {
    for view in node
        .children()
        .filter(|c| c.kind() == SyntaxKind::VIEW_REF)
        .filter_map(|v| child(&v, SyntaxKind::PATH_REF))
    {
        out.effects
            .push(Effect::on(Op::DropMaterializedView, name_of(&view)));
    }
}

pub(super) fn create_statistics(node: &SyntaxNode, out: &mut Classified) {
    match child(node, SyntaxKind::FROM_TABLE)
        .and_then(|from| descendant(&from, SyntaxKind::PATH_REF))
    {
        Some(table) => out
            .effects
            .push(Effect::on(Op::CreateStatistics, name_of(&table))),
        None => out.unknown = true,
    }
}

/// `CREATE FUNCTION`: its name, and whether it is VOLATILE.
pub(super) fn create_function(node: &SyntaxNode, out: &mut Classified) {
    let Some(name) = descendant(node, SyntaxKind::PATH).map(|p| name_of(&p)) else {
        return;
    };
    // The words outside the body (a string whose words are no attributes). A function is
    // VOLATILE unless it says otherwise.
    let attributes: Vec<String> = node
        .descendants_with_tokens()
        .filter_map(|element| element.into_token())
        .filter(|token| {
            !token
                .parent_ancestors()
                .any(|a| a.kind() == SyntaxKind::AS_FUNC_OPTION)
        })
        .map(|token| token.text().to_lowercase())
        .collect();
    let declared = |word: &str| attributes.iter().any(|a| a == word);
    let bare = name.rsplit('.').next().unwrap_or_default().to_owned();
    out.creates_function = Some((bare, !(declared("immutable") || declared("stable"))));
}

pub(super) fn create_domain(node: &SyntaxNode, out: &mut Classified) {
    let Some(name) = child(node, SyntaxKind::DOMAIN)
        .and_then(|d| descendant(&d, SyntaxKind::PATH))
        .map(|p| name_of(&p))
    else {
        return;
    };
    let checks = node.descendants().any(|n| {
        matches!(
            n.kind(),
            SyntaxKind::CHECK_CONSTRAINT | SyntaxKind::NOT_NULL_CONSTRAINT
        )
    });
    out.creates_domain = Some((name, type_text(node).unwrap_or_default(), checks));
}

/// `ALTER DOMAIN … ADD CONSTRAINT / ADD CHECK / SET NOT NULL`: the domain now checks values.
pub(super) fn alter_domain(node: &SyntaxNode, out: &mut Classified) {
    let text = node.text().to_string().to_lowercase();
    if (text.contains("add constraint")
        || text.contains("add check")
        || text.contains("set not null"))
        && let Some(name) = descendant(node, SyntaxKind::PATH_REF).map(|p| name_of(&p))
    {
        out.constrains_domain = Some(name);
    }
}

pub(super) fn create_view(node: &SyntaxNode, out: &mut Classified) {
    if let Some(name) = child(node, SyntaxKind::VIEW)
        .and_then(|v| child(&v, SyntaxKind::PATH))
        .map(|p| name_of(&p))
    {
        out.creates_view = Some((name, tables_read(node)));
    }
}

/// `ALTER TYPE … RENAME TO`.
pub(super) fn alter_type(node: &SyntaxNode, out: &mut Classified) {
    if let (Some(from), Some(to)) = (
        child(node, SyntaxKind::TYPE_NAME_REF),
        child(node, SyntaxKind::TYPE_RENAME_TO).and_then(|r| child(&r, SyntaxKind::TYPE_NAME)),
    ) {
        let from = name_of(&from);
        out.renames.push(Rename::Type {
            to: in_schema_of(&from, &name_of(&to)),
            from,
        });
    }
}
