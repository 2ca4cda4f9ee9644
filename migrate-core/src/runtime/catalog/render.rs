//! SQL from a catalog's parts: the `CREATE TABLE` and column text a baseline and a
//! reconciling migration share, and the migration that reconciles a drifted database.

use super::difference::{Difference, Phase};
use super::{Column, Table};

/// `quote_ident`: an identifier quoted unless PostgreSQL would read it back unchanged.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `quote_literal` for a string constant.
pub(crate) fn quote_literal(text: &str) -> String {
    postgres_protocol::escape::escape_literal(text)
}

/// `CREATE TABLE` for one table. `reconcile` writes the form a reconciling migration needs:
/// `IF NOT EXISTS`, with its checks and keys inline (foreign keys and indexes come later); the
/// baseline adds every constraint after the functions they may call.
pub(crate) fn create_table(name: &str, table: &Table, reconcile: bool) -> String {
    let if_not_exists = if reconcile { "IF NOT EXISTS " } else { "" };
    let unlogged = if table.unlogged { "UNLOGGED " } else { "" };
    let partition_by = table
        .partition_key
        .as_ref()
        .map(|key| format!(" PARTITION BY {key}"))
        .unwrap_or_default();
    if let Some((parent, bound)) = &table.partition_of {
        return format!(
            "CREATE {unlogged}TABLE {if_not_exists}{name} PARTITION OF {parent} {bound}{partition_by};"
        );
    }
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|column| {
            let mut text = format!(
                "    {} {}",
                column.name,
                column_text_without_identity(column)
            );
            if let Some(kind) = column.identity {
                let kind = if kind == 'a' { "ALWAYS" } else { "BY DEFAULT" };
                text.push_str(&format!(" GENERATED {kind} AS IDENTITY"));
                if let Some(options) = &column.identity_options {
                    text.push_str(&format!(" ({options})"));
                }
            }
            text
        })
        .collect();
    if reconcile {
        for (constraint, definition) in &table.constraints {
            if definition.kind != 'f' {
                lines.push(format!(
                    "    CONSTRAINT {constraint} {}",
                    definition.definition
                ));
            }
        }
    }
    format!(
        "CREATE {unlogged}TABLE {if_not_exists}{name} (\n{}\n){partition_by};",
        lines.join(",\n")
    )
}

fn column_text_without_identity(column: &super::Column) -> String {
    let identity = super::Column {
        identity: None,
        ..column.clone()
    };
    column_text(&identity)
}

/// The migration that makes the database what the migrations build: a no-transaction migration
/// (its indexes are built concurrently), every statement in its phase, the destructive ones
/// commented out for a reviewer to enable.
pub fn fix_migration(header: &str, differences: &[Difference]) -> String {
    let mut fixes: Vec<_> = differences
        .iter()
        .flat_map(|d| d.fix.iter().map(move |f| (f.phase, d, f)))
        .collect();
    fixes.sort_by_key(|(phase, difference, _)| fix_order(*phase, difference.position));
    let mut out = String::from(header);
    out.push_str("-- migrate:no-transaction\n\n");
    out.push_str(
        "-- Reconciles the database with what its migrations build. Review every statement:\n\
         -- type changes rewrite their table, backfills touch every row, and the drops at the\n\
         -- end are commented out (remove the leading `-- ` of a block to enable it).\n",
    );
    let mut phase = None;
    let mut unfixable = Vec::new();
    for difference in differences.iter().filter(|d| d.fix.is_empty()) {
        unfixable.push(commented(&format!("needs a human: {difference}")));
    }
    if !unfixable.is_empty() {
        out.push('\n');
        out.push_str(&unfixable.join("\n"));
        out.push('\n');
    }
    for (fix_phase, difference, fix) in fixes {
        // A blank line between the drops of dependents, the changes, the foreign keys and the
        // drops.
        let band = fix_order(fix_phase, 0).0;
        if phase != Some(band) {
            phase = Some(band);
            out.push('\n');
        }
        if fix_phase == Phase::Destructive {
            out.push_str(&commented(&format!("destructive: {difference}")));
            out.push('\n');
            for line in fix.sql.lines() {
                out.push_str(&format!("-- {line}\n"));
            }
        } else {
            out.push_str(&fix.sql);
            out.push('\n');
        }
    }
    out
}

