//! What the migrations so far created, as the lint needs to know it: columns and their types,
//! constraints, indexes, views, functions, domains. Carried from one migration to the next.

use std::collections::{BTreeMap, BTreeSet};

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
    pub(super) fn storage_type(&self, ty: &str, entering: bool) -> String {
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
    pub(super) fn drop_column(&mut self, table: &str, column: &str) {
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
    pub(super) fn drop_table(&mut self, table: &str) {
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
    pub(super) fn tables_under(&self, relation: &str) -> Vec<String> {
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
