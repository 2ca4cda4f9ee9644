//! The history table: one row per applied (or, for a no-transaction migration, running)
//! revision. It stores parents, so the runner can prove a database that is ahead of the binary
//! only built on top of it.

use std::borrow::Cow;

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

/// `<table>_<suffix>`: the name of an object that belongs with the history table, its table
/// part cut so that the whole fits in an identifier's 63 bytes (the table name is ASCII).
fn companion_name(settings: &Settings, suffix: &str) -> String {
    let room = 63 - suffix.len() - 1;
    let table: String = settings.table.chars().take(room).collect();
    format!("{table}_{suffix}")
}

/// The sequence that holds the history's digest, quoted.
fn digest_sequence(settings: &Settings) -> String {
    format!(
        "\"{}\".\"{}\"",
        settings.schema,
        companion_name(settings, "digest")
    )
}

/// The history's digest: what a start reads instead of the history when nothing changed.
///
/// A sequence beside the history table holds a digest of the rows, written once a run has
/// found them to be exactly its binary's migrations ([`digest_write_sql`]). Any change to the
/// history resets it to 0 at once, from a statement trigger, whoever makes it (this runner, an
/// operator's `DELETE`, a `TRUNCATE`), and dropping the table drops the sequence (it is owned
/// by the table). So a digest equal to the binary's own proves the history is its migrations,
/// all applied with these checksums, and nothing else: a start that reads it is done in one
/// read of a one-row relation, whatever the length of the history.
///
/// A sequence rather than a table: `setval` takes effect at once and outside the transaction,
/// so that the reset of a change that is later rolled back stays (a needless full read next
/// time, never a wrong answer), and a sequence that is owned by the history table goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryDigest {
    /// [`Migrations::history_digest`](crate::Migrations::history_digest).
    hex: Cow<'static, str>,
    /// The value the sequence holds for it: the hash's first 60 bits, plus one (0 means
    /// "changed").
    value: i64,
}

impl HistoryDigest {
    /// The digest of a history that holds exactly `migrations`, all applied.
    pub fn of(migrations: &crate::Migrations) -> HistoryDigest {
        let hex = migrations.history_digest();
        let value = hex
            .get(..15)
            .and_then(|first| i64::from_str_radix(first, 16).ok())
            .unwrap_or(0)
            + 1;
        HistoryDigest { hex, value }
    }

    /// Whether the rows of [`digest_read_sql`] hold this digest.
    pub fn is_in(&self, messages: &[SimpleQueryMessage]) -> bool {
        messages.iter().any(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0) == Some(self.value.to_string().as_str()),
            _ => false,
        })
    }
}

/// The read of the history's digest ([`HistoryDigest`]).
pub fn digest_read_sql(settings: &Settings) -> String {
    format!("SELECT last_value FROM {}", digest_sequence(settings))
}

