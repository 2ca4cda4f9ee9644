//! The differences between what the migrations build and what a database has, each with the
//! SQL that reconciles it in this project's safe forms.
//!
//! Every statement of a fix is idempotent (`IF NOT EXISTS`, `IF EXISTS`, `CREATE OR REPLACE`,
//! a drop before a re-add), so that the migration they make is a no-op on a database that
//! already has the schema: replayed into the next drift check's shadow database, or applied to a
//! fresh environment, it changes nothing.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::depend;
use super::difference::{Difference, Fix, Phase, Severity, fix};
use super::fixes::{
    add_column, add_constraint, change_column, create_index, create_object, foreign_key_target,
    replace_object,
};
use super::render::column_text;
use super::{Catalog, Constraint, Object, ObjectKind, Table};

/// The differences that make `actual` what `expected` describes: tables in name order, then
/// the other objects by kind and name.
pub fn diff(expected: &Catalog, actual: &Catalog) -> Vec<Difference> {
    let order = Order {
        expected,
        actual,
        create: OnceCell::new(),
        drop: OnceCell::new(),
    };
    // The tables foreign keys of the database reference.
    let referenced: HashSet<&str> = actual
        .tables
        .values()
        .flat_map(|table| table.constraints.values())
        .filter(|c| c.kind == 'f')
        .filter_map(|c| foreign_key_target(&c.definition).map(|(table, _)| table))
        .collect();
    let mut out = Vec::new();
    for (name, want) in &expected.tables {
        match actual.tables.get(name) {
            None => out.push(Difference {
                position: order.create(&depend::table_node(name, want)),
                object: format!("table {name}"),
                expected: Some(format!("{} column(s)", want.columns.len())),
                actual: None,
                severity: Severity::Safe,
                fix: create_missing_table(name, want),
            }),
            Some(have) => {
                let tables = Pair {
                    want,
                    have,
                    referenced: referenced.contains(name.as_str()),
                };
                diff_table(name, &tables, actual, &order, &mut out);
            }
        }
    }
    for (name, have) in &actual.tables {
        if !expected.tables.contains_key(name) {
            out.push(Difference {
                position: order.drop(&depend::table_node(name, have)),
                object: format!("table {name}"),
                expected: None,
                actual: Some(format!("{} column(s)", have.columns.len())),
                severity: Severity::Destructive,
                fix: vec![fix(
                    Phase::Destructive,
                    format!(
                        "-- migrate:allow ban-drop-table: only the database has it\nDROP TABLE IF EXISTS {name};"
                    ),
                )],
            });
        }
    }
    diff_objects(&expected.objects, &actual.objects, &order, &mut out);
    out
}

/// A table the database lacks: created with its checks and keys, then its foreign keys and its
/// indexes, each in its own phase.
fn create_missing_table(name: &str, table: &Table) -> Vec<Fix> {
    let mut fixes = vec![fix(
        Phase::CreateTables,
        super::render::create_table(name, table, true),
    )];
    for (constraint, definition) in &table.constraints {
        if definition.kind == 'f' {
            fixes.push(add_constraint(name, constraint, definition, false));
        }
    }
    for (index, definition) in &table.indexes {
        fixes.push(fix(Phase::Indexes, create_index(index, definition)));
    }
    fixes
}

/// The schema part of a qualified table name as the catalog prints it (`public.users`,
/// `"my.schema"."Order Items"`): up to the first dot outside double quotes.
fn schema_of(table: &str) -> &str {
    let mut quoted = false;
    for (at, c) in table.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return &table[..at],
            _ => {}
        }
    }
    "public"
}

/// Where each difference's fixes go within their phase: what is created in the order of the
/// catalog the migrations build, what is dropped in the reverse order of the database's. Each
/// order is sorted on first use: a status check of a database without drift sorts nothing.
struct Order<'a> {
    expected: &'a Catalog,
    actual: &'a Catalog,
    create: OnceCell<HashMap<String, usize>>,
    drop: OnceCell<HashMap<String, usize>>,
}

