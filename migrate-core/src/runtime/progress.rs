//! What a long statement is doing while it runs: past a threshold, a watcher on a connection of
//! its own reads `pg_stat_progress_create_index` (phase, blocks and tuples done of the total) and
//! the backends that block it (`pg_blocking_pids`), logs a line each time, and keeps the latest
//! reading where [`current`] (a readiness endpoint, a status page) finds it.
//!
//! A no-transaction statement is watched on the backend that runs it. A transaction's backend is
//! found by the migration lock it holds (through a transaction pooler, the backend a separate
//! query lands on may be another one), and its running statement by the text
//! `pg_stat_activity` shows for that backend.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::SimpleQueryMessage;

use super::connect::connect;
use crate::{Migration, Statement};

/// How often a watcher reads the progress once it started: every half second, or sooner when
/// the threshold is shorter.
fn every(after: Duration) -> Duration {
    after.clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// The latest reading of one statement that has been running past the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The fleet's target (a tenant schema or a database) the statement runs on.
    pub target: Option<String>,
    pub revision: String,
    /// 1-based, in its migration.
    pub statement: usize,
    pub path: String,
    pub line: usize,
    /// How long the statement has been running, as the server counts it.
    pub running: Duration,
    /// The phase and counts the server reports (`building index: scanning table, blocks
    /// 1200/5000, tuples 0/0`), or empty when it reports none for this statement.
    pub phase: String,
    /// Done of the total, 0 to 1, when the server counts it.
    pub fraction: Option<f64>,
    /// The backends this statement waits for: pid, application and query.
    pub blocked_by: Option<String>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(target) = &self.target {
            write!(f, "{target}: ")?;
        }
        write!(
            f,
            "{} statement {} ({}:{}) running for {:.1} s",
            self.revision,
            self.statement,
            self.path,
            self.line,
            self.running.as_secs_f64()
        )?;
        if !self.phase.is_empty() {
            write!(f, ": {}", self.phase)?;
        }
        if let Some(fraction) = self.fraction {
            write!(f, " ({:.1} %)", fraction * 100.0)?;
        }
        if let Some(blockers) = &self.blocked_by {
            write!(f, "; waiting for {blockers}")?;
        }
        Ok(())
    }
}

/// The latest reading of each watch, by the watch's number.
static CURRENT: Mutex<BTreeMap<u64, Progress>> = Mutex::new(BTreeMap::new());
static NEXT_WATCH: AtomicU64 = AtomicU64::new(0);

/// The statements running past the threshold now, in this process (several in a fleet).
pub fn current() -> Vec<Progress> {
    CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

/// The backend whose statement is watched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Backend {
    /// This process id (a session the runtime holds on its own).
    Pid(i32),
    /// Whichever backend of the watcher's database holds the migration lock with this key.
    LockHolder(i64),
}

/// One statement a watch may find running.
#[derive(Debug, Clone)]
pub(crate) struct WatchedStatement {
    pub revision: String,
    /// 1-based, in its migration.
    pub statement: usize,
    pub path: String,
    pub line: usize,
    /// The text the session sends, to recognise it in `pg_stat_activity`.
    pub sql: &'static str,
}

/// Statement `index` (0-based) of `migration`, to watch.
pub(crate) fn watched_statement(
    migration: &'static Migration,
    index: usize,
    statement: &Statement,
) -> WatchedStatement {
    WatchedStatement {
        revision: migration.revision().to_owned(),
        statement: index + 1,
        path: migration.path().to_owned(),
        line: statement.line,
        sql: migration.statement_sql(statement),
    }
}

/// What is watched: the statements (in the order they run) of a migration, or of a group of
/// migrations committed together, on one backend.
pub(crate) struct Watched {
    pub url: String,
    pub application_name: String,
    pub target: Option<String>,
    pub backend: Backend,
    pub statements: Vec<WatchedStatement>,
    pub after: Duration,
}

/// A running watcher; dropping it (the statement ended) stops it and forgets its reading.
pub(crate) struct Watch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    number: u64,
}

impl Watch {
    /// Watches the statement, unless the threshold is zero (which turns watching off).
    pub(crate) fn start(watched: Watched) -> Option<Watch> {
        if watched.after.is_zero() || watched.statements.is_empty() {
            return None;
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let number = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("migrate-progress".to_owned())
            .spawn(move || watch(&watched, number, &signal));
        if let Err(e) = spawned {
            log::warn!("the progress of long statements is not reported: {e}");
        }
        Some(Watch { stop, number })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        CURRENT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.number);
    }
}

