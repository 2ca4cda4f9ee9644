//! The history table: one row per applied (or, for a no-transaction migration, running)
//! revision. It stores parents, so the runner can prove a database that is ahead of the binary
//! only built on top of it.

use postgres::SimpleQueryMessage;

use super::config::Settings;
use super::driver::Session;

/// `"schema"."table"`, quoted. Names are validated identifiers, so quoting is enough.
pub fn qualified(settings: &Settings) -> String {
    format!("\"{}\".\"{}\"", settings.schema, settings.table)
}

pub fn create_sql(settings: &Settings) -> String {
    let table = qualified(settings);
    // At most 63 bytes, as every identifier (the table name is ASCII and at most 63).
    let index: String = format!("{}_applied_at", settings.table)
        .chars()
        .take(63)
        .collect();
    // `public` exists already; asking again only makes the server log a NOTICE.
    let schema = if settings.schema == "public" {
        String::new()
    } else {
        format!("CREATE SCHEMA IF NOT EXISTS \"{}\";\n", settings.schema)
    };
    format!(
        "{schema}CREATE TABLE IF NOT EXISTS {table} (
    revision text PRIMARY KEY,
    parents text NOT NULL,
    message text,
    checksum text NOT NULL,
    state text NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'running')),
    statements_done integer NOT NULL DEFAULT 0,
    failed_statement integer,
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint NOT NULL DEFAULT 0,
    applied_by text NOT NULL
);
CREATE INDEX IF NOT EXISTS \"{index}\" ON {table} (applied_at)"
    )
}

/// Whether a no-transaction migration finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Applied,
    /// Started and not finished: `statements_done` statements are known to have completed.
    Running,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub revision: String,
    pub parents: Vec<String>,
    pub message: Option<String>,
    pub checksum: String,
    pub state: RowState,
    pub statements_done: usize,
    /// A no-transaction migration's statement (1-based) that the server answered with an error:
    /// known not to have taken effect, so a later run re-runs it without proof.
    pub failed_statement: Option<usize>,
    pub applied_at: String,
    pub execution_ms: i64,
    pub applied_by: String,
}

/// The query that reads the whole history, oldest first.
pub fn select_sql(settings: &Settings) -> String {
    format!(
        "SELECT revision, parents, message, checksum, state, statements_done, applied_at, execution_ms, applied_by, failed_statement FROM {} ORDER BY applied_at, revision",
        qualified(settings)
    )
}

/// Whether the history's marker (its latest `applied_at`) differs from `expected`, a marker
/// read earlier (`-` when the history was empty). Every row is inserted with `applied_at =
/// now()`, and a no-transaction migration that finishes sets it again, so any other runner's
/// work since the read moves it; with the index on `applied_at` the check is one index lookup
/// however long the history is. Compared as timestamps, not as text, so that it holds whatever
/// the session's DateStyle.
pub fn marker_changed_sql(settings: &Settings, expected: &str) -> String {
    use postgres_protocol::escape::escape_literal;
    let expected = if expected == "-" {
        "NULL".to_owned()
    } else {
        format!("{}::timestamptz", escape_literal(expected))
    };
    format!(
        "(SELECT max(applied_at) FROM {}) IS DISTINCT FROM {expected}",
        qualified(settings)
    )
}

/// The `RETURNING` clause of this runner's own insert that gives the history's marker after it:
/// the later of the new row's `applied_at` and the latest before it (the subquery sees the
/// table as it was before the insert; `greatest` skips the NULL of an empty history).
pub fn returning_fingerprint_sql(settings: &Settings) -> String {
    format!(
        "RETURNING 'fingerprint ' || greatest(applied_at, (SELECT max(applied_at) FROM {}))::text",
        qualified(settings)
    )
}

/// [`returning_fingerprint_sql`] for the last of several migrations committed together, with two
/// more columns: its own execution time, and those of `earlier` (the others, in order) as a
/// comma-separated list. Their rows, inserted by earlier statements of the transaction, are
/// visible to the subquery.
pub fn returning_group_sql(settings: &Settings, earlier: &[&crate::Migration]) -> String {
    use postgres_protocol::escape::escape_literal;
    let revisions: Vec<String> = earlier
        .iter()
        .map(|m| escape_literal(m.revision()))
        .collect();
    let list = revisions.join(", ");
    format!(
        "{}, execution_ms::text, (SELECT string_agg(execution_ms::text, ',' ORDER BY array_position(ARRAY[{list}]::text[], revision)) FROM {} WHERE revision IN ({list}))",
        returning_fingerprint_sql(settings),
        qualified(settings)
    )
}

/// The execution times in milliseconds, in order, that [`returning_group_sql`] returned for
/// `count` migrations; `None` unless there is one for each.
pub fn group_execution_ms(messages: &[SimpleQueryMessage], count: usize) -> Option<Vec<i64>> {
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) if row.len() == 3 => Some(row),
        _ => None,
    })?;
    let mut times: Vec<i64> = row
        .get(2)
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    times.push(row.get(1)?.parse().ok()?);
    (times.len() == count).then_some(times)
}

/// The marker in the rows of [`returning_fingerprint_sql`].
pub fn fingerprint(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row
            .get(0)
            .and_then(|v| v.strip_prefix("fingerprint "))
            .map(str::to_owned),
        _ => None,
    })
}

