//! Replays a migration statement by statement: resolves each effect against what earlier
//! migrations created (an index's table, a constraint's kind, a column's type), keeps the locks
//! of the open transaction, and runs the rules.

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{Classified, Detail, Effect, Rename, classify};
use super::model::{Cost, LockMode, LockRow, Op, lookup};
use super::rules::{self};
use super::{Finding, LintConfig, Rule};
use crate::analysis::AnalyzedMigration;
use crate::analysis::statements::StatementSpan;

/// A constraint created by an earlier statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintFact {
    /// The referenced table of a foreign key.
    pub references: Option<String>,
    /// For `CHECK (col IS NOT NULL)`: the column.
    pub not_null_column: Option<String>,
    pub validated: bool,
    /// For a foreign key: its columns on both sides, as [`SchemaFacts::key_columns`] holds them
    /// while it exists.
    pub key_columns: Vec<(String, String)>,
}

/// What the migrations so far created: carried from one migration to the next.
#[derive(Debug, Clone, Default)]
pub struct SchemaFacts {
    pub columns: BTreeMap<(String, String), String>,
    pub constraints: BTreeMap<(String, String), ConstraintFact>,
    pub indexes: BTreeMap<String, String>,
    /// Table -> tables with a foreign key to it.
    pub referenced_by: BTreeMap<String, BTreeSet<String>>,
    /// View -> the tables (and views) it reads.
    pub views: BTreeMap<String, Vec<String>>,
    /// (table, column) pairs some index covers.
    pub indexed_columns: BTreeSet<(String, String)>,
    /// Functions the migrations created VOLATILE (their default): a column default calling one
    /// is evaluated for every row.
    pub volatile_functions: BTreeSet<String>,
    /// Domain -> its base type and whether it checks values.
    pub domains: BTreeMap<String, (String, bool)>,
    /// Index -> the columns of its table it reads, each with whether an expression or the
    /// predicate reads it.
    pub index_reads: BTreeMap<String, Vec<(String, bool)>>,
    /// (table, column) of a foreign key, on either side -> the table at its other end. A type
    /// change of such a column makes the key again.
    pub key_columns: BTreeMap<(String, String), String>,
}

impl SchemaFacts {
    /// A type as a type change sees it (measured): leaving a domain is leaving for its base
    /// type; entering a domain that checks nothing is entering its base type, but one that
    /// checks values is a type of its own (every row is checked: a rewrite).
    fn storage_type(&self, ty: &str, entering: bool) -> String {
        let mut current = ty.trim().to_owned();
        for _ in 0..16 {
            match self.domains.get(&super::classify::normalize(&current)) {
                Some((base, checks)) if !(entering && *checks) => current = base.clone(),
                _ => break,
            }
        }
        current
    }
}

impl SchemaFacts {
    /// The indexes of `table` an expression or a predicate of which reads `column`: a type
    /// change of the column builds them again (measured: even `varchar` to `text`).
    pub fn computing_indexes(&self, table: &str, column: &str) -> Vec<String> {
        self.indexes
            .iter()
            .filter(|(index, on)| {
                *on == table
                    && self.index_reads.get(*index).is_some_and(|reads| {
                        reads.iter().any(|(c, computed)| *computed && c == column)
                    })
            })
            .map(|(index, _)| index.clone())
            .collect()
    }

    /// Forgets what the server drops with a column: the indexes that read it.
    fn drop_column(&mut self, table: &str, column: &str) {
        let dropped: Vec<String> = self
            .indexes
            .iter()
            .filter(|(index, on)| {
                *on == table
                    && self
                        .index_reads
                        .get(*index)
                        .is_some_and(|reads| reads.iter().any(|(c, _)| c == column))
            })
            .map(|(index, _)| index.clone())
            .collect();
        for index in dropped {
            self.indexes.remove(&index);
            self.index_reads.remove(&index);
        }
        self.columns.remove(&(table.to_owned(), column.to_owned()));
    }

    /// Forgets what the server drops with a table: its columns and indexes.
    fn drop_table(&mut self, table: &str) {
        let dropped: Vec<String> = self
            .indexes
            .iter()
            .filter(|(_, on)| *on == table)
            .map(|(index, _)| index.clone())
            .collect();
        for index in dropped {
            self.indexes.remove(&index);
            self.index_reads.remove(&index);
        }
        self.columns.retain(|(t, _), _| t != table);
    }