/// Waits `timeout` unless stopped first; whether it was stopped.
fn stopped(signal: &(Mutex<bool>, Condvar), timeout: Duration) -> bool {
    let (stopped, wake) = signal;
    let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, _) = wake
        .wait_timeout_while(guard, timeout, |stopped| !*stopped)
        .unwrap_or_else(|e| e.into_inner());
    *guard
}

/// The statement `query` (what `pg_stat_activity` shows the backend running) is, when it is one
/// of `statements`, looking from the one seen last (the backend only moves forward). The server
/// cuts the text it shows at `track_activity_query_size` bytes (100 at least, less a character
/// cut in its middle): a beginning of 64 bytes or more stands for the statement it begins.
fn running(statements: &[WatchedStatement], query: &str, from: usize) -> Option<usize> {
    let query = query.trim_end();
    let order = (from..statements.len()).chain(0..from.min(statements.len()));
    let candidates: Vec<usize> = order.collect();
    candidates
        .iter()
        .copied()
        .find(|&i| statements[i].sql.trim_end() == query)
        .or_else(|| {
            (query.len() >= 64)
                .then(|| {
                    candidates
                        .iter()
                        .copied()
                        .find(|&i| statements[i].sql.starts_with(query))
                })
                .flatten()
        })
}

/// The reading query: phase and counts from the progress views, the backends blocking the
/// watched one, and the text it runs.
fn reading_sql(backend: Backend) -> String {
    let watched = match backend {
        Backend::Pid(pid) => format!("SELECT {pid}::int AS pid"),
        Backend::LockHolder(key) => {
            let key = key as u64;
            format!(
                "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 LIMIT 1",
                key >> 32,
                key & 0xFFFF_FFFF
            )
        }
    };
    // An index build counts blocks then tuples; CLUSTER / VACUUM FULL and VACUUM count the
    // table's blocks.
    format!(
        "SELECT coalesce(i.phase, c.phase, v.phase), \
                coalesce(i.blocks_done, c.heap_blks_scanned, v.heap_blks_scanned), \
                coalesce(i.blocks_total, c.heap_blks_total, v.heap_blks_total), \
                coalesce(i.tuples_done, c.heap_tuples_written), i.tuples_total, \
         (SELECT string_agg(format('pid %s (%s): %s', a.pid, coalesce(nullif(a.application_name, ''), 'no application name'), \
                                   left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80)), '; ') \
          FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(s.pid))), \
         a.query, extract(epoch FROM clock_timestamp() - a.query_start), a.query_start::text \
         FROM ({watched}) s \
         LEFT JOIN pg_stat_activity a ON a.pid = s.pid \
         LEFT JOIN pg_stat_progress_create_index i ON i.pid = s.pid \
         LEFT JOIN pg_stat_progress_cluster c ON c.pid = s.pid \
         LEFT JOIN pg_stat_progress_vacuum v ON v.pid = s.pid"
    )
}

fn watch(watched: &Watched, number: u64, signal: &(Mutex<bool>, Condvar)) {
    let started = Instant::now();
    if stopped(signal, watched.after) {
        return;
    }
    let mut client = match connect(
        &watched.url,
        &format!("{} progress", watched.application_name),
    ) {
        Ok(client) => client,
        Err(e) => {
            let revision = watched
                .statements
                .first()
                .map_or("", |s| s.revision.as_str());
            log::warn!("the progress of {revision} is not reported: {e}");
            return;
        }
    };
    let query = reading_sql(watched.backend);
    // Until the backend is seen running one of them, the first statement is the one named.
    let mut last_seen = 0;
    // When the statement seen last started: a later start is a later statement, even when the
    // server shows the same beginning of text for both.
    let mut seen_start: Option<String> = None;
    loop {
        let Ok(messages) = client.simple_query(&query) else {
            return;
        };
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        if let Some(row) = row {
            let start = row.get(8).map(str::to_owned);
            let from = match (&seen_start, &start) {
                (Some(before), Some(now)) if before != now => last_seen + 1,
                _ => last_seen,
            };
            if let Some(seen) = row
                .get(6)
                .and_then(|q| running(&watched.statements, q, from))
            {
                last_seen = seen;
                seen_start = start;
            }
            let Some(statement) = watched.statements.get(last_seen) else {
                return;
            };
            // The statement's own time, as the server counts it (a transaction's earlier
            // statements do not count), else the watch's.
            let running = row
                .get(7)
                .and_then(|seconds| seconds.parse::<f64>().ok())
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .map_or_else(|| started.elapsed(), Duration::from_secs_f64);
            let progress = reading(row, watched, statement, running);
            {
                // Under the readings' lock: a watch dropped before this is seen stopped here, one
                // dropped after removes what this inserts.
                let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                if stopped(signal, Duration::ZERO) {
                    return;
                }
                if running < watched.after {
                    // A short statement of a long transaction: nothing to report on it.
                    current.remove(&number);
                } else {
                    current.insert(number, progress.clone());
                }
            }
            if running >= watched.after {
                log::info!("{progress}");
            }
        } else if matches!(watched.backend, Backend::Pid(_)) {
            return;
        }
        // A transaction's backend not found holding the lock yet (or any more): read again.
        if stopped(signal, every(watched.after)) {
            return;
        }
    }
}

