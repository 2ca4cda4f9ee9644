//! `migrate import --from <tool>`: another tool's migrations directory, converted to headered
//! files in the order that tool applies them, and with `--stamp`, the database adopted exactly as
//! far as that tool's history table says it got.
//!
//! Each tool has a file of its own: how it names and splits its files, and how its history table
//! records what ran. What cannot be converted faithfully is refused, file by file, before
//! anything is written.

mod command;
mod dbmate;
mod diesel;
mod flyway;
mod golang_migrate;
mod goose;
pub mod history;
mod refinery;
mod sqlx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use migrate_core::analysis::header::{is_valid_revision_id, render_header};
use migrate_core::analysis::source::{checksum, normalize};

use crate::authoring::create_new;

pub use command::{ImportRequest, import};

/// The tools whose directories and history tables `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tool {
    Diesel,
    Sqlx,
    Refinery,
    #[value(name = "golang-migrate")]
    GolangMigrate,
    Goose,
    Dbmate,
    Flyway,
}

impl Tool {
    /// The table the tool keeps its history in, as the tool creates it on PostgreSQL.
    pub fn history_table(self) -> (&'static str, &'static str) {
        match self {
            Tool::Diesel => (
                "__diesel_schema_migrations",
                "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n    version VARCHAR(50) PRIMARY KEY NOT NULL,\n    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\n",
            ),
            Tool::Sqlx => (
                "_sqlx_migrations",
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    version BIGINT PRIMARY KEY,\n    description TEXT NOT NULL,\n    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),\n    success BOOLEAN NOT NULL,\n    checksum BYTEA NOT NULL,\n    execution_time BIGINT NOT NULL\n);\n",
            ),
            Tool::Refinery => (
                "refinery_schema_history",
                "CREATE TABLE IF NOT EXISTS refinery_schema_history (\n    version int4 PRIMARY KEY,\n    name VARCHAR(255),\n    applied_on VARCHAR(255),\n    checksum VARCHAR(255)\n);\n",
            ),
            Tool::GolangMigrate => (
                "schema_migrations",
                "CREATE TABLE IF NOT EXISTS schema_migrations (\n    version bigint NOT NULL PRIMARY KEY,\n    dirty boolean NOT NULL\n);\n",
            ),
            Tool::Goose => (
                "goose_db_version",
                "CREATE TABLE IF NOT EXISTS goose_db_version (\n    id serial NOT NULL,\n    version_id bigint NOT NULL,\n    is_applied boolean NOT NULL,\n    tstamp timestamp NULL DEFAULT now(),\n    PRIMARY KEY (id)\n);\n",
            ),
            Tool::Dbmate => (
                "schema_migrations",
                "CREATE TABLE IF NOT EXISTS schema_migrations (\n    version varchar PRIMARY KEY\n);\n",
            ),
            Tool::Flyway => (
                "flyway_schema_history",
                "CREATE TABLE IF NOT EXISTS flyway_schema_history (\n    installed_rank INT NOT NULL,\n    version VARCHAR(50),\n    description VARCHAR(200) NOT NULL,\n    type VARCHAR(20) NOT NULL,\n    script VARCHAR(1000) NOT NULL,\n    checksum INT,\n    installed_by VARCHAR(100) NOT NULL,\n    installed_on TIMESTAMP NOT NULL DEFAULT now(),\n    execution_time INT NOT NULL,\n    success BOOLEAN NOT NULL,\n    CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank)\n);\nCREATE INDEX IF NOT EXISTS flyway_schema_history_s_idx ON flyway_schema_history (success);\n",
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Diesel => "diesel",
            Tool::Sqlx => "sqlx",
            Tool::Refinery => "refinery",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Dbmate => "dbmate",
            Tool::Flyway => "flyway",
        }
    }
}

/// One migration of the other tool, as that tool reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The version as the tool compares it (its history table's key, normalised: `0001` and `1`
    /// are one version for a tool that reads a number).
    pub version: Version,
    /// The version as the file writes it, the basis of the revision.
    pub written: String,
    pub name: String,
    /// The part of the file that migrates up.
    pub sql: String,
    pub no_transaction: bool,
    pub path: PathBuf,
    /// How the tool orders it when that is not by version (dbmate: by file name).
    pub order: Option<String>,
}

