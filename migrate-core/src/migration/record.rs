//! One migration as a binary carries it: static data only, filled in by `embed_migrations!` or
//! by the standalone command from a directory.

use std::time::Duration;

/// One statement of a migration: its byte range in the SQL (without the `;`) and where it starts
/// in the file, so that a runtime error can name the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
    /// `CREATE INDEX CONCURRENTLY`'s index (schema-qualified when its table is).
    pub concurrent_index: Option<&'static str>,
    /// Any `CREATE INDEX CONCURRENTLY`'s table, as written (named index or not).
    pub concurrent_table: Option<&'static str>,
    /// `IF [NOT] EXISTS`: safe to run again after a crash.
    pub rerunnable: bool,
}

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    parts: MigrationParts,
}

/// The fields of an embedded migration, filled in by `embed_migrations!`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct MigrationParts {
    pub revision: &'static str,
    pub parents: &'static [&'static str],
    pub message: Option<&'static str>,
    pub no_transaction: bool,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub path: &'static str,
    pub sql: &'static str,
    pub statements: &'static [Statement],
    pub checksum: &'static str,
    pub self_contained: bool,
    /// A squashed migration's `replaces:` revisions; empty for any other.
    pub replaces: &'static [&'static str],
}

#[doc(hidden)]
pub const fn migration(parts: MigrationParts) -> Migration {
    Migration { parts }
}

impl Migration {
    /// Its parents and statements, once [`super::packed::decode`] has all of them in place.
    pub(crate) fn set_lists(
        &mut self,
        parents: &'static [&'static str],
        statements: &'static [Statement],
    ) {
        self.parts.parents = parents;
        self.parts.statements = statements;
    }

    pub fn revision(&self) -> &'static str {
        self.parts.revision
    }
    /// Empty for the first migration.
    pub fn parents(&self) -> &'static [&'static str] {
        self.parts.parents
    }
    pub fn message(&self) -> Option<&'static str> {
        self.parts.message
    }
    /// `-- migrate:no-transaction`: run statement by statement, outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.parts.no_transaction
    }
    /// The revisions a squashed migration stands for besides its own (`-- replaces:`): a
    /// database that ran them has this one too.
    pub fn replaces(&self) -> &'static [&'static str] {
        self.parts.replaces
    }
    /// `-- migrate:lock-timeout`, overriding the runner's default.
    pub fn lock_timeout(&self) -> Option<Duration> {
        self.parts.lock_timeout
    }
    /// `-- migrate:statement-timeout`, overriding the runner's default.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.parts.statement_timeout
    }
    /// The file it came from, relative to the crate that embedded it.
    pub fn path(&self) -> &'static str {
        self.parts.path
    }
    /// The whole file, line endings normalised to LF.
    pub fn sql(&self) -> &'static str {
        self.parts.sql
    }
    pub fn statements(&self) -> &'static [Statement] {
        self.parts.statements
    }
    /// The text of one statement.
    pub fn statement_sql(&self, statement: &Statement) -> &'static str {
        self.parts
            .sql
            .get(statement.start..statement.end)
            .unwrap_or("")
    }
    /// Hex SHA-256 of [`Migration::sql`].
    pub fn checksum(&self) -> &'static str {
        self.parts.checksum
    }
    /// Transactional, and every statement touches only tables the migration creates (as the
    /// lint judged it at compile time), so it locks no relation that existed before it and no
    /// query of live traffic can wait behind it: the runner commits a run of such migrations in
    /// one transaction.
    pub fn self_contained(&self) -> bool {
        self.parts.self_contained
    }
}