/// The marker of rows read with [`select_sql`] (one statement, so one snapshot): the last row's
/// `applied_at`, as the server wrote it, which is the text `marker_sql` compares.
pub fn fingerprint_of(rows: &[HistoryRow]) -> String {
    rows.last()
        .map_or_else(|| "-".to_owned(), |row| row.applied_at.clone())
}

/// The server-side time since the transaction began, in milliseconds: the execution time of a
/// migration sent with its history row in one batch.
pub fn elapsed_ms_sql() -> String {
    elapsed_ms_since_sql("now()")
}

/// The server-side time since `since` (an SQL timestamp expression), in milliseconds.
fn elapsed_ms_since_sql(since: &str) -> String {
    format!("(extract(epoch FROM clock_timestamp() - {since}) * 1000)::bigint")
}

/// The row this runner just inserted for `migration`, as a read would return it (but for the
/// exact `applied_at`, which nothing compares).
pub fn applied_row(
    migration: &crate::Migration,
    execution_ms: i64,
    applied_by: String,
) -> HistoryRow {
    HistoryRow {
        revision: migration.revision().to_owned(),
        parents: migration
            .parents()
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        message: migration.message().map(str::to_owned),
        checksum: migration.checksum().to_owned(),
        state: RowState::Applied,
        statements_done: 0,
        failed_statement: None,
        applied_at: String::new(),
        execution_ms,
        applied_by,
    }
}

/// Reads the history; `Ok(None)` when the table does not exist yet.
pub(crate) async fn read<S: Session>(
    client: &mut S,
    settings: &Settings,
) -> Result<Option<Vec<HistoryRow>>, postgres::Error> {
    let messages = match client.simple_query(&select_sql(settings)).await {
        Ok(messages) => messages,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(None),
        Err(e) if e.code() == Some(&postgres::error::SqlState::INVALID_SCHEMA_NAME) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(Some(rows(&messages)))
}

/// The history rows among the results of a multi-statement query (rows of other statements
/// have fewer columns).
pub fn rows(messages: &[SimpleQueryMessage]) -> Vec<HistoryRow> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) if row.len() == 10 => {
                let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
                Some(HistoryRow {
                    revision: text(0),
                    parents: text(1)
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    message: row.get(2).map(str::to_owned),
                    checksum: text(3),
                    state: if text(4) == "running" {
                        RowState::Running
                    } else {
                        RowState::Applied
                    },
                    statements_done: text(5).parse().unwrap_or(0),
                    applied_at: text(6),
                    execution_ms: text(7).parse().unwrap_or(0),
                    applied_by: text(8),
                    failed_statement: row.get(9).and_then(|v| v.parse().ok()),
                })
            }
            _ => None,
        })
        .collect()
}

/// Who applied a migration: host and application, for the `applied_by` column.
pub fn applied_by(settings: &Settings) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}/{}", settings.application_name)
}

/// The INSERT recording `migration`: `Applied` with its execution time (an SQL expression, such
/// as [`elapsed_ms_sql`] or `0`), or `Running` (a no-transaction migration about to start).
/// Sent with the simple protocol, in the same round trip as the COMMIT that follows it, so
/// values are quoted as literals.
pub fn insert_sql(
    settings: &Settings,
    migration: &crate::Migration,
    state: RowState,
    execution_ms: &str,
    applied_by: &str,
) -> String {
    insert_row_sql(settings, migration, state, execution_ms, applied_by, None)
}

/// The INSERT recording `migration` as one of several committed in one transaction, which
/// began (its first statement sent) at `since`, an SQL expression: `now()` for the first, the
/// previous one's `applied_at` for the others. Stamped with `clock_timestamp()` rather than
/// the transaction's `now()`, so that the rows keep the order they were applied in.
pub fn insert_grouped_sql(
    settings: &Settings,
    migration: &crate::Migration,
    since: &str,
    applied_by: &str,
) -> String {
    insert_row_sql(
        settings,
        migration,
        RowState::Applied,
        &elapsed_ms_since_sql(since),
        applied_by,
        Some("clock_timestamp()"),
    )
}

/// The start of a migration committed after `previous` in the same transaction, for
/// [`insert_grouped_sql`]: the time `previous` was recorded.
pub fn recorded_at_sql(settings: &Settings, previous: &crate::Migration) -> String {
    use postgres_protocol::escape::escape_literal;
    format!(
        "(SELECT applied_at FROM {} WHERE revision = {})",
        qualified(settings),
        escape_literal(previous.revision())
    )
}

fn insert_row_sql(
    settings: &Settings,
    migration: &crate::Migration,
    state: RowState,
    execution_ms: &str,
    applied_by: &str,
    applied_at: Option<&str>,
) -> String {
    use postgres_protocol::escape::escape_literal;
    let state = match state {
        RowState::Applied => "applied",
        RowState::Running => "running",
    };
    let message = migration
        .message()
        .map_or_else(|| "NULL".to_owned(), escape_literal);
    let (at_column, at_value) = match applied_at {
        Some(value) => (", applied_at", format!(", {value}")),
        None => ("", String::new()),
    };
    format!(
        "INSERT INTO {} (revision, parents, message, checksum, state, execution_ms, applied_by{at_column}) VALUES ({}, {}, {message}, {}, '{state}', {execution_ms}, {}{at_value})",
        qualified(settings),
        escape_literal(migration.revision()),
        escape_literal(&migration.parents().join(",")),
        escape_literal(migration.checksum()),
        escape_literal(applied_by),
    )
}
