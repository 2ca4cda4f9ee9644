//! The SQL that reconciles one difference, in this project's safe forms: columns added without
//! a rewrite, NOT NULL through a validated check, constraints unchecked then validated, indexes
//! built concurrently, objects created or replaced so that a second run is a no-op.

use super::difference::{Difference, Fix, Phase, Severity, fix};
use super::render::{column_text, quote_ident, quote_literal};
use super::{Catalog, Column, Constraint, Object, ObjectKind};

/// Whether a default calls one of the built-in volatile functions.
fn volatile(default: &str) -> bool {
    crate::volatile::VOLATILE_FUNCTIONS
        .iter()
        .any(|f| default.contains(&format!("{f}(")))
}

/// Nullable, or with a constant default: instant. A volatile default is set for new rows and
/// backfilled; NOT NULL comes last, through a validated check so that it does not scan under
/// ACCESS EXCLUSIVE.
pub(super) fn add_column(table: &str, column: &Column, object: String) -> Difference {
    let name = &column.name;
    let mut definition = column.data_type.clone();
    if let Some(collation) = &column.collation {
        definition.push_str(&format!(" COLLATE {collation}"));
    }
    let mut fixes = Vec::new();
    let mut severity = Severity::Safe;
    match (&column.default, column.generated, column.identity) {
        // Computed when read (PostgreSQL 18): nothing is written.
        (Some(expression), Some('v'), _) => {
            // NOT NULL is checked on every row, under ACCESS EXCLUSIVE.
            let not_null = if column.not_null {
                severity = Severity::Review;
                " NOT NULL"
            } else {
                ""
            };
            fixes.push(fix(
                Phase::AddColumns,
                format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition} GENERATED ALWAYS AS ({expression}) VIRTUAL{not_null};"
                ),
            ));
        }
        (Some(expression), Some('s'), _) => {
            // Computed for every row: a rewrite, whatever the form.
            severity = Severity::Review;
            definition.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
            if column.not_null {
                definition.push_str(" NOT NULL");
            }
            fixes.push(fix(
                Phase::AddColumns,
                format!(
                    "-- review: computed for every existing row (a rewrite)\nALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition};"
                ),
            ));
        }
        (_, _, Some(kind)) => {
            severity = Severity::Review;
            let kind = if kind == 'a' { "ALWAYS" } else { "BY DEFAULT" };
            fixes.push(fix(
                Phase::AddColumns,
                format!(
                    "-- review: numbers every existing row (a rewrite)\nALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition} GENERATED {kind} AS IDENTITY;"
                ),
            ));
        }
        (Some(default), _, _) if !volatile(default) => {
            let not_null = if column.not_null { " NOT NULL" } else { "" };
            fixes.push(fix(
                Phase::AddColumns,
                format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition} DEFAULT {default}{not_null};"
                ),
            ));
        }
        (default, _, _) => {
            fixes.push(fix(
                Phase::AddColumns,
                format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {definition};"),
            ));
            if let Some(default) = default {
                severity = Severity::Review;
                fixes.push(fix(
                    Phase::ColumnSettings,
                    format!(
                        "ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {default};\n-- review: on a big table, backfill in batches instead\nUPDATE {table} SET {name} = {default} WHERE {name} IS NULL;"
                    ),
                ));
            }
            if column.not_null {
                if default.is_none() {
                    severity = Severity::Review;
                    fixes.push(fix(
                        Phase::ColumnSettings,
                        format!("-- review: fill {table}.{name} before it becomes NOT NULL"),
                    ));
                }
                fixes.push(fix(Phase::ColumnSettings, set_not_null(table, name)));
            }
        }
    }
    Difference {
        position: 0,
        object,
        expected: Some(column_text(column)),
        actual: None,
        severity,
        fix: fixes,
    }
}

/// SET NOT NULL without its scan under ACCESS EXCLUSIVE: a check validated under a weaker
/// lock first, which PostgreSQL 12+ takes as the proof.
pub(super) fn set_not_null(table: &str, name: &str) -> String {
    let check = format!("{}_not_null", name.trim_matches('"'));
    let check = quote_ident(&check);
    format!(
        "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check};\n\
         ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({name} IS NOT NULL) NOT VALID;\n\
         ALTER TABLE {table} VALIDATE CONSTRAINT {check};\n\
         ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL;\n\
         ALTER TABLE {table} DROP CONSTRAINT {check};"
    )
}