    /// The tables reading `relation` reads: itself, or through a view, the tables under it.
    fn tables_under(&self, relation: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = vec![relation.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(current) = pending.pop() {
            if !seen.insert(current.clone()) || seen.len() > 256 {
                continue;
            }
            match self.views.get(&current) {
                Some(reads) => pending.extend(reads.iter().cloned()),
                None => out.push(current),
            }
        }
        out
    }
}

/// A lock the open transaction holds from an earlier statement.
#[derive(Debug, Clone)]
pub struct Held {
    pub mode: LockMode,
    /// The statement that took it (its line).
    pub line: usize,
}

/// An effect with its row of the lock model, resolved for this statement.
#[derive(Debug, Clone)]
pub struct ResolvedEffect {
    pub effect: Effect,
    pub row: LockRow,
}

/// What a rule sees of one statement.
pub struct StatementContext<'a> {
    pub migration: &'a AnalyzedMigration,
    pub span: &'a StatementSpan,
    pub sql: &'a str,
    pub classified: &'a Classified,
    pub effects: &'a [ResolvedEffect],
    /// Locks held on existing tables by earlier statements of the same transaction.
    pub held: &'a BTreeMap<String, Held>,
    pub created_tables: &'a BTreeSet<String>,
    /// Tables created in this migration and filled from existing tables (`CREATE TABLE … AS`,
    /// `SELECT … INTO`, `INSERT … SELECT`): they carry no traffic, but they are as big as what
    /// they were filled from, so scanning them or building an index on them is slow.
    pub filled_tables: &'a BTreeSet<String>,
    /// Constraints added earlier in the same transaction: (table, name).
    pub added_in_transaction: &'a BTreeSet<(String, String)>,
    pub in_transaction: bool,
    /// How many statements share this statement's transaction (1 in a no-transaction migration).
    pub statements_in_transaction: usize,
    pub facts: &'a SchemaFacts,
    pub target_version: u32,
}

impl StatementContext<'_> {
    /// A table that existed before this migration, so it carries live traffic.
    pub fn is_existing(&self, table: &str) -> bool {
        !table.is_empty() && !self.created_tables.contains(table)
    }

    /// Locks held from earlier statements that block writes on existing tables, as
    /// `` `t` (SHARE, line 4) ``. A table created in this migration carries no traffic, filled or
    /// not: nothing waits on its locks.
    pub fn write_blocking_held(&self) -> Vec<String> {
        self.held
            .iter()
            .filter(|(table, h)| h.mode.blocks_writes() && self.is_existing(table))
            .map(|(table, h)| {
                format!(
                    "{} on `{table}` (taken at line {})",
                    h.mode.sql_name(),
                    h.line
                )
            })
            .collect()
    }

    /// The strongest lock this statement takes on `table`, over all its actions: a multi-action
    /// `ALTER TABLE` holds the union of its actions' locks.
    pub fn strongest_on(&self, table: &str) -> Option<LockMode> {
        self.effects
            .iter()
            .flat_map(|r| {
                let main = (r.effect.table == table).then_some(r.row.table).flatten();
                let other = (r.effect.other.as_deref() == Some(table))
                    .then_some(r.row.other)
                    .flatten();
                main.into_iter().chain(other)
            })
            .max()
    }

    /// The text of the action that adds constraint `name` (`CONSTRAINT name …`, up to the comma
    /// that ends it), when this statement has several actions.
    pub fn constraint_action(&self, name: &str) -> Option<String> {
        let lower = self.sql.to_lowercase();
        let needle = format!("constraint {}", name.to_lowercase());
        // Lower-casing keeps byte offsets for ASCII; any other text is left alone.
        if lower.len() != self.sql.len() {
            return None;
        }
        let start = lower.find(&needle)?;
        let rest = self.sql.get(start..)?;
        let (mut depth, mut quoted, mut end) = (0i32, false, rest.len());
        for (offset, c) in rest.char_indices() {
            match c {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                ',' | ';' if !quoted && depth == 0 => {
                    end = offset;
                    break;
                }
                _ => {}
            }
        }
        Some(rest.get(..end)?.trim().to_owned())
    }

    /// The statement on one line, shortened.
    pub fn statement(&self) -> String {
        crate::analysis::statements::one_line(self.sql, 120)
    }
}

/// Splits a type into its name (normalised) and its arguments.
fn type_parts(ty: &str) -> (String, Vec<u32>) {
    let ty = ty
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    // `timestamp(3) with time zone`: the zone comes after the precision.
    let (ty, zoned) = match ty.strip_suffix(" with time zone") {
        Some(rest) => (rest.to_owned(), true),
        None => (
            ty.strip_suffix(" without time zone")
                .map_or(ty.clone(), str::to_owned),
            false,
        ),
    };
    let (name, args) = match ty.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect(),
        ),
        None => (ty.clone(), Vec::new()),
    };
    // PostgreSQL's own names for the SQL spellings.
    let name = match (name.as_str(), zoned) {
        ("timestamp", true) => "timestamptz",
        ("time", true) => "timetz",
        ("character varying", _) => "varchar",
        ("bit varying", _) => "varbit",
        ("int" | "integer", _) => "int4",
        ("bigint", _) => "int8",
        ("smallint", _) => "int2",
        ("decimal", _) => "numeric",
        ("double precision" | "float", _) => "float8",
        ("real", _) => "float4",
        ("boolean", _) => "bool",
        (other, _) => other,
    }
    .to_owned();
    (name, args)
}

