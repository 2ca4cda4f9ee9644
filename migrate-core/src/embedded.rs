//! The migrations as `embed_migrations!` bakes them into the binary: static data only.

use std::sync::OnceLock;
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
}

#[doc(hidden)]
pub const fn migration(parts: MigrationParts) -> Migration {
    Migration { parts }
}

#[doc(hidden)]
pub const fn migrations(list: &'static [Migration]) -> Migrations {
    migrations_for(list, DEFAULT_TARGET_POSTGRES)
}

/// The PostgreSQL major version the lint judges statements for unless configured.
pub const DEFAULT_TARGET_POSTGRES: u32 = 15;

/// [`migrations`] linted for `target_postgres` (from `migrate.toml` or the macro's settings),
/// which `plan` uses to describe each statement's locks as the macro judged them.
pub const fn migrations_for(list: &'static [Migration], target_postgres: u32) -> Migrations {
    migrations_with_snapshot(list, target_postgres, None)
}

/// [`migrations_for`] with the directory's schema snapshot, when it has one that is not stale.
#[doc(hidden)]
pub const fn migrations_with_snapshot(
    list: &'static [Migration],
    target_postgres: u32,
    snapshot: Option<&'static str>,
) -> Migrations {
    Migrations {
        list: List::Slice(list),
        target_postgres,
        snapshot,
        history_digest: None,
    }
}

/// [`migrations_with_snapshot`] with the digest of a history holding exactly these migrations
/// ([`history_digest_hex`]), which `embed_migrations!` computes at compile time so that a start
/// does not hash anything.
#[doc(hidden)]
pub const fn migrations_embedded(
    packed: &'static Packed,
    target_postgres: u32,
    snapshot: Option<&'static str>,
    history_digest: &'static str,
) -> Migrations {
    Migrations {
        list: List::Packed(packed),
        target_postgres,
        snapshot,
        history_digest: Some(history_digest),
    }
}

/// The digest of a history that holds exactly these `(revision, checksum)` pairs, all applied:
/// hex SHA-256 of the lines `<revision> <checksum> applied`, sorted by revision, joined by LF.
/// The runtime has the server compute the same text's hash from the history's rows.
#[doc(hidden)]
pub fn history_digest_hex<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for (i, (revision, checksum)) in pairs.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(revision.as_bytes());
        hasher.update(b" ");
        hasher.update(checksum.as_bytes());
        hasher.update(b" applied");
    }
    crate::hex(&hasher.finalize())
}

impl Migration {
    /// Its parents and statements, once [`crate::packed::decode`] has all of them in place.
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

/// Every migration of a directory, in the order they are applied (topological, ties broken by
/// revision id). Built by `embed_migrations!`.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    list: List,
    target_postgres: u32,
    snapshot: Option<&'static str>,
    history_digest: Option<&'static str>,
}