pub(super) fn change_column(
    table: &str,
    column: &Column,
    found: &Column,
    actual: &Catalog,
    object: String,
) -> Difference {
    let name = &column.name;
    let mut fixes = Vec::new();
    if found.data_type != column.data_type || found.collation != column.collation {
        // Foreign keys on this column block its type change: drop them first, add them back
        // (unchecked, then validated) once both sides have the new type.
        for (other, other_table) in &actual.tables {
            for (constraint, definition) in &other_table.constraints {
                if definition.kind == 'f' && references(&definition.definition, table, name) {
                    fixes.push(fix(
                        Phase::DropDependents,
                        format!("ALTER TABLE {other} DROP CONSTRAINT IF EXISTS {constraint};"),
                    ));
                    fixes.push(add_constraint(other, constraint, definition, false));
                }
            }
        }
        let ty = &column.data_type;
        let collate = column
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        let default_conflicts = found.default.is_some() && found.default != column.default;
        if default_conflicts {
            fixes.push(fix(
                Phase::ChangeTypes,
                format!("ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT;"),
            ));
        }
        fixes.push(fix(
            Phase::ChangeTypes,
            format!(
                "-- review: the database has {} here; check the USING clause (most type changes rewrite the table)\nALTER TABLE {table} ALTER COLUMN {name} TYPE {ty}{collate} USING {name}::{ty};",
                found.data_type
            ),
        ));
    }
    if found.default != column.default && column.generated.is_none() {
        fixes.push(fix(
            Phase::ColumnSettings,
            match &column.default {
                Some(default) => {
                    format!("ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {default};")
                }
                None => format!("ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT;"),
            },
        ));
    }
    if found.not_null != column.not_null {
        fixes.push(fix(
            Phase::ColumnSettings,
            if column.not_null {
                set_not_null(table, name)
            } else {
                format!("ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL;")
            },
        ));
    }
    let reshaped = found.identity != column.identity || found.generated != column.generated;
    Difference {
        position: 0,
        object,
        expected: Some(column_text(column)),
        actual: Some(column_text(found)),
        severity: Severity::Review,
        // Identity and generation cannot be converted in place without a human.
        fix: if reshaped { Vec::new() } else { fixes },
    }
}

/// Whether a foreign key's definition references `table`'s `column`.
fn references(definition: &str, table: &str, column: &str) -> bool {
    foreign_key_target(definition).is_some_and(|(referenced, columns)| {
        referenced == table && columns.split(',').any(|c| c.trim() == column)
    })
}

/// The table a foreign key's definition references, as the catalog prints it, and the list of
/// its columns: `public.users` and `id` in `FOREIGN KEY (user_id) REFERENCES public.users(id)`.
/// A quoted name may hold a parenthesis.
pub(super) fn foreign_key_target(definition: &str) -> Option<(&str, &str)> {
    let (_, target) = definition.split_once(" REFERENCES ")?;
    let mut quoted = false;
    for (at, c) in target.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => {
                let columns = target[at + 1..].split(')').next().unwrap_or_default();
                return Some((&target[..at], columns));
            }
            _ => {}
        }
    }
    None
}

pub(super) fn create_index(name: &str, definition: &str) -> String {
    format!(
        "{};",
        definition.replacen(
            " INDEX ON ",
            &format!(" INDEX CONCURRENTLY IF NOT EXISTS {name} ON "),
            1
        )
    )
}

/// The identifier `quote_ident` printed, as the catalog stores it.
fn unquoted(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => name.to_owned(),
    }
}

/// The phase a constraint is added in: keys before the foreign keys that need them.
fn constraint_phase(constraint: &Constraint) -> Phase {
    if constraint.kind == 'f' {
        Phase::ForeignKeys
    } else {
        Phase::Keys
    }
}

/// A constraint the database lacks, or has under `name` with another definition (`replacing`),
/// in its safe form: checks and foreign keys unchecked, then validated; unique keys over an
/// index built concurrently. Strictly idempotent: on a database that has the constraint as the
/// migrations build it, every statement is a no-op, also when foreign keys depend on its index
/// (a drop and a re-add would fail there, and would change what depends on it elsewhere).
pub(super) fn add_constraint(
    table: &str,
    name: &str,
    constraint: &Constraint,
    replacing: bool,
) -> Fix {
    let definition = constraint
        .definition
        .strip_suffix(" NOT VALID")
        .unwrap_or(&constraint.definition);
    let this = format!(
        "SELECT FROM pg_catalog.pg_constraint WHERE conrelid = {}::pg_catalog.regclass AND conname = {}",
        quote_literal(table),
        quote_literal(&unquoted(name))
    );
    let mut sql = Vec::new();
    if replacing {
        // The definition as the catalog read prints it: with `search_path = pg_catalog`.
        sql.push(format!(
            "DO $fix$ DECLARE saved text := pg_catalog.current_setting('search_path'); differs boolean; BEGIN \
             PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true); \
             differs := EXISTS ({this} AND regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') <> {}); \
             PERFORM pg_catalog.set_config('search_path', saved, true); \
             IF differs THEN ALTER TABLE {table} DROP CONSTRAINT {name}; END IF; END $fix$;",
            quote_literal(definition)
        ));
    }
    let add_if_missing = |statement: String| {
        format!("DO $fix$ BEGIN IF NOT EXISTS ({this}) THEN {statement} END IF; END $fix$;")
    };
    match constraint.kind {
        'c' | 'f' => {
            sql.push(add_if_missing(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID;"
            )));
            if constraint.validated {
                sql.push(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};"));
            }
        }
        'p' | 'u' if !definition.contains(" INCLUDE ") && !definition.contains(" WHERE ") => {
            let (keyword, columns) = match definition.split_once(" (") {
                Some((keyword, rest)) => (keyword, format!("({rest}")),
                None => (definition, String::new()),
            };
            let index = name;
            sql.push(format!(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} {columns};"
            ));
            sql.push(add_if_missing(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {keyword} USING INDEX {index};"
            )));
        }
        _ => sql.push(add_if_missing(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {definition};"
        ))),
    }
    fix(constraint_phase(constraint), sql.join("\n"))
}

