//! Replays a migration statement by statement: resolves each effect against what earlier
//! migrations created (an index's table, a constraint's kind, a column's type), keeps the locks
//! of the open transaction, and runs the rules.

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{Classified, Detail, Effect, classify};
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
}

/// What the migrations so far created: carried from one migration to the next.
#[derive(Debug, Clone, Default)]
pub struct SchemaFacts {
    pub columns: BTreeMap<(String, String), String>,
    pub constraints: BTreeMap<(String, String), ConstraintFact>,
    pub indexes: BTreeMap<String, String>,
    /// Table -> tables with a foreign key to it.
    pub referenced_by: BTreeMap<String, BTreeSet<String>>,
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

    /// Locks held from earlier statements that block writes, as `` `t` (SHARE, line 4) ``.
    pub fn write_blocking_held(&self) -> Vec<String> {
        self.held
            .iter()
            .filter(|(_, h)| h.mode.blocks_writes())
            .map(|(table, h)| {
                format!(
                    "{} on `{table}` (taken at line {})",
                    h.mode.sql_name(),
                    h.line
                )
            })
            .collect()
    }

    /// The statement on one line, shortened.
    pub fn statement(&self) -> String {
        crate::analysis::statements::one_line(self.sql, 120)
    }
}

/// Splits a type into its name (normalised) and its arguments.
fn type_parts(ty: &str) -> (String, Vec<u32>) {
    let ty = ty.trim().to_lowercase();
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
    let name = match name.as_str() {
        "character varying" => "varchar".to_owned(),
        "int" | "integer" => "int4".to_owned(),
        "bigint" => "int8".to_owned(),
        "smallint" => "int2".to_owned(),
        "decimal" => "numeric".to_owned(),
        _ => name,
    };
    (name, args)
}

/// Whether changing a column from `old` to `new` needs no rewrite (PostgreSQL's
/// binary-coercible cases, measured in LOCKS.md).
pub fn type_change_is_compatible(old: &str, new: &str) -> bool {
    let (old_name, old_args) = type_parts(old);
    let (new_name, new_args) = type_parts(new);
    if old_name == new_name && old_args == new_args {
        return true;
    }
    match (old_name.as_str(), new_name.as_str()) {
        ("varchar", "text") | ("text", "varchar") if new_args.is_empty() => true,
        ("varchar", "varchar") => {
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
            if let Detail::TypeChange { column, new_type } = &effect.detail
                && let Some(old) = facts.columns.get(&(effect.table.clone(), column.clone()))
                && type_change_is_compatible(old, new_type)
            {
                effect.op = Op::AlterColumnTypeCompatible;
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
    }
    for (name, from, to) in &classified.foreign_keys {
        facts
            .referenced_by
            .entry(to.clone())
            .or_default()
            .insert(from.clone());
        if let Some(name) = name {
            facts.constraints.insert(
                (from.clone(), name.clone()),
                ConstraintFact {
                    references: Some(to.clone()),
                    not_null_column: None,
                    validated: true,
                },
            );
        }
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
                facts.constraints.remove(&key);
            }
            (Op::AlterColumnTypeRewrite | Op::AlterColumnTypeCompatible, _) => {
                if let Detail::TypeChange { column, new_type } = &effect.detail {
                    facts
                        .columns
                        .insert((effect.table.clone(), column.clone()), new_type.clone());
                }
            }
            (Op::DropIndex | Op::DropIndexConcurrently, _) => {
                if let Detail::Index(index) = &effect.detail {
                    facts.indexes.remove(index);
                }
            }
            _ => {}
        }
    }
}

/// One statement as the walker saw it: its effects resolved against the lock model, and what
/// the rules found.
pub struct WalkedStatement {
    pub span: StatementSpan,
    pub effects: Vec<ResolvedEffect>,
    pub findings: Vec<(&'static Rule, Finding)>,
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
    let mut created_indexes = BTreeMap::new();
    let mut added_in_transaction = BTreeSet::new();
    let mut out = Vec::new();
    for parsed in statements {
        if !in_transaction {
            held.clear();
            added_in_transaction.clear();
        }
        let classified = classify(&parsed.stmt);
        let effects: Vec<ResolvedEffect> = classified
            .effects
            .iter()
            .cloned()
            .flat_map(|e| resolve(e, facts, &created_indexes, config.target_version))
            .collect();
        let ctx = StatementContext {
            migration,
            span: &parsed.span,
            sql: parsed.span.text(&migration.sql),
            classified: &classified,
            effects: &effects,
            held: &held,
            created_tables: &created_tables,
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
        out.push(WalkedStatement {
            span: parsed.span.clone(),
            effects: effects.clone(),
            findings,
        });

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
        if let Some(table) = &classified.creates_table {
            created_tables.insert(table.clone());
        }
        if let Some((index, table)) = &classified.creates_index {
            created_indexes.insert(index.clone(), table.clone());
        }
        record_facts(&classified, &effects, facts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