/// Where a [`Migrations`] finds its list.
#[derive(Debug, Clone, Copy)]
enum List {
    /// Built as a slice: by the standalone command from a directory, or empty.
    Slice(&'static [Migration]),
    /// Embedded by `embed_migrations!`, decoded on first use.
    Packed(&'static Packed),
}

/// The migrations `embed_migrations!` embeds, in the compact form of [`crate::packed`], and the
/// list decoded from it on first use. The macro puts it in a `static` of its own.
#[doc(hidden)]
pub struct Packed {
    index: &'static str,
    sql: &'static [&'static str],
    decoded: OnceLock<Box<[Migration]>>,
}

impl Packed {
    pub const fn new(index: &'static str, sql: &'static [&'static str]) -> Packed {
        Packed {
            index,
            sql,
            decoded: OnceLock::new(),
        }
    }

    fn list(&'static self) -> &'static [Migration] {
        self.decoded.get_or_init(|| {
            crate::packed::decode(self.index, self.sql)
                .unwrap_or_else(|malformed| {
                    // The macro and this code are one version (the format is checked when the
                    // host compiles), so this is a bug, reported rather than a panic at startup.
                    #[cfg(feature = "runtime")]
                    log::error!(
                        "the embedded migrations cannot be read ({malformed}): this binary knows no migration; report this as a bug of migrate"
                    );
                    let _ = malformed;
                    Vec::new()
                })
                .into_boxed_slice()
        })
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("migrations", &self.sql.len())
            .finish()
    }
}

impl Migrations {
    pub fn as_slice(&self) -> &'static [Migration] {
        match self.list {
            List::Slice(list) => list,
            List::Packed(packed) => packed.list(),
        }
    }
    pub fn iter(&self) -> std::slice::Iter<'static, Migration> {
        self.as_slice().iter()
    }
    pub fn len(&self) -> usize {
        match self.list {
            List::Slice(list) => list.len(),
            List::Packed(packed) => packed.sql.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The single head: the last migration in application order.
    pub fn head(&self) -> Option<&'static Migration> {
        self.as_slice().last()
    }
    /// The PostgreSQL major version the lint judged the statements for.
    pub fn target_postgres(&self) -> u32 {
        self.target_postgres
    }
    /// The schema snapshot taken for exactly these migrations (`migrate snapshot`), which
    /// startup and status compare the live catalog with.
    pub fn snapshot(&self) -> Option<&'static str> {
        self.snapshot
    }
    /// The digest of a history holding exactly these migrations, all applied
    /// ([`history_digest_hex`]): from compile time for embedded migrations.
    pub fn history_digest(&self) -> std::borrow::Cow<'static, str> {
        match self.history_digest {
            Some(hex) => std::borrow::Cow::Borrowed(hex),
            None => std::borrow::Cow::Owned(history_digest_hex(
                self.iter().map(|m| (m.revision(), m.checksum())),
            )),
        }
    }
    pub fn get(&self, revision: &str) -> Option<&'static Migration> {
        self.iter().find(|m| m.revision() == revision)
    }
}

impl IntoIterator for &Migrations {
    type Item = &'static Migration;
    type IntoIter = std::slice::Iter<'static, Migration>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Migrations read from a directory at run time, by the standalone `migrate` command: the same
/// data `embed_migrations!` bakes in (revisions, order, checksums, statements), so both write the
/// same history rows.
#[cfg(feature = "cli")]
impl Migrations {
    /// Builds the set from an analysis without errors. The texts are leaked to get the
    /// `'static` lifetime embedded migrations have: a command reads its directory once.
    pub fn from_analysis(analysis: &crate::analysis::Analysis) -> Migrations {
        fn leak(text: &str) -> &'static str {
            Box::leak(text.to_owned().into_boxed_str())
        }
        let list: Vec<Migration> = analysis
            .migrations
            .iter()
            .map(|m| {
                let statements: Vec<Statement> = m
                    .statements
                    .iter()
                    .map(|parsed| &parsed.span)
                    .map(|s| Statement {
                        start: s.start,
                        end: s.end,
                        line: s.line,
                        column: s.column,
                        concurrent_index: s.concurrent_index.as_deref().map(leak),
                        concurrent_table: s.concurrent_table.as_deref().map(leak),
                        rerunnable: s.rerunnable,
                    })
                    .collect();
                let parents: Vec<&'static str> = m.header.parent_ids().map(leak).collect();
                migration(MigrationParts {
                    revision: leak(&m.header.revision),
                    parents: Box::leak(parents.into_boxed_slice()),
                    message: m.header.message.as_deref().map(leak),
                    no_transaction: m.header.no_transaction,
                    lock_timeout: m.header.lock_timeout,
                    statement_timeout: m.header.statement_timeout,
                    path: leak(&m.path),
                    sql: leak(&m.sql),
                    statements: Box::leak(statements.into_boxed_slice()),
                    checksum: leak(&m.checksum),
                    self_contained: m.self_contained,
                })
            })
            .collect();
        migrations_with_snapshot(
            Box::leak(list.into_boxed_slice()),
            analysis.lint.target_version,
            analysis.snapshot.as_deref().map(leak),
        )
    }
}

impl Default for Migrations {
    /// No migrations.
    fn default() -> Migrations {
        migrations(&[])
    }
}