impl Order<'_> {
    fn created(&self) -> &HashMap<String, usize> {
        self.create.get_or_init(|| depend::positions(self.expected))
    }

    fn create(&self, node: &str) -> usize {
        self.created().get(node).copied().unwrap_or(0)
    }

    /// Where a column's fixes go: with its table, or, when its default calls a function that
    /// needs the table (the cycle a baseline breaks with `SET DEFAULT`), after that function.
    fn column(&self, table: &str, column: &str, table_node: &str) -> usize {
        self.created()
            .get(&format!("default:{table}.{column}"))
            .copied()
            .unwrap_or_else(|| self.create(table_node))
    }

    fn drop(&self, node: &str) -> usize {
        let dropped = self.drop.get_or_init(|| depend::positions(self.actual));
        usize::MAX - dropped.get(node).copied().unwrap_or(0)
    }
}

fn diff_table(
    table: &str,
    tables: &Pair<'_>,
    actual: &Catalog,
    order: &Order<'_>,
    out: &mut Vec<Difference>,
) {
    let Pair { want, have, .. } = *tables;
    let (want_node, have_node) = (
        depend::table_node(table, want),
        depend::table_node(table, have),
    );
    let shape = |t: &Table| {
        let mut text = Vec::new();
        if t.unlogged {
            text.push("unlogged".to_owned());
        }
        if let Some(key) = &t.partition_key {
            text.push(format!("partitioned by {key}"));
        }
        if let Some((parent, bound)) = &t.partition_of {
            text.push(format!("partition of {parent} {bound}"));
        }
        text.join(", ")
    };
    if shape(want) != shape(have) {
        out.push(Difference {
            position: order.create(&want_node),
            object: format!("table {table}"),
            expected: Some(shape(want)).filter(|s| !s.is_empty()),
            actual: Some(shape(have)).filter(|s| !s.is_empty()),
            severity: Severity::Review,
            fix: Vec::new(),
        });
    }
    // A partition's columns are its parent's: the parent's differences say it all.
    let partition = want.partition_of.is_some() && have.partition_of.is_some();
    for column in want.columns.iter().filter(|_| !partition) {
        let object = format!("column {table}.{}", column.name);
        match have.columns.iter().find(|c| c.name == column.name) {
            None => out.push(add_column(table, column, object).at(order.column(
                table,
                &column.name,
                &want_node,
            ))),
            Some(found) if found != column => {
                out.push(
                    change_column(table, column, found, actual, object).at(order.column(
                        table,
                        &column.name,
                        &want_node,
                    )),
                );
            }
            Some(_) => {}
        }
    }
    for found in have.columns.iter().filter(|_| !partition) {
        if !want.columns.iter().any(|c| c.name == found.name) {
            out.push(Difference {
                position: order.drop(&have_node),
                object: format!("column {table}.{}", found.name),
                expected: None,
                actual: Some(column_text(found)),
                severity: Severity::Destructive,
                fix: vec![fix(
                    Phase::Destructive,
                    format!(
                        "-- migrate:allow ban-drop-column: only the database has it\nALTER TABLE {table} DROP COLUMN IF EXISTS {};",
                        found.name
                    ),
                )],
            });
        }
    }
    let constraints = |t: &Table| -> BTreeMap<String, String> {
        t.constraints
            .iter()
            .map(|(n, c)| (n.clone(), c.definition.clone()))
            .collect()
    };
    diff_named(
        table,
        Named::Constraint(&want.constraints),
        &constraints(want),
        &constraints(have),
        (tables, order),
        out,
    );
    diff_named(
        table,
        Named::Index,
        &want.indexes,
        &have.indexes,
        (tables, order),
        out,
    );
    let schema = schema_of(table);
    for (name, definition) in &want.indexes {
        let same = have.indexes.get(name) == Some(definition);
        if same && !want.invalid_indexes.contains(name) && have.invalid_indexes.contains(name) {
            out.push(Difference {
                position: order.create(&depend::index_node(table, name, want)),
                object: format!("index {table}.{name}"),
                expected: Some("valid".to_owned()),
                actual: Some("INVALID (an index build that failed or was interrupted)".to_owned()),
                severity: Severity::Safe,
                fix: vec![fix(
                    Phase::Indexes,
                    format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name};\n{}",
                        create_index(name, definition)
                    ),
                )],
            });
        }
    }
}

