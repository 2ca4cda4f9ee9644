//! What a rule is and what it sees: the rule, its finding, and the context of one statement
//! (its resolved effects, the locks the transaction holds, what earlier migrations created).

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{Classified, Effect};
use super::facts::SchemaFacts;
use super::locks::{LockMode, LockRow};
use crate::analysis::AnalyzedMigration;
use crate::analysis::statements::StatementSpan;

/// How a rule's findings are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Off,
}

/// A rule's verdict on one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub message: String,
    pub help: String,
}

/// One lint rule: its id, a one-line summary, and its check.
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
    pub check: fn(&StatementContext<'_>) -> Vec<Finding>,
    /// The level when the project does not set one.
    pub default_level: Level,
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