/// A version as its tool orders and records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// A number (sqlx, refinery, golang-migrate, goose).
    Number(u128),
    /// Text compared as text (diesel, dbmate).
    Text(String),
    /// Numbers separated by dots or underscores, compared part by part, trailing zeros dropped
    /// (Flyway: `1`, `1.0` and `1_0` are one version).
    Parts(Vec<u128>),
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Number(n) => write!(f, "{n}"),
            Version::Text(text) => f.write_str(text),
            Version::Parts(parts) => {
                let parts: Vec<String> = parts.iter().map(u128::to_string).collect();
                f.write_str(&parts.join("."))
            }
        }
    }
}

impl Version {
    /// A version written as digits, read as the number it is.
    fn number(digits: &str) -> Option<Version> {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok().map(Version::Number))
            .flatten()
    }
}

/// What a directory holds for a tool: its migrations in the tool's order, what is not a
/// migration, and what cannot be converted.
#[derive(Debug, Default)]
pub struct Listing {
    pub migrations: Vec<Source>,
    /// Files that are not migrations (a README, a down migration), with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that cannot be converted faithfully, with why.
    pub refused: Vec<(PathBuf, String)>,
}

impl Listing {
    /// The entries whose name is UTF-8, each with its name; the others are refused.
    fn named<'a>(&mut self, entries: &'a [PathBuf]) -> Vec<(&'a PathBuf, &'a str)> {
        let mut named = Vec::with_capacity(entries.len());
        for path in entries {
            match file_name(path) {
                Some(name) => named.push((path, name)),
                None => self.refuse(path, "its name is not UTF-8"),
            }
        }
        named
    }

    /// The text of `path`, or `None` when it is refused for it (unreadable, not UTF-8).
    fn text(&mut self, path: &Path) -> Option<String> {
        read_text(path).map_err(|why| self.refuse(path, why)).ok()
    }

    /// A migration that is its whole file. `as_it_is`: the tool sends the file as it is, outside
    /// a transaction, so a file of statements that cannot run in one runs outside one here too.
    fn add_whole_file(
        &mut self,
        path: &Path,
        version: Version,
        written: &str,
        name: &str,
        as_it_is: bool,
    ) {
        if let Some(sql) = self.text(path) {
            self.migrations.push(Source {
                version,
                written: written.to_owned(),
                name: name.to_owned(),
                no_transaction: as_it_is && cannot_run_in_a_transaction(&sql),
                sql,
                path: path.to_owned(),
                order: None,
            });
        }
    }

    fn skip(&mut self, path: &Path, why: &str) {
        self.skipped.push((path.to_owned(), why.to_owned()));
    }

    fn refuse(&mut self, path: &Path, why: impl Into<String>) {
        self.refused.push((path.to_owned(), why.into()));
    }
}

/// Why a directory could not be imported.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportError {
    Unreadable {
        path: PathBuf,
        reason: String,
    },
    /// Files that cannot be converted faithfully, each with why.
    Refused(Vec<(PathBuf, String)>),
    NoMigrations {
        dir: PathBuf,
        tool: Tool,
    },
    /// The output directory already holds migrations.
    NotEmpty {
        dir: PathBuf,
    },
    Write {
        path: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Unreadable { path, reason } => write!(
                f,
                "cannot read {}: {reason}\n  help: pass the directory the tool reads its migrations from",
                path.display()
            ),
            ImportError::Refused(files) => {
                write!(
                    f,
                    "{} file(s) cannot be converted faithfully; nothing was written",
                    files.len()
                )?;
                for (path, why) in files {
                    write!(f, "\n  {}: {why}", path.display())?;
                }
                write!(
                    f,
                    "\n  help: rewrite them as plain SQL migrations of that tool first, or remove them from the directory"
                )
            }
            ImportError::NoMigrations { dir, tool } => write!(
                f,
                "{} holds no {} migration\n  help: pass the directory the tool reads its migrations from",
                dir.display(),
                tool.name()
            ),
            ImportError::NotEmpty { dir } => write!(
                f,
                "{} already holds migrations; nothing was written\n  help: import into an empty or new directory (--dir)",
                dir.display()
            ),
            ImportError::Write { path, reason } => {
                write!(f, "cannot write {}: {reason}", path.display())
            }
        }
    }
}

