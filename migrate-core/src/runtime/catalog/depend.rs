//! Creation order from the server's own record of what needs what (`pg_depend`), for a baseline
//! and for the statements of a reconciling migration.
//!
//! Each statement a baseline writes is a step named by the object it creates, as the catalog
//! read names the two sides of a `pg_depend` row: `pg_class:<oid>` (a table, a sequence, a view,
//! an index), `pg_proc:<oid>`, `pg_constraint:<oid>`, `pg_type:<oid>`… A step comes after every
//! step it requires. Among the steps that are ready, the one whose kind comes first (extensions,
//! schemas, types, sequences, tables, sequence owners, functions, keys, foreign keys, indexes,
//! views, triggers, row security, policies) goes next, then the oldest object. A catalog read
//! from a snapshot has no dependencies: that order alone.
//!
//! One cycle is allowed by the server and common in real schemas: a column default that calls a
//! function whose SQL-standard body (or whose result type) needs the same table. It is broken as
//! pg_dump breaks it: the table is created without that default, and the default is set once the
//! function exists. A cycle that cannot be broken that way is cut at its oldest object, and the
//! baseline's verification replay reports it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use super::render::create_table;
use super::{Catalog, Constraint, Object, ObjectKind, Table};

/// A step's kind, in the order ready steps are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Extension,
    Schema,
    Type,
    Sequence,
    Table,
    SequenceOwner,
    Function,
    Key,
    ForeignKey,
    Index,
    View,
    ViewIndex,
    Trigger,
    RowSecurity,
    Policy,
}

fn object_rank(kind: ObjectKind) -> Option<Rank> {
    Some(match kind {
        ObjectKind::Extension => Rank::Extension,
        ObjectKind::Schema => Rank::Schema,
        ObjectKind::Type => Rank::Type,
        ObjectKind::Sequence => Rank::Sequence,
        ObjectKind::SequenceOwner => Rank::SequenceOwner,
        ObjectKind::Function => Rank::Function,
        ObjectKind::View => Rank::View,
        ObjectKind::ViewIndex => Rank::ViewIndex,
        ObjectKind::Trigger => Rank::Trigger,
        ObjectKind::RowSecurity => Rank::RowSecurity,
        ObjectKind::Policy => Rank::Policy,
        // Last, once everything they describe exists.
        ObjectKind::Comment => return None,
    })
}

/// `class:oid`, or `class:name` for an object read from a snapshot (no oid).
fn named(class: &str, oid: u64, name: &str) -> String {
    if oid == 0 {
        format!("{class}:{name}")
    } else {
        format!("{class}:{oid}")
    }
}

pub(super) fn table_node(name: &str, table: &Table) -> String {
    named("pg_class", table.order, name)
}

pub(super) fn constraint_node(table: &str, name: &str, constraint: &Constraint) -> String {
    named(
        "pg_constraint",
        constraint.order,
        &format!("{table}.{name}"),
    )
}

pub(super) fn index_node(table_name: &str, name: &str, table: &Table) -> String {
    named(
        "pg_class",
        index_oid(table, name),
        &format!("{table_name}.{name}"),
    )
}

/// An index's oid, 0 when the catalog came from a snapshot.
fn index_oid(table: &Table, index: &str) -> u64 {
    table.index_order.get(index).copied().unwrap_or(0)
}

pub(super) fn object_node(kind: ObjectKind, name: &str, object: &Object) -> String {
    let class = match kind {
        ObjectKind::Extension => "pg_extension",
        ObjectKind::Schema => "pg_namespace",
        ObjectKind::Type => "pg_type",
        ObjectKind::Sequence | ObjectKind::View | ObjectKind::ViewIndex => "pg_class",
        ObjectKind::SequenceOwner => "owned",
        ObjectKind::Function => "pg_proc",
        ObjectKind::Trigger => "pg_trigger",
        ObjectKind::Policy => "pg_policy",
        // Row security is a table's setting, two of them per table: named by what it says.
        ObjectKind::RowSecurity => return format!("rls:{name}"),
        ObjectKind::Comment => return format!("comment:{name}"),
    };
    named(class, object.order, name)
}

/// A column default that can be set after its table is created (not a generated column's
/// expression, which only `CREATE TABLE` or `ADD COLUMN` can give).
struct Default {
    column: String,
    requires: BTreeSet<usize>,
    splittable: bool,
    split: bool,
}

struct Step<'a> {
    node: String,
    rank: Rank,
    order: u64,
    sql: String,
    requires: BTreeSet<usize>,
    /// A table's column defaults and what each requires.
    defaults: Vec<Default>,
    table: Option<(&'a str, &'a Table)>,
}

