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
    pub revision: String,
    /// 1-based, in its migration.
    pub statement: usize,
    pub path: String,
    pub line: usize,
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
/// of `statements`. The server cuts the text it shows at `track_activity_query_size` bytes (100
/// at least), on a character boundary.
fn running<'a>(statements: &'a [WatchedStatement], query: &str) -> Option<&'a WatchedStatement> {
    let query = query.trim_end();
    statements
        .iter()
        .find(|s| s.sql.trim_end() == query)
        .or_else(|| {
            (query.len() >= 99)
                .then(|| statements.iter().find(|s| s.sql.starts_with(query)))
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
         (SELECT a.query FROM pg_stat_activity a WHERE a.pid = s.pid) \
         FROM ({watched}) s \
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
    loop {
        let Ok(messages) = client.simple_query(&query) else {
            return;
        };
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        if let Some(row) = row {
            if let Some(seen) = row.get(6).and_then(|q| running(&watched.statements, q)) {
                last_seen = watched
                    .statements
                    .iter()
                    .position(|s| std::ptr::eq(s, seen))
                    .unwrap_or(last_seen);
            }
            let Some(statement) = watched.statements.get(last_seen) else {
                return;
            };
            let progress = reading(row, statement, started.elapsed());
            {
                // Under the readings' lock: a watch dropped before this is seen stopped here, one
                // dropped after removes what this inserts.
                let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                if stopped(signal, Duration::ZERO) {
                    return;
                }
                current.insert(number, progress.clone());
            }
            log::info!("{progress}");
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
    /// shows only the beginning of it; a text of none of them names none.
    #[test]
    fn the_running_statement_is_found_by_its_text() {
        let long: &'static str =
            Box::leak(format!("UPDATE t SET v = '{}'", "é".repeat(600)).into_boxed_str());
        let statements = [
            statement(1, "ALTER TABLE t ADD COLUMN v text"),
            statement(2, long),
            statement(3, "SELECT 1"),
        ];
        let found = |query: &str| running(&statements, query).map(|s| s.statement);
        assert_eq!(found("SELECT 1"), Some(3));
        assert_eq!(found("ALTER TABLE t ADD COLUMN v text\n"), Some(1));
        // Cut at 1023 bytes on a character boundary, as the server does by default.
        let mut cut = 1023;
        while !long.is_char_boundary(cut) {
            cut -= 1;
        }
        assert_eq!(found(&long[..cut]), Some(2));
        // A short beginning is not enough to tell statements apart.
        assert_eq!(found("ALTER TABLE"), None);
        assert_eq!(found("SELECT pg_backend_pid()"), None);
        assert_eq!(found(""), None);
    }
}
