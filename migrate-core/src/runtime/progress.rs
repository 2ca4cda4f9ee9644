//! What a long statement is doing while it runs: past a threshold, a watcher on a connection of
//! its own reads `pg_stat_progress_create_index` (phase, blocks and tuples done of the total) and
//! the backends that block it (`pg_blocking_pids`), logs a line each time, and keeps the latest
//! reading where [`current`] (a readiness endpoint, a status page) finds it.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::SimpleQueryMessage;

use super::connect::connect;

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

static CURRENT: Mutex<BTreeMap<i32, Progress>> = Mutex::new(BTreeMap::new());

/// The statements running past the threshold now, in this process (several in a fleet).
pub fn current() -> Vec<Progress> {
    CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

/// What is watched: a statement of a migration on the backend `pid`.
pub(crate) struct Watched {
    pub url: String,
    pub application_name: String,
    pub pid: i32,
    pub revision: String,
    pub statement: usize,
    pub path: String,
    pub line: usize,
    pub after: Duration,
}

/// A running watcher; dropping it (the statement ended) stops it and forgets its reading.
pub(crate) struct Watch {
    stop: Arc<(Mutex<bool>, Condvar)>,
    pid: i32,
}

impl Watch {
    /// Watches the statement, unless the threshold is zero (which turns watching off).
    pub(crate) fn start(watched: Watched) -> Option<Watch> {
        if watched.after.is_zero() {
            return None;
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let pid = watched.pid;
        let signal = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("migrate-progress".to_owned())
            .spawn(move || watch(&watched, &signal));
        if let Err(e) = spawned {
            log::warn!("the progress of long statements is not reported: {e}");
        }
        Some(Watch { stop, pid })
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
            .remove(&self.pid);
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

fn watch(watched: &Watched, signal: &(Mutex<bool>, Condvar)) {
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
            log::warn!("the progress of {} is not reported: {e}", watched.revision);
            return;
        }
    };
    // An index build counts blocks then tuples; CLUSTER / VACUUM FULL and VACUUM count the
    // table's blocks.
    let query = format!(
        "SELECT coalesce(i.phase, c.phase, v.phase), \
                coalesce(i.blocks_done, c.heap_blks_scanned, v.heap_blks_scanned), \
                coalesce(i.blocks_total, c.heap_blks_total, v.heap_blks_total), \
                coalesce(i.tuples_done, c.heap_tuples_written), i.tuples_total, \
         (SELECT string_agg(format('pid %s (%s): %s', a.pid, coalesce(nullif(a.application_name, ''), 'no application name'), \
                                   left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80)), '; ') \
          FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids(s.pid))) \
         FROM (SELECT {}::int AS pid) s \
         LEFT JOIN pg_stat_progress_create_index i ON i.pid = s.pid \
         LEFT JOIN pg_stat_progress_cluster c ON c.pid = s.pid \
         LEFT JOIN pg_stat_progress_vacuum v ON v.pid = s.pid",
        watched.pid
    );
    loop {
        let Ok(messages) = client.simple_query(&query) else {
            return;
        };
        let Some(row) = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        }) else {
            return;
        };
        let number = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (blocks, blocks_total, tuples, tuples_total) =
            (number(1), number(2), number(3), number(4));
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
        let progress = Progress {
            revision: watched.revision.clone(),
            statement: watched.statement,
            path: watched.path.clone(),
            line: watched.line,
            running: started.elapsed(),
            phase,
            fraction,
            blocked_by: row.get(5).map(str::to_owned),
        };
        {
            // Under the readings' lock: a watch dropped before this is seen stopped here, one
            // dropped after removes what this inserts.
            let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            if stopped(signal, Duration::ZERO) {
                return;
            }
            current.insert(watched.pid, progress.clone());
        }
        log::info!("{progress}");
        if stopped(signal, every(watched.after)) {
            return;
        }
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
            pid: 1,
            revision: "0001".to_owned(),
            statement: 1,
            path: "m/0001.sql".to_owned(),
            line: 1,
            after: Duration::ZERO,
        };
        assert!(Watch::start(watched).is_none());
        assert_eq!(
            every(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
        assert_eq!(every(Duration::from_secs(5)), Duration::from_millis(500));
    }
}