/// The element type and the number of array dimensions (`int[][]`, `int ARRAY`).
fn array_parts(ty: &str) -> (&str, usize) {
    let mut element = ty.trim();
    let mut dimensions = 0;
    loop {
        if let Some(rest) = element.strip_suffix("[]") {
            element = rest.trim_end();
        } else if element.len() > 5
            && element.is_char_boundary(element.len() - 5)
            && element[element.len() - 5..].eq_ignore_ascii_case("array")
        {
            element = element[..element.len() - 5].trim_end();
        } else {
            return (element, dimensions);
        }
        dimensions += 1;
    }
}

/// Whether changing a column from `old` to `new` needs no rewrite (PostgreSQL's
/// binary-coercible cases, measured in LOCKS.md). An array is rewritten by any change of its
/// element type, even one that is binary-coercible for the element alone (measured on
/// PostgreSQL 15: `varchar(20)[]` to `varchar(40)[]` or `text[]`).
pub fn type_change_is_compatible(old: &str, new: &str) -> bool {
    type_change_is_compatible_in(old, new, false)
}

/// [`type_change_is_compatible`] in a session whose TimeZone is UTC (`utc`), where
/// `timestamp` and `timestamptz` hold the same bytes and PostgreSQL 12+ skips the rewrite.
pub fn type_change_is_compatible_in(old: &str, new: &str, utc: bool) -> bool {
    if utc {
        let (old_name, old_args) = type_parts(old);
        let (new_name, new_args) = type_parts(new);
        let pair = [old_name.as_str(), new_name.as_str()];
        if (pair == ["timestamp", "timestamptz"] || pair == ["timestamptz", "timestamp"])
            && (new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0]))
        {
            return true;
        }
    }
    type_change_is_compatible_strict(old, new)
}

/// What `SET TimeZone` does to the session: `Some(true)` for a zone at UTC all year,
/// `Some(false)` for any other value or a reset, `None` for a statement that is not about it.
fn sets_utc(statement: &str) -> Option<bool> {
    let text = statement
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if let Some(rest) = text.strip_prefix("reset ") {
        return matches!(
            rest.trim_end_matches(';').trim(),
            "timezone" | "time zone" | "all"
        )
        .then_some(false);
    }
    let rest = text.strip_prefix("set ")?;
    let rest = rest
        .strip_prefix("local ")
        .or_else(|| rest.strip_prefix("session "))
        .unwrap_or(rest);
    let value = rest
        .strip_prefix("timezone")
        .or_else(|| rest.strip_prefix("time zone"))?
        .trim_start();
    let value = value
        .strip_prefix('=')
        .or_else(|| value.strip_prefix("to "))
        .unwrap_or(value)
        .trim()
        .trim_end_matches(';')
        .trim()
        .trim_matches('\'')
        .trim_matches('"');
    Some(matches!(
        value,
        "utc" | "etc/utc" | "gmt" | "etc/gmt" | "zulu" | "universal" | "etc/universal" | "uct"
    ))
}

fn type_change_is_compatible_strict(old: &str, new: &str) -> bool {
    let (old_element, old_dimensions) = array_parts(old);
    let (new_element, new_dimensions) = array_parts(new);
    let (old_name, old_args) = type_parts(old_element);
    let (new_name, new_args) = type_parts(new_element);
    if old_name == new_name && old_args == new_args && old_dimensions == new_dimensions {
        return true;
    }
    if old_dimensions > 0 || new_dimensions > 0 {
        return false;
    }
    match (old_name.as_str(), new_name.as_str()) {
        ("varchar", "text") | ("text", "varchar") if new_args.is_empty() => true,
        ("varchar", "varchar") => {
            new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0])
        }
        // More fractional digits (or the default, the most) keep every stored value.
        ("timestamp", "timestamp")
        | ("timestamptz", "timestamptz")
        | ("time", "time")
        | ("timetz", "timetz")
        | ("interval", "interval") => {
            new_args.is_empty() || (!old_args.is_empty() && new_args[0] >= old_args[0])
        }
        ("numeric", "numeric") => {
            new_args.is_empty()
                || (old_args.len() == 2
                    && new_args.len() == 2
                    && new_args[1] == old_args[1]
                    && new_args[0] >= old_args[0])
        }
        _ => false,
    }
}