/// What `diff_named` compares: indexes, or a table's constraints (with what the migrations
/// build of each, to add it back in its safe form).
enum Named<'a> {
    Index,
    Constraint(&'a BTreeMap<String, Constraint>),
}

/// The table as the migrations build it and as the database has it.
struct Pair<'a> {
    want: &'a Table,
    have: &'a Table,
    /// Foreign keys of the database reference the table.
    referenced: bool,
}

impl Named<'_> {
    /// The node of the object named `name` in `table` (see [`depend`]).
    fn node(&self, table_name: &str, name: &str, table: &Table) -> String {
        match self {
            Named::Index => depend::index_node(table_name, name, table),
            Named::Constraint(_) => match table.constraints.get(name) {
                Some(constraint) => depend::constraint_node(table_name, name, constraint),
                None => String::new(),
            },
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Named::Index => "index",
            Named::Constraint(_) => "constraint",
        }
    }

    /// Adds the object the migrations build under `name`; `replacing` drops the database's
    /// own of that name first (a constraint's add always does).
    /// `None` when it needs a human: a key that foreign keys of the database depend on, changed
    /// (dropping it would fail, and the foreign keys would have to be made again around it).
    fn add(
        &self,
        table: &str,
        schema: &str,
        name: &str,
        definition: &str,
        replacing: bool,
        referenced: bool,
    ) -> Option<Fix> {
        Some(match self {
            Named::Index if replacing => fix(
                Phase::Indexes,
                format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name};\n{}",
                    create_index(name, definition)
                ),
            ),
            Named::Index => fix(Phase::Indexes, create_index(name, definition)),
            Named::Constraint(constraints) => match constraints.get(name) {
                Some(constraint)
                    if replacing && referenced && matches!(constraint.kind, 'p' | 'u' | 'x') =>
                {
                    return None;
                }
                Some(constraint) => add_constraint(table, name, constraint, replacing),
                None => return None,
            },
        })
    }

    fn rename(&self, table: &str, schema: &str, old: &str, name: &str) -> Fix {
        match self {
            Named::Index => fix(
                Phase::Indexes,
                format!("ALTER INDEX IF EXISTS {schema}.{old} RENAME TO {name};"),
            ),
            // RENAME CONSTRAINT has no IF EXISTS: the block makes it a no-op where the old name
            // is gone.
            Named::Constraint(_) => fix(
                Phase::Keys,
                format!(
                    "DO $$ BEGIN ALTER TABLE {table} RENAME CONSTRAINT {old} TO {name}; EXCEPTION WHEN undefined_object THEN NULL; END $$;"
                ),
            ),
        }
    }

    fn drop(&self, table: &str, schema: &str, name: &str) -> Fix {
        fix(
            Phase::Destructive,
            match self {
                Named::Index => format!("DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name};"),
                Named::Constraint(_) => {
                    format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name};")
                }
            },
        )
    }
}

