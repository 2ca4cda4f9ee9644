//! `import --stamp`: what the other tool's history table says ran, checked against the converted
//! files, then recorded as applied in one transaction under the migration lock. The old table is
//! read, never changed.

use std::collections::BTreeSet;

use postgres::{Client, SimpleQueryMessage};

use super::{Listing, Tool, Version, flyway};

/// The table each tool keeps its history in, and the query that reads it as text.
fn query(tool: Tool) -> (&'static str, &'static str) {
    match tool {
        Tool::Diesel => (
            "__diesel_schema_migrations",
            "SELECT version, 't' FROM __diesel_schema_migrations",
        ),
        Tool::Sqlx => (
            "_sqlx_migrations",
            "SELECT version::text, success::text FROM _sqlx_migrations ORDER BY version",
        ),
        Tool::Refinery => (
            "refinery_schema_history",
            "SELECT version::text, 't' FROM refinery_schema_history",
        ),
        Tool::GolangMigrate => (
            "schema_migrations",
            "SELECT version::text, (NOT dirty)::text FROM schema_migrations",
        ),
        // Each up and down appends a row: the last row of a version says where it stands.
        Tool::Goose => (
            "goose_db_version",
            "SELECT version_id::text, is_applied::text FROM goose_db_version ORDER BY id",
        ),
        Tool::Dbmate => (
            "schema_migrations",
            "SELECT version, 't' FROM schema_migrations",
        ),
        // Rows without a version are repeatable migrations and Flyway's own schema markers.
        Tool::Flyway => (
            "flyway_schema_history",
            "SELECT version, success::text, type FROM flyway_schema_history WHERE version IS NOT NULL ORDER BY installed_rank",
        ),
    }
}

/// Why the database cannot be adopted as it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The history table is not there (or not readable).
    NoTable { table: &'static str, reason: String },
    /// Rows recording a failed or half-done run.
    Failed {
        table: &'static str,
        rows: Vec<String>,
    },
    /// Versions recorded as applied that no file has.
    Unknown {
        table: &'static str,
        versions: Vec<String>,
    },
    /// A version recorded as applied after one that is not: the graph is one line.
    Gap { applied: String, missing: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoTable { table, reason } => write!(
                f,
                "cannot read {table}: {reason}\n  help: point --database-url at the database the tool migrated"
            ),
            Refusal::Failed { table, rows } => write!(
                f,
                "{table} records a run that did not finish: version {}; nothing was stamped\n  help: finish or repair it with the tool itself, then import again",
                rows.join(", ")
            ),
            Refusal::Unknown { table, versions } => write!(
                f,
                "{table} records version {} as applied, and no file of the directory has it; nothing was stamped\n  help: import from the directory the database was migrated from",
                versions.join(", ")
            ),
            Refusal::Gap { applied, missing } => write!(
                f,
                "version {applied} is recorded as applied but {missing}, before it, is not; the imported history is one line, so nothing was stamped\n  help: apply {missing} with the tool itself first, then import again"
            ),
        }
    }
}

/// How many of the listing's migrations (a prefix, in order) the database applied, by its
/// history table.
pub fn applied_prefix(
    client: &mut Client,
    tool: Tool,
    listing: &Listing,
) -> Result<usize, Refusal> {
    let (table, sql) = query(tool);
    let rows: Vec<Vec<Option<String>>> = client
        .simple_query(sql)
        .map_err(|e| Refusal::NoTable {
            table,
            reason: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned()),
        })?
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    let read = |written: &str| -> Option<Version> {
        match tool {
            Tool::Diesel | Tool::Dbmate => Some(Version::Text(written.to_owned())),
            Tool::Flyway => flyway::parts(written),
            _ => Version::number(written),
        }
    };
    let mut applied: BTreeSet<Version> = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut failed = Vec::new();
    let mut through: Option<Version> = None;
    for row in &rows {
        let written = row.first().cloned().flatten().unwrap_or_default();
        // golang-migrate's "no version" (every migration reverted).
        if tool == Tool::GolangMigrate && written == "-1" {
            if !matches!(row.get(1).cloned().flatten().as_deref(), Some("t" | "true")) {
                failed.push(format!("{written} (dirty)"));
            }
            continue;
        }
        // `boolean::text` is `true`; a literal stands for tools that record no outcome.
        let succeeded = matches!(row.get(1).cloned().flatten().as_deref(), Some("t" | "true"));
        let Some(version) = read(&written) else {
            unknown.push(written);
            continue;
        };
        match tool {
            // golang-migrate keeps one row: the version the database is at.
            Tool::GolangMigrate if succeeded => through = Some(version),
            Tool::GolangMigrate => failed.push(format!("{written} (dirty)")),
            Tool::Goose if version == Version::Number(0) => {}
            Tool::Goose => {
                if succeeded {
                    applied.insert(version);
                } else {
                    applied.remove(&version);
                }
            }
            // A baseline stands for every version up to it, which need no file; an undone or
            // deleted version no longer counts.
            Tool::Flyway if row.get(2).cloned().flatten().as_deref() == Some("BASELINE") => {
                through = Some(version)
            }
            Tool::Flyway
                if matches!(
                    row.get(2).cloned().flatten().as_deref(),
                    Some("UNDO_SQL" | "DELETE")
                ) =>
            {
                applied.remove(&version);
            }
            _ if succeeded => {
                applied.insert(version);
            }
            _ => failed.push(format!("{written} (failed)")),
        }
    }
    if !failed.is_empty() {
        return Err(Refusal::Failed {
            table,
            rows: failed,
        });
    }
    let known: BTreeSet<&Version> = listing.migrations.iter().map(|m| &m.version).collect();
    if let Some(through) = &through {
        // golang-migrate's version is a migration it ran; a Flyway baseline may precede every
        // file.
        if tool == Tool::GolangMigrate && !known.contains(through) {
            unknown.push(through.to_string());
        }
        applied.extend(
            known
                .iter()
                .filter(|v| **v <= through)
                .map(|v| (*v).clone()),
        );
    }
    unknown.extend(
        applied
            .iter()
            .filter(|v| !known.contains(v))
            .map(Version::to_string),
    );
    if !unknown.is_empty() {
        return Err(Refusal::Unknown {
            table,
            versions: unknown,
        });
    }
    let count = listing
        .migrations
        .iter()
        .take_while(|m| applied.contains(&m.version))
        .count();
    if let Some(beyond) = listing.migrations[count..]
        .iter()
        .find(|m| applied.contains(&m.version))
    {
        return Err(Refusal::Gap {
            applied: beyond.version.to_string(),
            missing: listing.migrations[count].version.to_string(),
        });
    }
    Ok(count)
}