fn resolve(
    effect: Effect,
    facts: &SchemaFacts,
    created_indexes: &BTreeMap<String, String>,
    target_version: u32,
    session_utc: bool,
) -> Vec<ResolvedEffect> {
    let mut effect = effect;
    let index_table = |index: &str| {
        created_indexes
            .get(index)
            .or_else(|| facts.indexes.get(index))
            .cloned()
    };
    if let Detail::Index(index) = &effect.detail
        && effect.table.is_empty()
    {
        effect.table = index_table(index).unwrap_or_else(|| format!("(table of index {index})"));
    }
    // Before 18 a virtual generated column does not exist: judged as the stored one the target
    // has.
    if effect.op == Op::AddColumnVirtualGenerated
        && target_version < super::model::first_version(Op::AddColumnVirtualGenerated)
    {
        effect.op = Op::AddColumnVolatileDefault;
    }
    let constraint = |effect: &Effect| match &effect.detail {
        Detail::Constraint {
            name: Some(name), ..
        } => facts.constraints.get(&(effect.table.clone(), name.clone())),
        _ => None,
    };
    match effect.op {
        Op::ValidateCheck | Op::DropCheckConstraint => {
            if let Some(references) = constraint(&effect).and_then(|c| c.references.clone()) {
                effect.op = if effect.op == Op::ValidateCheck {
                    Op::ValidateForeignKey
                } else {
                    Op::DropForeignKey
                };
                effect.other = Some(references);
            }
        }
        Op::AlterColumnTypeRewrite => {
            if let Detail::TypeChange {
                column,
                new_type,
                computed: None,
            } = &effect.detail
                && let Some(old) = facts.columns.get(&(effect.table.clone(), column.clone()))
                && type_change_is_compatible_in(
                    &facts.storage_type(old, false),
                    &facts.storage_type(new_type, true),
                    // The heap keeps its bytes in UTC, but the column's indexes are rebuilt.
                    session_utc
                        && !facts
                            .indexed_columns
                            .contains(&(effect.table.clone(), column.clone())),
                )
            {
                effect.op = Op::AlterColumnTypeCompatible;
            }
            // The foreign key on the column is dropped and made again: measured, without a scan
            // when the change keeps the key's comparison, but under ACCESS EXCLUSIVE on the table
            // at its other end as well.
            if effect.op == Op::AlterColumnTypeCompatible
                && let Detail::TypeChange { column, .. } = &effect.detail
                && !facts.computing_indexes(&effect.table, column).is_empty()
            {
                effect.op = Op::AlterColumnTypeRebuildsIndex;
            }
            if effect.op == Op::AlterColumnTypeCompatible
                && let Detail::TypeChange { column, .. } = &effect.detail
                && let Some(other) = facts
                    .key_columns
                    .get(&(effect.table.clone(), column.clone()))
                && *other != effect.table
            {
                effect.op = Op::AlterKeyColumnType;
                effect.other = Some(other.clone());
            }
        }
        Op::DropTableCascade => {
            let referencing: Vec<String> = facts
                .referenced_by
                .get(&effect.table)
                .into_iter()
                .flatten()
                .filter(|t| **t != effect.table)
                .cloned()
                .collect();
            if referencing.is_empty() {
                effect.op = Op::DropTable;
            } else {
                return referencing
                    .into_iter()
                    .map(|other| {
                        let mut e = effect.clone();
                        e.other = Some(other);
                        ResolvedEffect {
                            row: lookup(e.op, target_version),
                            effect: e,
                        }
                    })
                    .collect();
            }
        }
        _ => {}
    }
    let mut row = lookup(effect.op, target_version);
    if let Detail::LockMode(mode) = effect.detail {
        row.table = Some(mode);
    }
    if effect.op == Op::SetNotNull
        && target_version >= 12
        && let Detail::Column(column) = &effect.detail
        && facts.constraints.iter().any(|((table, _), c)| {
            *table == effect.table && c.validated && c.not_null_column.as_deref() == Some(column)
        })
    {
        // PG12+: a valid CHECK (col IS NOT NULL) proves the column, no scan.
        row.cost = Cost::Instant;
    }
    vec![ResolvedEffect { effect, row }]
}