/// One transaction that records `digest` as the history's, when the history is still what it
/// stands for, and creates the sequence and the trigger that resets it first when they are
/// missing (a history table created before them). It takes a lock on the history table that
/// every writer of it conflicts with, without waiting (a writer at work means the history is
/// about to change anyway), and computes the digest of the rows on the server, in a statement
/// of its own, so that it reads what every writer before it committed.
pub fn digest_write_sql(settings: &Settings, digest: &HistoryDigest) -> String {
    use postgres_protocol::escape::escape_literal;
    let table = qualified(settings);
    let sequence = digest_sequence(settings);
    let function = format!(
        "\"{}\".\"{}\"",
        settings.schema,
        companion_name(settings, "changed")
    );
    let trigger = companion_name(settings, "changed");
    // The reset runs as the function's owner (whoever writes the history may not own the
    // sequence), with a search path that no caller can change. It finds the sequence as the
    // one the table owns, by the names the table and its schema have when it runs, so that
    // renaming either keeps it working, and it does nothing when the sequence was dropped on
    // its own: a write to the history must never fail because of it.
    let reset = "BEGIN PERFORM setval(s::regclass, 0) FROM pg_get_serial_sequence(format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), 'revision') s WHERE s IS NOT NULL; RETURN NULL; END";
    format!(
        "{begin}; SET LOCAL client_min_messages = warning; \
         LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE NOWAIT; \
         DO $migrate$BEGIN \
           IF to_regclass({sequence_literal}) IS NULL THEN \
             CREATE SEQUENCE {sequence} AS bigint MINVALUE 0 START 0 OWNED BY {table}.revision; \
           END IF; \
           IF to_regprocedure({function_literal}) IS NULL THEN \
             CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
               SET search_path = pg_catalog, pg_temp AS {reset_literal}; \
           END IF; \
           IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = {table_literal}::regclass AND tgname = {trigger_literal}) THEN \
             CREATE TRIGGER \"{trigger}\" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
               FOR EACH STATEMENT EXECUTE FUNCTION {function}(); \
           END IF; \
         END$migrate$; \
         SELECT setval({sequence_literal}, {value}) FROM (SELECT string_agg(revision || ' ' || checksum || ' ' || state, E'\\n' ORDER BY revision COLLATE \"C\") AS lines FROM {table}) h \
           WHERE encode(sha256(convert_to(h.lines, 'UTF8')), 'hex') = '{hex}'; \
         COMMIT",
        begin = "BEGIN ISOLATION LEVEL READ COMMITTED",
        sequence_literal = escape_literal(&sequence),
        function_literal = escape_literal(&format!("{function}()")),
        reset_literal = escape_literal(reset),
        table_literal = escape_literal(&table),
        trigger_literal = escape_literal(&trigger),
        value = digest.value,
        hex = digest.hex,
    )
}

/// The names of the objects [`digest_write_sql`] creates beside the history table (the
/// sequence and the trigger function), which are no schema object of the migrations.
pub fn companion_objects(settings: &Settings) -> (String, String) {
    (
        companion_name(settings, "digest"),
        companion_name(settings, "changed"),
    )
}

/// Whether a no-transaction migration finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Applied,
    /// Started and not finished: `statements_done` statements are known to have completed.
    Running,
}

/// One revision's row of the history. The text fields borrow from the binary when the row
/// stands for an embedded migration (a run that applied it, or found the history unchanged since
/// it was complete), and own what the database returned otherwise: a start with nothing to do
/// describes its hundreds of migrations without copying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub revision: Cow<'static, str>,
    pub parents: Vec<Cow<'static, str>>,
    pub message: Option<Cow<'static, str>>,
    pub checksum: Cow<'static, str>,
    pub state: RowState,
    pub statements_done: usize,
    /// A no-transaction migration's statement (1-based) that the server answered with an error:
    /// known not to have taken effect, so a later run re-runs it without proof.
    pub failed_statement: Option<usize>,
    pub applied_at: String,
    /// `applied_at` in whole microseconds since the epoch, as the server computed it: the
    /// value that orders and compares rows whatever the session's DateStyle or TimeZone.
    pub applied_at_us: i64,
    pub execution_ms: i64,
    pub applied_by: String,
}

/// The query that reads the whole history, oldest first.
pub fn select_sql(settings: &Settings) -> String {
    format!(
        "SELECT revision, parents, message, checksum, state, statements_done, applied_at, execution_ms, applied_by, failed_statement, {} FROM {} ORDER BY applied_at, revision",
        position_of_sql("applied_at"),
        qualified(settings)
    )
}

/// Where the history stands: its latest `applied_at`, as whole microseconds since the epoch
/// computed by the server (`None` for an empty history). Every row is inserted with
/// `applied_at = now()`, and a no-transaction migration that finishes sets it again, so any
/// other runner's work since a read moves it. A number, never a timestamp's text: the text
/// depends on the session's DateStyle and TimeZone, and does not always read back as the same
/// instant (`IST` under `SQL, DMY` in Asia/Kolkata reads back as Israel's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position(pub Option<i64>);

impl Position {
    /// The position as an SQL value: a bigint literal or NULL.
    fn sql(self) -> String {
        self.0
            .map_or_else(|| "NULL".to_owned(), |us| format!("{us}::bigint"))
    }
}

/// The SQL expression of a position from a `timestamptz` expression. `extract` is exact
/// (numeric) from PostgreSQL 14, a double before; either way the same server computes the same
/// value from the same instant, which is all a comparison needs.
fn position_of_sql(timestamp: &str) -> String {
    format!("(extract(epoch FROM {timestamp}) * 1000000)::bigint")
}