fn object_phase(kind: ObjectKind) -> Phase {
    match kind {
        ObjectKind::Extension | ObjectKind::Schema | ObjectKind::Type | ObjectKind::Sequence => {
            Phase::Objects
        }
        ObjectKind::ViewIndex => Phase::Indexes,
        _ => Phase::Code,
    }
}

/// An object's definition in a form that is a no-op where the object already exists.
pub(super) fn create_object(kind: ObjectKind, object: &Object) -> Option<Fix> {
    let definition = &object.definition;
    let sql = match kind {
        ObjectKind::Schema => {
            definition.replacen("CREATE SCHEMA ", "CREATE SCHEMA IF NOT EXISTS ", 1)
        }
        ObjectKind::Sequence => definition
            .replacen("CREATE SEQUENCE ", "CREATE SEQUENCE IF NOT EXISTS ", 1)
            .replacen(
                "CREATE UNLOGGED SEQUENCE ",
                "CREATE UNLOGGED SEQUENCE IF NOT EXISTS ",
                1,
            ),
        ObjectKind::Type => {
            format!("DO $$ BEGIN {definition} EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
        }
        ObjectKind::View => definition
            .replacen("CREATE VIEW ", "CREATE OR REPLACE VIEW ", 1)
            .replacen(
                "CREATE MATERIALIZED VIEW ",
                "CREATE MATERIALIZED VIEW IF NOT EXISTS ",
                1,
            ),
        ObjectKind::ViewIndex => {
            definition.replacen(" INDEX ", " INDEX CONCURRENTLY IF NOT EXISTS ", 1)
        }
        ObjectKind::Trigger => {
            definition.replacen("CREATE TRIGGER ", "CREATE OR REPLACE TRIGGER ", 1)
        }
        ObjectKind::Policy => format!("{}\n{definition}", object.drop),
        ObjectKind::Extension
        | ObjectKind::SequenceOwner
        | ObjectKind::Function
        | ObjectKind::RowSecurity
        | ObjectKind::Comment => definition.clone(),
    };
    Some(fix(object_phase(kind), sql))
}

/// A changed object: replaced where PostgreSQL can do it in place; a type or a sequence needs a
/// human.
pub(super) fn replace_object(kind: ObjectKind, _name: &str, object: &Object) -> Option<Fix> {
    match kind {
        ObjectKind::Type | ObjectKind::Sequence | ObjectKind::Extension | ObjectKind::Schema => {
            None
        }
        ObjectKind::View if object.definition.starts_with("CREATE MATERIALIZED") => Some(fix(
            Phase::Code,
            format!("{}\n{}", object.drop, object.definition),
        )),
        ObjectKind::ViewIndex => Some(fix(
            Phase::Indexes,
            format!(
                "{}\n{}",
                object.drop,
                object
                    .definition
                    .replacen(" INDEX ", " INDEX CONCURRENTLY ", 1)
            ),
        )),
        _ => create_object(kind, object),
    }
}

#[cfg(test)]
mod tests {
    use super::{foreign_key_target, references};

    #[test]
    fn a_foreign_key_names_its_table_and_columns_even_quoted_with_a_parenthesis() {
        assert_eq!(
            foreign_key_target(
                "FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE"
            ),
            Some(("public.users", "id"))
        );
        assert_eq!(
            foreign_key_target(r#"FOREIGN KEY (a, b) REFERENCES "my(s)".t(x, "Größe")"#),
            Some((r#""my(s)".t"#, r#"x, "Größe""#))
        );
        assert_eq!(foreign_key_target("CHECK (a > 0)"), None);
        assert!(references(
            r#"FOREIGN KEY (a) REFERENCES "my(s)".t(x, y)"#,
            r#""my(s)".t"#,
            "y"
        ));
        assert!(!references(
            "FOREIGN KEY (a) REFERENCES public.t(x)",
            "public.t",
            "y"
        ));
    }
}