/// `text` as SQL comment lines: a difference shows a definition as the server prints it, on
/// several lines (a function's), and each must stay a comment.
fn commented(text: &str) -> String {
    text.lines()
        .map(|line| format!("-- {line}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a fix goes in the reconciling migration. Foreign keys that stand in the way of a type
/// change are dropped first, and every foreign key is added last, once the keys it references
/// exist and the columns on both sides have their types. Everything else follows the server's
/// dependency order of what the migrations build (a function before the domain, the default,
/// the check or the index that calls it), then, for one table, its phases. Drops come at the
/// very end, dependents first.
fn fix_order(phase: Phase, position: usize) -> (u8, usize, Phase) {
    let band = match phase {
        Phase::DropDependents => 0,
        Phase::ForeignKeys => 2,
        Phase::Destructive => 3,
        _ => 1,
    };
    (band, position, phase)
}

/// A column's type, collation, default or generation, NOT NULL and identity, as in a CREATE TABLE.
pub(crate) fn column_text(column: &Column) -> String {
    let mut text = column.data_type.clone();
    if let Some(collation) = &column.collation {
        text.push_str(&format!(" COLLATE {collation}"));
    }
    if let (Some(kind @ ('s' | 'v')), Some(expression)) = (column.generated, &column.default) {
        // `v`: PostgreSQL 18's virtual column, computed when read.
        let kind = if kind == 's' { "STORED" } else { "VIRTUAL" };
        text.push_str(&format!(" GENERATED ALWAYS AS ({expression}) {kind}"));
    } else if let Some(default) = &column.default {
        text.push_str(&format!(" DEFAULT {default}"));
    }
    if column.not_null {
        text.push_str(" NOT NULL");
    }
    match column.identity {
        Some('a') => text.push_str(" GENERATED ALWAYS AS IDENTITY"),
        Some('d') => text.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        _ => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::difference::{Severity, fix};
    use super::*;

    /// A function the migrations do not build, shown by its definition over several lines: the
    /// written migration keeps every line of it commented, and the drop too.
    #[test]
    fn a_definition_over_several_lines_stays_commented() {
        let definition = "CREATE OR REPLACE FUNCTION public.extra()\n RETURNS trigger\n LANGUAGE plpgsql\nAS $function$BEGIN RETURN NULL; END$function$\n";
        let differences = [
            Difference {
                object: "function public.extra()".to_owned(),
                expected: None,
                actual: Some(definition.to_owned()),
                severity: Severity::Destructive,
                fix: vec![fix(Phase::Destructive, "DROP FUNCTION public.extra();")],
                position: 0,
            },
            Difference {
                object: "function public.autre()".to_owned(),
                expected: Some(definition.replace("extra", "autre")),
                actual: None,
                severity: Severity::Review,
                fix: Vec::new(),
                position: 1,
            },
        ];
        let written = fix_migration("-- revision: r\n-- parents: p\n", &differences);
        let body: Vec<&str> = written
            .lines()
            .skip_while(|line| !line.starts_with("-- Reconciles"))
            .filter(|line| !line.is_empty())
            .collect();
        assert!(body.iter().all(|line| line.starts_with("--")), "{written}");
        assert!(written.contains("\n-- destructive: function public.extra() [destructive]: migrations build (absent); the database has CREATE OR REPLACE FUNCTION public.extra()\n--  RETURNS trigger\n"), "{written}");
        assert!(written.contains("\n-- needs a human: function public.autre() [review]: migrations build CREATE OR REPLACE FUNCTION public.autre()\n--  RETURNS trigger\n"), "{written}");
        assert!(
            written.contains("\n-- DROP FUNCTION public.extra();\n"),
            "{written}"
        );
    }
}