/// Reads `dir` as `tool` lays it out. Refusals come back as an error naming every file.
pub fn read(tool: Tool, dir: &Path) -> Result<Listing, ImportError> {
    let files = entries(dir)?;
    let mut listing = match tool {
        Tool::Diesel => diesel::read(&files)?,
        Tool::Sqlx => sqlx::read(&files)?,
        Tool::Refinery => refinery::read(&files)?,
        Tool::GolangMigrate => golang_migrate::read(&files)?,
        Tool::Goose => goose::read(&files)?,
        Tool::Dbmate => dbmate::read(&files)?,
        Tool::Flyway => flyway::read(&files)?,
    };
    listing
        .migrations
        .sort_by(|a, b| (&a.order, &a.version).cmp(&(&b.order, &b.version)));
    let mut by_version: BTreeMap<&Version, &Path> = BTreeMap::new();
    let mut clashes = Vec::new();
    for migration in &listing.migrations {
        if let Some(first) = by_version.insert(&migration.version, &migration.path) {
            clashes.push((
                migration.path.clone(),
                format!(
                    "version {} is also {}'s; {} applies one migration per version",
                    migration.version,
                    first.display(),
                    tool.name()
                ),
            ));
        }
    }
    listing.refused.extend(clashes);
    if !listing.refused.is_empty() {
        listing.refused.sort();
        return Err(ImportError::Refused(listing.refused));
    }
    if listing.migrations.is_empty() {
        return Err(ImportError::NoMigrations {
            dir: dir.to_owned(),
            tool,
        });
    }
    Ok(listing)
}

/// A directory's entries, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let unreadable = |e: std::io::Error| ImportError::Unreadable {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    files.sort();
    Ok(files)
}

/// The file name, when it is UTF-8.
fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// A file's text, without the byte-order mark the tools all skip.
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&bytes)
        .to_vec();
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())
}

/// Whether one of the statements of `sql` cannot run inside a transaction block (`CREATE INDEX
/// CONCURRENTLY`, `VACUUM`, …): a tool that runs each file as it is (golang-migrate) or that
/// detects them (Flyway) runs such a file outside a transaction.
fn cannot_run_in_a_transaction(sql: &str) -> bool {
    migrate_core::analysis::statements::parse_statements("import", sql).is_ok_and(|statements| {
        statements
            .iter()
            .any(|s| migrate_core::lint::classify::classify(&s.stmt).concurrently)
    })
}

/// The revision a version becomes: the version as written, with what a revision id cannot hold
/// (a Flyway `1.1`'s dot) made `_`.
pub fn revision_of(written: &str) -> String {
    let kept: String = written
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if kept == written && !kept.is_empty() && kept.len() <= 64 {
        return kept;
    }
    // Changed: a digest of what was written keeps two versions apart (`été` and `ôté`).
    let digest = checksum_of(written);
    let base: String = kept.chars().take(64 - 9).collect();
    format!("{base}-{}", &digest[..8])
}

/// Hex SHA-256 of a text.
fn checksum_of(text: &str) -> String {
    let normalized = normalize("version", text.as_bytes());
    normalized
        .map(|n| checksum(&n))
        .unwrap_or_else(|_| "0".repeat(64))
}

/// A file name's end for a migration's name: lower-case ASCII letters and digits, runs of
/// anything else as one `_`.
fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug: String = slug.trim_matches('_').chars().take(60).collect();
    if slug.is_empty() {
        "migration".to_owned()
    } else {
        slug
    }
}

/// What `import` wrote.
#[derive(Debug)]
pub struct Written {
    /// The root migration that creates the tool's history table where it is missing.
    pub root: (String, PathBuf),
    /// Each imported migration's revision and file, in order, built on the root.
    pub files: Vec<(String, PathBuf)>,
    pub config: PathBuf,
}

