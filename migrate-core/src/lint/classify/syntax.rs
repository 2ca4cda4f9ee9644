//! Reading names, types and references off squawk's syntax tree: the helpers every statement
//! family shares.

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::ForeignKey;

/// `name` in the schema of `qualified` (a rename keeps an object in its schema).
pub(super) fn in_schema_of(qualified: &str, name: &str) -> String {
    match qualified.rsplit_once('.') {
        Some((schema, _)) if !name.contains('.') => format!("{schema}.{name}"),
        _ => name.to_owned(),
    }
}

pub(super) fn children(node: &SyntaxNode) -> impl Iterator<Item = SyntaxNode> {
    node.children()
}

/// The foreign key `node` defines (a table's `FOREIGN KEY (…) REFERENCES …` or a column's
/// `REFERENCES …`) on `table`; `column` is the column a `REFERENCES` is written on, when the
/// tree does not hold it around the constraint (`ADD COLUMN`).
pub(super) fn foreign_key(
    node: &SyntaxNode,
    table: &str,
    column: Option<&str>,
) -> Option<ForeignKey> {
    let references = referenced_table(node)?;
    let names = |list: &SyntaxNode| -> Vec<String> {
        list.children()
            .map(|c| name_of(&c))
            .filter(|n| !n.is_empty())
            .collect()
    };
    let (mut columns, mut referenced_columns) = (Vec::new(), Vec::new());
    let mut past_references = false;
    for element in node.children_with_tokens() {
        if element.kind() == SyntaxKind::REFERENCES_KW {
            past_references = true;
        }
        let Some(list) = element.as_node() else {
            continue;
        };
        if matches!(
            list.kind(),
            SyntaxKind::COLUMN_LIST | SyntaxKind::FOREIGN_KEY_COLUMN_LIST
        ) {
            if past_references {
                referenced_columns = names(list);
            } else {
                columns = names(list);
            }
        }
    }
    if node.kind() == SyntaxKind::REFERENCES_CONSTRAINT {
        columns = node
            .ancestors()
            .find(|a| a.kind() == SyntaxKind::COLUMN)
            .and_then(|c| child(&c, SyntaxKind::COLUMN_NAME))
            .map(|n| name_of(&n))
            .or_else(|| column.map(str::to_owned))
            .into_iter()
            .collect();
        if referenced_columns.is_empty() {
            referenced_columns = child(node, SyntaxKind::COLUMN_NAME_REF)
                .map(|n| vec![name_of(&n)])
                .unwrap_or_default();
        }
    }
    Some(ForeignKey {
        name: constraint_name(node),
        table: table.to_owned(),
        columns,
        references,
        referenced_columns,
    })
}

pub(super) fn child(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.children().find(|c| c.kind() == kind)
}

pub(super) fn descendant(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.descendants().find(|c| c.kind() == kind)
}

pub(super) fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.children_with_tokens().any(|t| t.kind() == kind)
}

/// A name as PostgreSQL resolves it: unquoted parts folded to lower case, `public.` dropped.
pub fn normalize(text: &str) -> String {
    let mut parts = Vec::new();
    for part in text.split('.') {
        let part = part.trim();
        if let Some(quoted) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            parts.push(quoted.replace("\"\"", "\""));
        } else {
            parts.push(part.to_lowercase());
        }
    }
    if parts.len() == 2 && parts[0] == "public" {
        parts.remove(0);
    }
    parts.join(".")
}

/// The object names below `node` written with a schema (`app.users`, `"App".t`, `app.f(…)`),
/// each once, in the order written, as `schema.name` without the comments and spaces a name may
/// hold. A name is a `PATH` (what a statement defines) or a `PATH_REF` (what it refers to) with
/// a qualifier, or a function called by a two-part name. A table's column (`users.id`, in an
/// expression, `COMMENT ON COLUMN`, `OWNED BY` or `%TYPE`) names a schema only with three parts;
/// a setting (`SET app.tenant = …`) names none. The system schemas are left out: every database
/// and schema shares them.
pub(super) fn schema_qualified(node: &SyntaxNode) -> Vec<String> {
    use SyntaxKind as K;
    let is_path = |kind: SyntaxKind| matches!(kind, K::PATH | K::PATH_REF);
    let mut names: Vec<String> = Vec::new();
    for found in node.descendants() {
        let parts: Vec<String> = if is_path(found.kind()) {
            let Some(parent) = found.parent() else {
                continue;
            };
            if is_path(parent.kind()) || parent.kind() == K::CONFIG_PARAMETER_REF {
                continue;
            }
            let parts: Vec<String> = found
                .descendants()
                .filter(|n| matches!(n.kind(), K::PATH_SEGMENT | K::PATH_SEGMENT_REF))
                .map(|segment| segment.text().to_string().trim().to_owned())
                .collect();
            let column = matches!(
                parent.kind(),
                K::QUALIFIED_COLUMN_NAME_REF | K::PERCENT_TYPE
            );
            if parts.len() < if column { 3 } else { 2 } {
                continue;
            }
            parts
        } else if found.kind() == K::CALL_EXPR {
            let Some(callee) = found
                .children()
                .next()
                .filter(|c| c.kind() == K::FIELD_EXPR)
            else {
                continue;
            };
            let parts: Vec<String> = callee
                .children()
                .filter(|n| n.kind() == K::NAME_REF)
                .map(|part| part.text().to_string().trim().to_owned())
                .collect();
            if parts.len() != 2 {
                continue;
            }
            parts
        } else {
            continue;
        };
        let schema = normalize(&parts[0]);
        let system = matches!(
            schema.as_str(),
            "pg_catalog" | "information_schema" | "pg_temp" | "pg_toast"
        );
        let written = parts.join(".");
        if !system && !names.contains(&written) {
            names.push(written);
        }
    }
    names
}