/// One row of [`reading_sql`], for `statement`.
fn reading(
    row: &postgres::SimpleQueryRow,
    watched: &Watched,
    statement: &WatchedStatement,
    running: Duration,
) -> Progress {
    let number = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (blocks, blocks_total, tuples, tuples_total) = (number(1), number(2), number(3), number(4));
    let phase = row.get(0).map_or_else(String::new, |phase| {
        format!("{phase}, blocks {blocks}/{blocks_total}, tuples {tuples}/{tuples_total}")
    });
    let fraction = if blocks_total > 0 {
        Some(blocks as f64 / blocks_total as f64)
    } else if tuples_total > 0 {
        Some(tuples as f64 / tuples_total as f64)
    } else {
        None
    };
    Progress {
        target: watched.target.clone(),
        revision: statement.revision.clone(),
        statement: statement.statement,
        path: statement.path.clone(),
        line: statement.line,
        running,
        phase,
        fraction,
        blocked_by: row.get(5).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zero threshold turns watching off: no thread, no connection.
    #[test]
    fn a_zero_threshold_watches_nothing() {
        let watched = Watched {
            url: "postgres://u@127.0.0.1:1/db".to_owned(),
            application_name: "migrate".to_owned(),
            target: None,
            backend: Backend::Pid(1),
            statements: vec![statement(1, "SELECT 1")],
            after: Duration::ZERO,
        };
        assert!(Watch::start(watched).is_none());
        assert_eq!(
            every(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
        assert_eq!(every(Duration::from_secs(5)), Duration::from_millis(500));
    }

    fn statement(number: usize, sql: &'static str) -> WatchedStatement {
        WatchedStatement {
            revision: "0001".to_owned(),
            statement: number,
            path: "m/0001.sql".to_owned(),
            line: number,
            sql,
        }
    }

    /// The statement a transaction's backend runs is found by its text, also when the server
    /// shows only the beginning of it (cut in the middle of a character), looking from the one
    /// seen last; a text of none of them names none.
    #[test]
    fn the_running_statement_is_found_by_its_text() {
        let long: &'static str =
            Box::leak(format!("UPDATE t SET v = '{}'", "é".repeat(600)).into_boxed_str());
        let again: &'static str = Box::leak(
            format!("UPDATE t SET v = '{}' WHERE id = 2", "é".repeat(600)).into_boxed_str(),
        );
        let statements = [
            statement(1, "ALTER TABLE t ADD COLUMN v text"),
            statement(2, long),
            statement(3, "SELECT 1"),
            statement(4, again),
        ];
        let found = |query: &str, from: usize| running(&statements, query, from).map(|i| i + 1);
        assert_eq!(found("SELECT 1", 0), Some(3));
        assert_eq!(found("ALTER TABLE t ADD COLUMN v text\n", 0), Some(1));
        // Cut at 1023 bytes, or at 99 with a character cut in its middle (98 bytes shown).
        for size in [1023, 99] {
            let mut cut = size;
            while !long.is_char_boundary(cut) {
                cut -= 1;
            }
            assert_eq!(found(&long[..cut], 0), Some(2), "{size}");
            // Statement 4 begins the same: once the backend is past statement 2, it is 4.
            assert_eq!(found(&long[..cut], 2), Some(4), "{size}");
        }
        // A short beginning is not enough to tell statements apart.
        assert_eq!(found("ALTER TABLE", 0), None);
        assert_eq!(found("SELECT pg_backend_pid()", 0), None);
        assert_eq!(found("", 0), None);
    }
}