fn record_facts(classified: &Classified, effects: &[ResolvedEffect], facts: &mut SchemaFacts) {
    let table = classified
        .creates_table
        .clone()
        .or_else(|| effects.first().map(|e| e.effect.table.clone()))
        .unwrap_or_default();
    for (column, ty) in &classified.columns {
        facts
            .columns
            .insert((table.clone(), column.clone()), ty.clone());
    }
    if let Some((index, table)) = &classified.creates_index {
        facts.indexes.insert(index.clone(), table.clone());
        facts
            .index_reads
            .insert(index.clone(), classified.index_reads.clone());
    }
    for key in &classified.foreign_keys {
        facts
            .referenced_by
            .entry(key.references.clone())
            .or_default()
            .insert(key.table.clone());
        for column in &key.columns {
            facts
                .key_columns
                .insert((key.table.clone(), column.clone()), key.references.clone());
        }
        for column in &key.referenced_columns {
            facts
                .key_columns
                .insert((key.references.clone(), column.clone()), key.table.clone());
        }
        let key_columns: Vec<(String, String)> = key
            .columns
            .iter()
            .map(|c| (key.table.clone(), c.clone()))
            .chain(
                key.referenced_columns
                    .iter()
                    .map(|c| (key.references.clone(), c.clone())),
            )
            .collect();
        // Unnamed, it gets PostgreSQL's name: `<table>_<columns>_fkey`.
        let table_name = key.table.rsplit('.').next().unwrap_or(&key.table);
        let name = key
            .name
            .clone()
            .unwrap_or_else(|| format!("{table_name}_{}_fkey", key.columns.join("_")));
        facts.constraints.insert(
            (key.table.clone(), name),
            ConstraintFact {
                references: Some(key.references.clone()),
                not_null_column: None,
                validated: true,
                key_columns,
            },
        );
    }
    for resolved in effects {
        let effect = &resolved.effect;
        let name = match &effect.detail {
            Detail::Constraint {
                name: Some(name), ..
            } => Some((effect.table.clone(), name.clone())),
            _ => None,
        };
        match (effect.op, name) {
            (Op::AddCheck | Op::AddCheckNotValid, Some(key)) => {
                let not_null_column = match &effect.detail {
                    Detail::Constraint {
                        not_null_column, ..
                    } => not_null_column.clone(),
                    _ => None,
                };
                facts.constraints.insert(
                    key,
                    ConstraintFact {
                        references: None,
                        not_null_column,
                        validated: effect.op == Op::AddCheck,
                        key_columns: Vec::new(),
                    },
                );
            }
            (Op::AddForeignKeyNotValid, Some(key)) => {
                if let Some(c) = facts.constraints.get_mut(&key) {
                    c.validated = false;
                }
            }
            (Op::ValidateCheck | Op::ValidateForeignKey, Some(key)) => {
                if let Some(c) = facts.constraints.get_mut(&key) {
                    c.validated = true;
                }
            }
            (Op::DropCheckConstraint | Op::DropForeignKey, Some(key)) => {
                if let Some(dropped) = facts.constraints.remove(&key) {
                    for column in dropped.key_columns {
                        facts.key_columns.remove(&column);
                    }
                }
            }
            (
                Op::AlterColumnTypeRewrite
                | Op::AlterColumnTypeCompatible
                | Op::AlterKeyColumnType
                | Op::AlterColumnTypeRebuildsIndex,
                _,
            ) => {
                if let Detail::TypeChange {
                    column, new_type, ..
                } = &effect.detail
                {
                    facts
                        .columns
                        .insert((effect.table.clone(), column.clone()), new_type.clone());
                }
            }
            (Op::DropIndex | Op::DropIndexConcurrently, _) => {
                if let Detail::Index(index) = &effect.detail {
                    facts.indexes.remove(index);
                    facts.index_reads.remove(index);
                }
            }
            (Op::DropColumn, _) => {
                if let Detail::Column(column) = &effect.detail {
                    facts.drop_column(&effect.table, column);
                }
            }
            (Op::DropTable | Op::DropTableCascade, _) => facts.drop_table(&effect.table),
            _ => {}
        }
    }
}