/// Constraints or indexes: by name, and an object with another name but the same definition is
/// a rename, not a drop and an add.
fn diff_named(
    table: &str,
    named: Named<'_>,
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
    (tables, order): (&Pair<'_>, &Order<'_>),
    out: &mut Vec<Difference>,
) {
    let kind = named.label();
    let schema = schema_of(table);
    let unmatched_have: Vec<(&String, &String)> = have
        .iter()
        .filter(|(name, _)| !want.contains_key(*name))
        .collect();
    let mut renamed_from = Vec::new();
    for (name, definition) in want {
        let object = format!("{kind} {table}.{name}");
        let position = || order.create(&named.node(table, name, tables.want));
        match have.get(name) {
            Some(found) if found == definition => {}
            Some(found) => out.push(Difference {
                position: position(),
                object,
                expected: Some(definition.clone()),
                actual: Some(found.clone()),
                severity: Severity::Review,
                fix: named
                    .add(table, schema, name, definition, true, tables.referenced)
                    .into_iter()
                    .collect(),
            }),
            None => {
                let rename = unmatched_have
                    .iter()
                    .find(|(old, found)| *found == definition && !renamed_from.contains(*old));
                if let Some((old, _)) = rename {
                    renamed_from.push((*old).clone());
                    out.push(Difference {
                        position: position(),
                        object,
                        expected: Some(definition.clone()),
                        actual: Some(format!("the same, named {old}")),
                        severity: Severity::Safe,
                        fix: vec![named.rename(table, schema, old, name)],
                    });
                    continue;
                }
                out.push(Difference {
                    position: position(),
                    object,
                    expected: Some(definition.clone()),
                    actual: None,
                    severity: Severity::Safe,
                    fix: named
                        .add(table, schema, name, definition, false, tables.referenced)
                        .into_iter()
                        .collect(),
                });
            }
        }
    }
    for (name, found) in unmatched_have {
        if renamed_from.contains(name) {
            continue;
        }
        out.push(Difference {
            position: order.drop(&named.node(table, name, tables.have)),
            object: format!("{kind} {table}.{name}"),
            expected: None,
            actual: Some(found.clone()),
            severity: Severity::Destructive,
            fix: vec![named.drop(table, schema, name)],
        });
    }
}

/// Objects other than tables, by kind and name.
fn diff_objects(
    want: &BTreeMap<(ObjectKind, String), Object>,
    have: &BTreeMap<(ObjectKind, String), Object>,
    order: &Order<'_>,
    out: &mut Vec<Difference>,
) {
    for ((kind, name), object) in want {
        let label = format!("{kind} {name}");
        let position = || order.create(&depend::object_node(*kind, name, object));
        match have.get(&(*kind, name.clone())) {
            Some(found) if found.definition == object.definition => {
                if *kind == ObjectKind::Extension && found.version != object.version {
                    out.push(Difference {
                        position: position(),
                        object: label,
                        expected: object.version.clone().map(|v| format!("version {v}")),
                        actual: found.version.clone().map(|v| format!("version {v}")),
                        severity: Severity::Review,
                        fix: object
                            .version
                            .iter()
                            .map(|v| {
                                fix(
                                    Phase::Objects,
                                    format!(
                                        "ALTER EXTENSION {name} UPDATE TO {};",
                                        super::render::quote_literal(v)
                                    ),
                                )
                            })
                            .collect(),
                    });
                }
            }
            Some(found) => out.push(Difference {
                position: position(),
                object: label,
                expected: Some(object.definition.clone()),
                actual: Some(found.definition.clone()),
                severity: Severity::Review,
                fix: replace_object(*kind, name, object).into_iter().collect(),
            }),
            None => out.push(Difference {
                position: position(),
                object: label,
                expected: Some(object.definition.clone()),
                actual: None,
                severity: Severity::Safe,
                fix: create_object(*kind, object).into_iter().collect(),
            }),
        }
    }
    for ((kind, name), found) in have {
        if !want.contains_key(&(*kind, name.clone())) {
            out.push(Difference {
                position: order.drop(&depend::object_node(*kind, name, found)),
                object: format!("{kind} {name}"),
                expected: None,
                actual: Some(found.definition.clone()),
                severity: Severity::Destructive,
                fix: vec![fix(Phase::Destructive, found.drop.clone())],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::schema_of;

    #[test]
    fn the_schema_of_a_table_is_read_outside_quotes() {
        assert_eq!(schema_of("public.users"), "public");
        assert_eq!(schema_of("\"my.schema\".\"Order Items\""), "\"my.schema\"");
        assert_eq!(schema_of("\"Größe.é\".t"), "\"Größe.é\"");
        assert_eq!(schema_of("users"), "public");
    }
}