/// The schema an `ALTER … SET SCHEMA` moves its object into, as written.
pub(super) fn moved_to_schema(node: &SyntaxNode) -> Option<String> {
    let set_schema = descendant(node, SyntaxKind::SET_SCHEMA)?;
    let schema = descendant(&set_schema, SyntaxKind::SCHEMA_REF)?;
    Some(schema.text().to_string().trim().to_owned())
}

pub(super) fn name_of(node: &SyntaxNode) -> String {
    normalize(&node.text().to_string())
}

/// The first table reference under `node` of one of the usual kinds.
pub(super) fn table_ref(node: &SyntaxNode) -> Option<String> {
    for kind in [
        SyntaxKind::TABLE_RELATION_NAME,
        SyntaxKind::TABLE_NAME_REF,
        SyntaxKind::RELATION_NAME,
        SyntaxKind::RELATION_NAME_REF,
    ] {
        if let Some(found) = child(node, kind) {
            let inner = descendant(&found, SyntaxKind::PATH_REF).unwrap_or(found);
            return Some(name_of(&inner));
        }
    }
    None
}

/// Every table read in FROM / JOIN clauses below `node`.
pub(super) fn tables_read(node: &SyntaxNode) -> Vec<String> {
    let mut tables: Vec<String> = node
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::RELATION_FROM_ITEM)
        .filter_map(|n| {
            table_ref(&n)
                .or_else(|| descendant(&n, SyntaxKind::RELATION_NAME_REF).map(|r| name_of(&r)))
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// The functions a default expression calls, by their unqualified name.
pub(super) fn called_functions(node: &SyntaxNode) -> Vec<String> {
    node.descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
        .filter_map(|call| {
            let name = call
                .children()
                .find(|c| c.kind() == SyntaxKind::NAME_REF || c.kind() == SyntaxKind::FIELD_EXPR)
                .map(|n| n.text().to_string().to_lowercase())?;
            name.rsplit('.').next().map(|n| n.trim().to_owned())
        })
        .collect()
}

pub(super) fn calls_volatile(node: &SyntaxNode) -> bool {
    node.descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
        .any(|call| {
            let name = call
                .children()
                .find(|c| c.kind() == SyntaxKind::NAME_REF)
                .map(|n| n.text().to_string().to_lowercase())
                .unwrap_or_default();
            let name = name.rsplit('.').next().unwrap_or_default();
            crate::volatile::VOLATILE_FUNCTIONS.contains(&name)
        })
}

pub(super) fn type_text(node: &SyntaxNode) -> Option<String> {
    node.children()
        .find(|c| {
            matches!(
                c.kind(),
                SyntaxKind::PATH_TYPE
                    | SyntaxKind::CHARACTER_TYPE
                    | SyntaxKind::VARCHAR_TYPE
                    | SyntaxKind::BIT_TYPE
                    | SyntaxKind::DOUBLE_TYPE
                    | SyntaxKind::TIME_TYPE
                    | SyntaxKind::TIMESTAMP_TYPE
                    | SyntaxKind::INTERVAL_TYPE
                    | SyntaxKind::ARRAY_TYPE
                    | SyntaxKind::PERCENT_TYPE
            )
        })
        .map(|t| {
            t.text()
                .to_string()
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

pub(super) fn is_serial(type_name: &str) -> bool {
    matches!(
        type_name,
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    )
}

pub(super) fn constraint_name(node: &SyntaxNode) -> Option<String> {
    descendant(node, SyntaxKind::CONSTRAINT_NAME).map(|n| name_of(&n))
}

/// For `CHECK (col IS NOT NULL)`: the column.
pub(super) fn not_null_check_column(check: &SyntaxNode) -> Option<String> {
    let text = check.text().to_string();
    let inner = text
        .split_once('(')?
        .1
        .rsplit_once(')')?
        .0
        .trim()
        .to_owned();
    let (column, rest) = inner.split_once(char::is_whitespace)?;
    let rest: Vec<String> = rest.split_whitespace().map(str::to_lowercase).collect();
    (rest == ["is", "not", "null"]).then(|| normalize(column))
}

pub(super) fn referenced_table(node: &SyntaxNode) -> Option<String> {
    child(node, SyntaxKind::TABLE_NAME_REF)
        .or_else(|| descendant(node, SyntaxKind::TABLE_NAME_REF))
        .map(|n| name_of(&descendant(&n, SyntaxKind::PATH_REF).unwrap_or(n)))
}

/// Whether a USING expression is `column`, `column::type` or `CAST(column AS type)`: values
/// converted by the type change itself, not computed anew.
pub(super) fn is_the_column_or_its_cast(expr: &str, column: &str) -> bool {
    // Lower case, quotes dropped, runs of whitespace as one space.
    let expr = expr
        .replace('"', "")
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let value = if let Some(inner) = expr
        .strip_prefix("cast")
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix('('))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        inner.rsplit_once(" as ").map_or(inner, |(value, _)| value)
    } else {
        expr.split_once("::")
            .map_or(expr.as_str(), |(value, _)| value)
    };
    value.trim().trim_matches(|c| c == '(' || c == ')').trim() == column.to_lowercase()
}