/// Whether the history's position differs from `expected`, one read earlier. With the index on
/// `applied_at` the check is one index lookup however long the history is.
pub fn position_changed_sql(settings: &Settings, expected: Position) -> String {
    format!(
        "(SELECT {} FROM {}) IS DISTINCT FROM {}",
        position_of_sql("max(applied_at)"),
        qualified(settings),
        expected.sql()
    )
}

/// The `RETURNING` clause of this runner's own insert that gives the history's position after
/// it: the later of the new row's `applied_at` and the latest before it (the subquery sees the
/// table as it was before the insert; `greatest` skips the NULL of an empty history).
pub fn returning_position_sql(settings: &Settings) -> String {
    format!(
        "RETURNING 'position ' || {}::text",
        position_of_sql(&format!(
            "greatest(applied_at, (SELECT max(applied_at) FROM {}))",
            qualified(settings)
        ))
    )
}

/// [`returning_position_sql`] for the last of several migrations committed together, with two
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
        returning_position_sql(settings),
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

/// The position in the rows of [`returning_position_sql`].
pub fn returned_position(messages: &[SimpleQueryMessage]) -> Option<Position> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row
            .get(0)
            .and_then(|v| v.strip_prefix("position "))
            .and_then(|v| v.parse().ok())
            .map(|us| Position(Some(us))),
        _ => None,
    })
}

/// The position of rows read with [`select_sql`] (one statement, so one snapshot): the last
/// row's, which has the latest `applied_at`.
pub fn position_of(rows: &[HistoryRow]) -> Position {
    Position(rows.last().map(|row| row.applied_at_us))
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
        revision: Cow::Borrowed(migration.revision()),
        parents: migration
            .parents()
            .iter()
            .map(|p| Cow::Borrowed(*p))
            .collect(),
        message: migration.message().map(Cow::Borrowed),
        checksum: Cow::Borrowed(migration.checksum()),
        state: RowState::Applied,
        statements_done: 0,
        failed_statement: None,
        applied_at: String::new(),
        applied_at_us: 0,
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
            SimpleQueryMessage::Row(row) if row.len() == 11 => {
                let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
                Some(HistoryRow {
                    revision: Cow::Owned(text(0)),
                    parents: text(1)
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| Cow::Owned(p.to_owned()))
                        .collect(),
                    message: row.get(2).map(|m| Cow::Owned(m.to_owned())),
                    checksum: Cow::Owned(text(3)),
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
                    applied_at_us: text(10).parse().unwrap_or(0),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::__private::migrations;
    use crate::Migration;
    use crate::runtime::status::tests::with_checksum;

    const fn m(revision: &'static str, checksum: &'static str) -> Migration {
        with_checksum(revision, &[], checksum)
    }

    static BASE: [Migration; 2] = [m("a", "1"), m("b", "2")];
    static REORDERED: [Migration; 2] = [m("b", "2"), m("a", "1")];
    static EDITED: [Migration; 2] = [m("a", "1"), m("b", "3")];
    static MORE: [Migration; 3] = [m("a", "1"), m("b", "2"), m("c", "4")];

    fn digest(list: &'static [Migration]) -> HistoryDigest {
        HistoryDigest::of(&migrations(list))
    }

    #[test]
    fn the_digest_stands_for_the_set_of_revisions_and_checksums() {
        let base = digest(&BASE);
        assert_eq!(
            base,
            digest(&REORDERED),
            "the order of the files does not matter"
        );
        assert_ne!(base, digest(&EDITED), "a checksum changes it");
        assert_ne!(base, digest(&MORE), "one more revision changes it");
        // The server computes the same hash over the same text (tests/runtime.rs checks that
        // it records it); this is that text's hash.
        use sha2::{Digest, Sha256};
        let expected = Sha256::digest(b"a 1 applied\nb 2 applied");
        assert_eq!(base.hex, crate::hex(&expected).as_str());
        for list in [&BASE[..], &EDITED[..], &MORE[..]] {
            let value = digest(list).value;
            assert!((1..=1 << 60).contains(&value), "0 means changed: {value}");
        }
    }
}