/// Writes the listing into `out` (created when absent, refused when it holds migrations): a
/// root migration that creates the tool's history table where it is missing (a history may use
/// it: lemmy's puts a trigger on diesel's, and a fresh or shadow database has none), then one
/// headered file per migration, each built on the one before, and the frozen history in
/// `migrate.toml`.
pub fn write(tool: Tool, listing: &Listing, out: &Path) -> Result<Written, ImportError> {
    let failed = |path: &Path, e: std::io::Error| ImportError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| failed(out, e))?;
    let holds_migrations = entries(out)?
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "sql") || file_name(p) == Some("migrate.toml"));
    if holds_migrations {
        return Err(ImportError::NotEmpty {
            dir: out.to_owned(),
        });
    }
    let (table, create) = tool.history_table();
    let root = Source {
        version: Version::Number(0),
        written: format!("{}-history", tool.name()),
        name: format!(
            "{table}, the table {} kept its history in, where it is missing",
            tool.name()
        ),
        sql: create.to_owned(),
        no_transaction: false,
        path: PathBuf::new(),
        order: None,
    };
    let mut files = Vec::new();
    let mut frozen = Vec::new();
    let mut previous: Option<String> = None;
    for migration in std::iter::once(&root).chain(&listing.migrations) {
        let revision = revision_of(&migration.written);
        debug_assert!(is_valid_revision_id(&revision));
        let parents: Vec<&str> = previous.iter().map(String::as_str).collect();
        let header = render_header(
            &revision,
            &parents,
            &migration.name,
            migration.no_transaction,
        );
        let sql = migration.sql.trim_start_matches(['\n', '\r']);
        let text = format!("{header}\n{sql}");
        let slug = if previous.is_none() {
            format!("{}_history", slug(tool.name()))
        } else {
            slug(&migration.name)
        };
        let path = out.join(format!("{revision}_{slug}.sql"));
        create_new(&path, &text).map_err(|e| failed(&path, e))?;
        // The checksum the analysis computes of the file, which the history records.
        let shown = path.display().to_string();
        let checksum = normalize(&shown, text.as_bytes())
            .map(|normalized| checksum(&normalized))
            .unwrap_or_default();
        frozen.push((revision.clone(), checksum));
        files.push((revision.clone(), path));
        previous = Some(revision);
    }
    let config = out.join("migrate.toml");
    create_new(&config, &frozen_config(&frozen)).map_err(|e| failed(&config, e))?;
    let root = files.remove(0);
    Ok(Written {
        root,
        files,
        config,
    })
}

/// The `[frozen]` table of `migrate.toml`: the last imported revision, and each imported file's
/// checksum.
fn frozen_config(frozen: &[(String, String)]) -> String {
    let mut text = String::from(
        "# The history imported from another tool: checked as a graph, never linted again, and\n# pinned to the files' checksums.\n[frozen]\n",
    );
    if let Some((last, _)) = frozen.last() {
        text.push_str(&format!("through = \"{last}\"\n"));
    }
    text.push_str("\n[frozen.checksums]\n");
    for (revision, checksum) in frozen {
        text.push_str(&format!("\"{revision}\" = \"{checksum}\"\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_and_slugs_are_valid_whatever_the_tool_wrote() {
        // A version kept as written, or made valid with a digest of what was written.
        assert_eq!(revision_of("1_2_3"), "1_2_3");
        assert!(revision_of("1.2.3").starts_with("1_2_3-"));
        assert_ne!(revision_of("été"), revision_of("ôté"));
        assert_ne!(revision_of(&"9".repeat(70)), revision_of(&"9".repeat(71)));
        assert_eq!(revision_of("20140924113530"), "20140924113530");
        for written in ["1.1", "2026-07-30-140000-0000", "ünïcode", "0"] {
            assert!(is_valid_revision_id(&revision_of(written)), "{written}");
        }
        assert_eq!(slug("Créer la table «users» 🚀"), "cr_er_la_table_users");
        assert_eq!(slug("🚀"), "migration");
        assert_eq!(slug("add_users"), "add_users");
    }

    #[test]
    fn versions_order_as_their_tools_order_them() {
        let mut numbers = vec![
            Version::Number(10),
            Version::Number(9),
            Version::Number(100),
        ];
        numbers.sort();
        assert_eq!(
            numbers,
            [
                Version::Number(9),
                Version::Number(10),
                Version::Number(100)
            ]
        );
        let mut parts = vec![
            Version::Parts(vec![1, 10]),
            Version::Parts(vec![1, 9]),
            Version::Parts(vec![1, 9, 1]),
        ];
        parts.sort();
        assert_eq!(
            parts,
            [
                Version::Parts(vec![1, 9]),
                Version::Parts(vec![1, 9, 1]),
                Version::Parts(vec![1, 10])
            ]
        );
        assert_eq!(Version::number("0007"), Some(Version::Number(7)));
        assert_eq!(Version::number("7a"), None);
        assert_eq!(Version::number(""), None);
    }
}