/// Moves what is known under an object's old name to its new one: the facts from earlier
/// migrations, and the open transaction's locks and new tables and indexes.
fn follow_rename(
    rename: &Rename,
    facts: &mut SchemaFacts,
    held: &mut BTreeMap<String, Held>,
    created_tables: &mut BTreeSet<String>,
    created_indexes: &mut BTreeMap<String, String>,
) {
    fn rekey<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, change: impl Fn(&K) -> Option<K>) {
        let moved: Vec<(K, K)> = map
            .keys()
            .filter_map(|k| change(k).map(|new| (k.clone(), new)))
            .collect();
        for (old, new) in moved {
            if let Some(value) = map.remove(&old) {
                map.insert(new, value);
            }
        }
    }
    match rename {
        Rename::Table { from, to } => {
            let table = |t: &String| (t == from).then(|| to.clone());
            rekey(&mut facts.columns, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            rekey(&mut facts.constraints, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            for owner in facts
                .indexes
                .values_mut()
                .chain(created_indexes.values_mut())
            {
                if owner == from {
                    owner.clone_from(to);
                }
            }
            rekey(&mut facts.key_columns, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            for other in facts.key_columns.values_mut() {
                if other == from {
                    other.clone_from(to);
                }
            }
            rekey(&mut facts.referenced_by, table);
            for referencing in facts.referenced_by.values_mut() {
                if referencing.remove(from) {
                    referencing.insert(to.clone());
                }
            }
            for constraint in facts.constraints.values_mut() {
                if constraint.references.as_ref() == Some(from) {
                    constraint.references = Some(to.clone());
                }
            }
            rekey(held, table);
            if created_tables.remove(from) {
                created_tables.insert(to.clone());
            }
        }
        Rename::Column { table, from, to } => {
            rekey(&mut facts.columns, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
            rekey(&mut facts.key_columns, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
            for (index, reads) in facts.index_reads.iter_mut() {
                if facts.indexes.get(index) == Some(table) {
                    for (column, _) in reads.iter_mut().filter(|(c, _)| c == from) {
                        column.clone_from(to);
                    }
                }
            }
            for ((t, _), constraint) in facts.constraints.iter_mut() {
                if t == table && constraint.not_null_column.as_ref() == Some(from) {
                    constraint.not_null_column = Some(to.clone());
                }
            }
        }
        Rename::Constraint { table, from, to } => {
            rekey(&mut facts.constraints, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
        }
        Rename::Index { from, to } => {
            let index = |i: &String| (i == from).then(|| to.clone());
            rekey(&mut facts.indexes, index);
            rekey(&mut facts.index_reads, index);
            rekey(created_indexes, index);
        }
        Rename::Type { from, to } => {
            for ty in facts.columns.values_mut() {
                if ty == from {
                    ty.clone_from(to);
                }
            }
        }
    }
}

/// One statement as the walker saw it: its effects resolved against the lock model, and what
/// the rules found.
pub struct WalkedStatement {
    pub span: StatementSpan,
    pub effects: Vec<ResolvedEffect>,
    pub findings: Vec<(&'static Rule, Finding)>,
    /// Whether everything the statement touches is a table this migration created (so no
    /// other session can be waiting on it), by a statement the lock model knows. A migration
    /// made only of such statements holds no lock that live traffic can queue behind, however
    /// long its transaction stays open.
    pub touches_only_new_tables: bool,
}

/// Whether a statement touches tables of `created` only: one of the kinds that name all they
/// lock, whose every effect (and `INSERT` target) is such a table.
fn touches_only(
    classified: &Classified,
    effects: &[ResolvedEffect],
    created: &BTreeSet<String>,
) -> bool {
    let understood = classified.names_all_it_locks
        && !(classified.opaque
            || classified.unknown
            || classified.transaction_control
            || classified.concurrently);
    understood
        && classified
            .inserts_into
            .iter()
            .all(|table| created.contains(table))
        && effects.iter().all(|resolved| {
            let effect = &resolved.effect;
            std::iter::once(&effect.table)
                .chain(effect.other.as_ref())
                .all(|table| created.contains(table))
        })
}

/// Lints one migration statement by statement.
pub fn walk(
    migration: &AnalyzedMigration,
    facts: &mut SchemaFacts,
    config: &LintConfig,
) -> Vec<WalkedStatement> {
    let statements = &migration.statements;
    let in_transaction = !migration.header.no_transaction;
    let statements_in_transaction = if in_transaction { statements.len() } else { 1 };
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut created_tables = BTreeSet::new();
    let mut filled_tables = BTreeSet::new();
    let mut created_indexes = BTreeMap::new();
    let mut added_in_transaction = BTreeSet::new();
    let mut out = Vec::new();
    // A `SET TimeZone` holds for the rest of the migration's session.
    let mut session_utc = false;
    for parsed in statements {
        if !in_transaction {
            held.clear();
            added_in_transaction.clear();
        }
        if let Some(utc) = sets_utc(parsed.span.text(&migration.sql)) {
            session_utc = utc;
        }
        let mut classified = classify(&parsed.stmt);
        // `CREATE INDEX IF NOT EXISTS` of an index that exists builds nothing (measured: SHARE
        // for an instant, no scan; the model has no row for that lock alone, so it is left out).
        if parsed.span.rerunnable
            && let Some((index, _)) = &classified.creates_index
            && (facts.indexes.contains_key(index) || created_indexes.contains_key(index))
        {
            classified
                .effects
                .retain(|e| !matches!(e.op, Op::CreateIndex | Op::CreateIndexConcurrently));
        }
        if let Some((domain, base, checks)) = &classified.creates_domain {
            facts
                .domains
                .insert(domain.clone(), (base.clone(), *checks));
        }
        if let Some(domain) = &classified.constrains_domain
            && let Some(entry) = facts.domains.get_mut(domain)
        {
            entry.1 = true;
        }
        if let Some((function, volatile)) = &classified.creates_function {
            if *volatile {
                facts.volatile_functions.insert(function.clone());
            } else {
                facts.volatile_functions.remove(function);
            }
        }
        // Reading a view reads the tables under it; a default calling a volatile function of
        // the migrations' rewrites like `random()`.
        let volatile_default = |column: &str| {
            classified.default_calls.iter().any(|(c, calls)| {
                c == column && calls.iter().any(|f| facts.volatile_functions.contains(f))
            })
        };
        let expanded: Vec<Effect> = classified
            .effects
            .iter()
            .flat_map(|e| match (&e.op, &e.detail) {
                (Op::AddColumn, Detail::Column(c) | Detail::RequiredColumn(c))
                    if volatile_default(c) =>
                {
                    vec![Effect {
                        op: Op::AddColumnVolatileDefault,
                        detail: Detail::Column(c.clone()),
                        ..e.clone()
                    }]
                }
                (Op::ReadRows, _) if facts.views.contains_key(&e.table) => facts
                    .tables_under(&e.table)
                    .into_iter()
                    .map(|table| Effect { table, ..e.clone() })
                    .collect(),
                _ => vec![e.clone()],
            })
            .collect();
        if let Some((view, reads)) = &classified.creates_view {
            facts.views.insert(view.clone(), reads.clone());
        }
        facts
            .indexed_columns
            .extend(classified.indexed_columns.iter().cloned());
        let effects: Vec<ResolvedEffect> = expanded
            .into_iter()
            .flat_map(|e| {
                resolve(
                    e,
                    facts,
                    &created_indexes,
                    config.target_version,
                    session_utc,
                )
            })
            .collect();
        let ctx = StatementContext {
            migration,
            span: &parsed.span,
            sql: parsed.span.text(&migration.sql),
            classified: &classified,
            effects: &effects,
            held: &held,
            created_tables: &created_tables,
            filled_tables: &filled_tables,
            added_in_transaction: &added_in_transaction,
            in_transaction,
            statements_in_transaction,
            facts,
            target_version: config.target_version,
        };
        let mut findings = Vec::new();
        for rule in rules::ALL {
            for finding in (rule.check)(&ctx) {
                findings.push((*rule, finding));
            }
        }

        // Locks stay until the end of the transaction.
        for resolved in &effects {
            let e = &resolved.effect;
            let pairs = [
                (Some(e.table.clone()), resolved.row.table),
                (e.other.clone(), resolved.row.other),
            ];
            for (table, mode) in pairs {
                if let (Some(table), Some(mode)) = (table, mode)
                    && !table.is_empty()
                    && !created_tables.contains(&table)
                {
                    let entry = held.entry(table).or_insert(Held {
                        mode,
                        line: parsed.span.line,
                    });
                    if mode > entry.mode {
                        *entry = Held {
                            mode,
                            line: parsed.span.line,
                        };
                    }
                }
            }
            if let Detail::Constraint {
                name: Some(name), ..
            } = &e.detail
                && matches!(
                    e.op,
                    Op::AddCheck
                        | Op::AddCheckNotValid
                        | Op::AddForeignKey
                        | Op::AddForeignKeyNotValid
                )
            {
                added_in_transaction.insert((e.table.clone(), name.clone()));
            }
        }
        let reads_existing = effects.iter().any(|r| {
            r.effect.op == Op::ReadRows
                && !r.effect.table.is_empty()
                && (!created_tables.contains(&r.effect.table)
                    || filled_tables.contains(&r.effect.table))
        });
        if let Some(table) = &classified.creates_table {
            created_tables.insert(table.clone());
            if reads_existing {
                filled_tables.insert(table.clone());
            }
        }
        if reads_existing {
            for written in effects.iter().filter(|r| r.effect.op == Op::WriteRows) {
                if created_tables.contains(&written.effect.table) {
                    filled_tables.insert(written.effect.table.clone());
                }
            }
        }
        if let Some((index, table)) = &classified.creates_index {
            created_indexes.insert(index.clone(), table.clone());
        }
        // Judged once the statement's own table counts as created, and before a rename moves
        // the name its effects use.
        let touches_only_new_tables = touches_only(&classified, &effects, &created_tables);
        record_facts(&classified, &effects, facts);
        for rename in &classified.renames {
            follow_rename(
                rename,
                facts,
                &mut held,
                &mut created_tables,
                &mut created_indexes,
            );
        }
        out.push(WalkedStatement {
            span: parsed.span.clone(),
            effects,
            findings,
            touches_only_new_tables,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The effects of the last migration's statements: (op, table, other).
    fn last_effects(bodies: &[&str]) -> Vec<(Op, String, Option<String>)> {
        let plan = crate::lint::lock_plan(
            &crate::lint::rules::test_support::migrations(bodies),
            &LintConfig::default(),
        );
        plan.last()
            .into_iter()
            .flatten()
            .flat_map(|s| s.effects.iter())
            .map(|e| (e.effect.op, e.effect.table.clone(), e.effect.other.clone()))
            .collect()
    }

    #[test]
    fn constraints_and_indexes_follow_their_renames() {
        use crate::lint::rules::test_support::BASE;
        // The foreign key is still known as one after its rename, and after its table's.
        let effects = last_effects(&[
            BASE,
            "ALTER TABLE posts RENAME CONSTRAINT posts_user_fk TO posts_author_fk;",
            "ALTER TABLE posts RENAME TO articles;",
            "ALTER TABLE users RENAME TO accounts;",
            "ALTER TABLE articles DROP CONSTRAINT posts_author_fk;",
        ]);
        assert_eq!(
            effects,
            [(
                Op::DropForeignKey,
                "articles".to_owned(),
                Some("accounts".to_owned())
            )]
        );
        // An index keeps its table through both renames.
        let effects = last_effects(&[
            BASE,
            "ALTER INDEX posts_user_idx RENAME TO posts_author_idx;\nALTER TABLE posts RENAME TO articles;",
            "REINDEX INDEX posts_author_idx;",
        ]);
        assert_eq!(effects, [(Op::Reindex, "articles".to_owned(), None)]);
    }

    #[test]
    fn binary_compatible_type_changes() {
        assert!(type_change_is_compatible("varchar(10)", "varchar(20)"));
        assert!(type_change_is_compatible("character varying(10)", "text"));
        assert!(type_change_is_compatible("numeric(10,2)", "numeric(12,2)"));
        assert!(type_change_is_compatible("int", "integer"));
        assert!(!type_change_is_compatible("int", "bigint"));
        assert!(!type_change_is_compatible("varchar(20)", "varchar(10)"));
        assert!(!type_change_is_compatible("text", "varchar(5)"));
        assert!(!type_change_is_compatible("numeric(10,2)", "numeric(12,3)"));
        assert!(!type_change_is_compatible("timestamp", "timestamptz"));
        assert!(!type_change_is_compatible("varchar(20)[]", "varchar(40)[]"));
        assert!(!type_change_is_compatible("varchar(20)[]", "text[]"));
        assert!(!type_change_is_compatible("int[]", "bigint[]"));
        assert!(!type_change_is_compatible("int", "int[]"));
        assert!(type_change_is_compatible("text[]", "text []"));
        assert!(type_change_is_compatible("int ARRAY", "integer[]"));
    }

    #[test]
    fn timestamp_to_timestamptz_keeps_its_rows_after_a_set_timezone_utc() {
        let hits = |body: &str| {
            super::super::rules::test_support::hits(
                &["CREATE TABLE e (at timestamp, until timestamptz);", body],
                "changing-column-type",
            )
        };
        assert_eq!(
            hits("ALTER TABLE e ALTER COLUMN at TYPE timestamptz USING at;"),
            ["m/1.sql:3"]
        );
        for set in [
            "SET timezone = 'UTC';",
            "SET LOCAL TIME ZONE 'UTC';",
            "SET TimeZone TO 'Etc/UTC';",
        ] {
            assert!(
                hits(&format!(
                    "{set}\nALTER TABLE e ALTER COLUMN at TYPE timestamptz USING at;\nALTER TABLE e ALTER COLUMN until TYPE timestamp;"
                ))
                .is_empty(),
                "{set}"
            );
        }
        // An index on the column is rebuilt all the same: a scan under ACCESS EXCLUSIVE.
        assert_eq!(
            super::super::rules::test_support::hits(
                &[
                    "CREATE TABLE e (at timestamp);\nCREATE INDEX e_at ON e (at);",
                    "SET timezone = 'UTC';\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;",
                ],
                "changing-column-type",
            ),
            ["m/1.sql:4"]
        );
        // Another zone, or back to the server's: the rewrite is back.
        assert_eq!(
            hits(
                "SET timezone = 'UTC';\nSET timezone = 'Europe/Paris';\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;"
            ),
            ["m/1.sql:5"]
        );
        assert_eq!(
            hits(
                "SET timezone = 'UTC';\nRESET timezone;\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;"
            ),
            ["m/1.sql:5"]
        );
    }

    #[test]
    fn a_type_written_in_another_spelling_is_the_same_type() {
        for (old, new) in [
            ("timestamptz", "timestamp with time zone"),
            ("timestamptz(3)", "timestamp(3) with time zone"),
            ("timestamp", "timestamp without time zone"),
            ("TIMESTAMP  WITH TIME ZONE", "timestamptz"),
            ("timetz", "time with time zone"),
            ("double precision", "float8"),
            ("float", "double precision"),
            ("real", "float4"),
            ("boolean", "bool"),
            ("int4", "integer"),
            ("character varying(30)", "varchar(30)"),
            ("bit varying(8)", "varbit(8)"),
        ] {
            assert!(type_change_is_compatible(old, new), "{old} -> {new}");
        }
        assert!(!type_change_is_compatible(
            "timestamp",
            "timestamp with time zone"
        ));
        assert!(!type_change_is_compatible(
            "timestamptz(6)",
            "timestamp(3) with time zone"
        ));
        assert!(!type_change_is_compatible("real", "double precision"));
        // Fractional seconds: more digits keep every value, fewer round them.
        assert!(type_change_is_compatible("timestamptz(3)", "timestamptz"));
        assert!(type_change_is_compatible("time(2)", "time(4)"));
        assert!(!type_change_is_compatible("timestamp", "timestamp(2)"));
    }
}