impl Step<'_> {
    fn needs(&self) -> impl Iterator<Item = usize> + '_ {
        self.requires.iter().copied().chain(
            self.defaults
                .iter()
                .filter(|d| !d.split)
                .flat_map(|d| d.requires.iter().copied()),
        )
    }
}

struct Plan<'a> {
    steps: Vec<Step<'a>>,
}

/// The steps not created yet: how many steps each still needs, which steps need each, and the
/// ones that need nothing more, first in creation order at the top.
struct Waiting {
    unmet: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: BinaryHeap<Reverse<(Rank, u64, usize)>>,
}

impl<'a> Plan<'a> {
    /// Every statement of a baseline but the comments, with what each requires.
    fn new(catalog: &'a Catalog) -> Plan<'a> {
        let mut steps = Vec::new();
        let step = |node: String, rank, order, sql: String| Step {
            node,
            rank,
            order,
            sql,
            requires: BTreeSet::new(),
            defaults: Vec::new(),
            table: None,
        };
        for ((kind, name), object) in &catalog.objects {
            if let Some(rank) = object_rank(*kind) {
                steps.push(step(
                    object_node(*kind, name, object),
                    rank,
                    object.order,
                    object.definition.clone(),
                ));
            }
        }
        for (name, table) in &catalog.tables {
            let mut created = step(
                table_node(name, table),
                Rank::Table,
                table.order,
                create_table(name, table, false),
            );
            created.table = Some((name.as_str(), table));
            steps.push(created);
            for (constraint, definition) in &table.constraints {
                let rank = if definition.kind == 'f' {
                    Rank::ForeignKey
                } else {
                    Rank::Key
                };
                steps.push(step(
                    constraint_node(name, constraint, definition),
                    rank,
                    definition.order,
                    format!(
                        "ALTER TABLE {name} ADD CONSTRAINT {constraint} {};",
                        definition.definition
                    ),
                ));
            }
            for (index, definition) in &table.indexes {
                steps.push(step(
                    index_node(name, index, table),
                    Rank::Index,
                    index_oid(table, index),
                    format!(
                        "{};",
                        definition.replacen(" INDEX ON ", &format!(" INDEX {index} ON "), 1)
                    ),
                ));
            }
        }
        let index: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.node.clone(), i))
            .collect();
        let mut plan = Plan { steps };
        // What the catalog knows without `pg_depend`: a partition needs its parent, a sequence's
        // owner its sequence and its table, row security its table.
        for (name, table) in &catalog.tables {
            if let Some((parent, _)) = &table.partition_of
                && let Some(parent) = catalog.tables.get_key_value(parent)
            {
                plan.require(
                    &index,
                    &table_node(name, table),
                    &table_node(parent.0, parent.1),
                );
            }
        }
        for ((kind, name), object) in &catalog.objects {
            let node = object_node(*kind, name, object);
            match kind {
                ObjectKind::SequenceOwner => {
                    plan.require(&index, &node, &named("pg_class", object.order, name));
                }
                ObjectKind::RowSecurity => {
                    let table = name.trim_end_matches(" (forced)");
                    if let Some(found) = catalog.tables.get_key_value(table) {
                        plan.require(&index, &node, &table_node(found.0, found.1));
                    }
                }
                _ => {}
            }
        }
        for (dependent, required) in &catalog.dependencies {
            let Some(&required) = index.get(required) else {
                continue;
            };
            match dependent.strip_prefix("default:") {
                Some(default) => {
                    let Some((oid, column)) = default.split_once(':') else {
                        continue;
                    };
                    let Some(&table) = index.get(&format!("pg_class:{oid}")) else {
                        continue;
                    };
                    plan.require_for_default(table, column, required);
                }
                None => {
                    if let Some(&dependent) = index.get(dependent) {
                        plan.require_index(dependent, required);
                    }
                }
            }
        }
        plan
    }

    fn require(&mut self, index: &HashMap<String, usize>, dependent: &str, required: &str) {
        if let (Some(&dependent), Some(&required)) = (index.get(dependent), index.get(required)) {
            self.require_index(dependent, required);
        }
    }

    fn require_index(&mut self, dependent: usize, required: usize) {
        if dependent != required {
            self.steps[dependent].requires.insert(required);
        }
    }

    fn require_for_default(&mut self, table: usize, column: &str, required: usize) {
        if table == required {
            return;
        }
        let step = &mut self.steps[table];
        let splittable = step.table.is_some_and(|(_, t)| {
            t.columns
                .iter()
                .any(|c| c.name == column && c.generated.is_none() && c.default.is_some())
        });
        match step.defaults.iter_mut().find(|d| d.column == column) {
            Some(default) => {
                default.requires.insert(required);
            }
            None => step.defaults.push(Default {
                column: column.to_owned(),
                requires: BTreeSet::from([required]),
                splittable,
                split: false,
            }),
        }
    }

    /// The steps in creation order: the ready step (everything it needs created) of the first
    /// kind, then the oldest, as a heap of the ready ones and a count of what each still waits
    /// for (a baseline of 15,000 objects is ordered in a moment).
    fn sorted(mut self) -> Vec<Step<'a>> {
        let mut done = vec![false; self.steps.len()];
        let mut order = Vec::with_capacity(self.steps.len());
        let mut waiting = self.waiting(&done);
        while order.len() < self.steps.len() {
            let next = match waiting.ready.pop() {
                Some(Reverse((_, _, next))) => next,
                None => {
                    if self.split_a_default(&done) {
                        done.resize(self.steps.len(), false);
                        waiting = self.waiting(&done);
                        continue;
                    }
                    // A cycle no default explains: cut at its oldest object.
                    match (0..self.steps.len())
                        .filter(|&i| !done[i])
                        .min_by_key(|&i| self.key(i))
                    {
                        Some(next) => next,
                        None => break,
                    }
                }
            };
            if done[next] {
                continue;
            }
            done[next] = true;
            order.push(next);
            for &dependent in &waiting.dependents[next] {
                waiting.unmet[dependent] -= 1;
                if waiting.unmet[dependent] == 0 && !done[dependent] {
                    waiting.ready.push(Reverse(self.key(dependent)));
                }
            }
        }
        let mut steps: Vec<Option<Step>> = self.steps.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| steps[i].take()).collect()
    }

    /// The order among ready steps: kind, then age.
    fn key(&self, i: usize) -> (Rank, u64, usize) {
        (self.steps[i].rank, self.steps[i].order, i)
    }

    /// What each step not `done` still waits for.
    fn waiting(&self, done: &[bool]) -> Waiting {
        let mut waiting = Waiting {
            unmet: vec![0; self.steps.len()],
            dependents: vec![Vec::new(); self.steps.len()],
            ready: BinaryHeap::new(),
        };
        for (i, step) in self.steps.iter().enumerate() {
            if done[i] {
                continue;
            }
            let needs: BTreeSet<usize> = step.needs().filter(|&r| !done[r]).collect();
            waiting.unmet[i] = needs.len();
            for required in needs {
                waiting.dependents[required].push(i);
            }
            if waiting.unmet[i] == 0 {
                waiting.ready.push(Reverse(self.key(i)));
            }
        }
        waiting
    }

    /// Breaks a cycle through a column default: the first waiting table with a default that
    /// waits is created without it, and the default is set in a step of its own.
    fn split_a_default(&mut self, done: &[bool]) -> bool {
        let waiting =
            |d: &Default| !d.split && d.splittable && d.requires.iter().any(|&r| !done[r]);
        let Some(table) = (0..self.steps.len())
            .filter(|&i| !done[i] && self.steps[i].defaults.iter().any(waiting))
            .min_by_key(|&i| (self.steps[i].rank, self.steps[i].order, i))
        else {
            return false;
        };
        let Some((name, definition)) = self.steps[table].table else {
            return false;
        };
        let mut without = definition.clone();
        let mut added = Vec::new();
        for default in self.steps[table].defaults.iter_mut().filter(|d| waiting(d)) {
            default.split = true;
            let Some(column) = without
                .columns
                .iter_mut()
                .find(|c| c.name == default.column)
            else {
                continue;
            };
            let Some(expression) = column.default.take() else {
                continue;
            };
            let mut requires = default.requires.clone();
            requires.insert(table);
            added.push(Step {
                node: format!("default:{name}.{}", column.name),
                rank: Rank::Table,
                order: definition.order,
                sql: format!(
                    "ALTER TABLE {name} ALTER COLUMN {} SET DEFAULT {expression};",
                    column.name
                ),
                requires,
                defaults: Vec::new(),
                table: None,
            });
        }
        self.steps[table].sql = create_table(name, &without, false);
        self.steps.extend(added);
        true
    }
}

/// A baseline's statements but the comments, in creation order.
pub(super) fn creation_order(catalog: &Catalog) -> Vec<String> {
    Plan::new(catalog)
        .sorted()
        .into_iter()
        .map(|step| step.sql)
        .collect()
}

/// Each object's position in creation order, by node name.
pub(super) fn positions(catalog: &Catalog) -> HashMap<String, usize> {
    Plan::new(catalog)
        .sorted()
        .into_iter()
        .enumerate()
        .map(|(position, step)| (step.node, position))
        .collect()
}
