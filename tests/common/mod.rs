//! Helpers shared by the integration tests that drive host binaries against a real server.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use pg_harness::TestDatabase;
use postgres::SimpleQueryMessage;

pub mod driver;
#[allow(unused_imports)]
pub(crate) use driver::on_both_drivers;
#[allow(unused_imports)]
pub use driver::{Driver, DriverClient, OnDriver};

/// A binary built from this package's `examples/` (cargo builds them for the test run).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("examples")
        .join(name)
}

/// The runtime test host, `tests/hosts/runtime_host.rs`.
pub fn host_binary() -> std::path::PathBuf {
    example_binary("runtime_host")
}

pub fn host(url: &str, set: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(host_binary());
    cmd.env_clear()
        .env("DATABASE_URL", url)
        .env("MIGRATE_TEST_SET", set)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn run_host(url: &str, set: &str, env: &[(&str, &str)]) -> Output {
    host(url, set, env).output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn values(client: &mut postgres::Client, query: &str) -> Vec<String> {
    first_column(&client.simple_query(query).unwrap())
}

/// The revisions each replica reports it applied, all together, sorted.
pub fn applied_by_all(outputs: &[Output]) -> Vec<String> {
    let mut applied = Vec::new();
    for out in outputs {
        assert!(
            out.status.success(),
            "a replica failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout(out);
        let list = line
            .strip_prefix("migrated applied=")
            .and_then(|l| l.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        applied.extend(list.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    applied.sort();
    applied
}

/// The revisions a run applied, in order.
pub fn applied(report: &migrate::Report) -> Vec<&'static str> {
    report.applied.iter().map(|a| a.revision).collect()
}

/// The first column of every row, `NULL` for a null.
pub fn first_column(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_owned()),
            _ => None,
        })
        .collect()
}

pub fn history(db: &TestDatabase) -> Vec<String> {
    values(
        &mut db.client(),
        "SELECT revision FROM migrate_history ORDER BY revision",
    )
}

/// Advisory locks still held in the test's database (other tests run beside it on the same
/// server), once the backends of exited clients had time to end (a backend notices its client's
/// exit asynchronously).
pub fn advisory_locks(db: &TestDatabase) -> String {
    let mut client = db.client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held = values(
            &mut client,
            "SELECT coalesce(string_agg(l.pid || ' ' || coalesce(a.state, '') || ' ' || coalesce(a.query, ''), '; '), '') FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .remove(0);
        if held.is_empty() {
            return "0".to_owned();
        }
        if Instant::now() > deadline {
            return held;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live traffic holding a lock: a transaction that reads `table` (ACCESS SHARE, which conflicts
/// with every ACCESS EXCLUSIVE request) for `hold`, then commits. Returns once the lock is held.
pub fn hold_lock(url: &str, table: &str, hold: Duration) -> std::thread::JoinHandle<()> {
    let (held, is_held) = std::sync::mpsc::channel();
    let url = url.to_owned();
    let query = format!("BEGIN; SELECT count(*) FROM {table}");
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(&query).unwrap();
        held.send(()).unwrap();
        std::thread::sleep(hold);
        client.batch_execute("COMMIT").unwrap();
    });
    is_held
        .recv_timeout(Duration::from_secs(30))
        .expect("the lock holder never took its lock");
    holder
}

/// Captures log lines so tests can see retries happen.
struct Capture(Mutex<Vec<String>>);
static LOG: Capture = Capture(Mutex::new(Vec::new()));

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

pub fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = log::set_logger(&LOG);
        log::set_max_level(log::LevelFilter::Info);
    });
}

pub fn logged(needle: &str) -> Vec<String> {
    LOG.0
        .lock()
        .map(|l| l.iter().filter(|l| l.contains(needle)).cloned().collect())
        .unwrap_or_default()
}

/// Polls `done` every 20 ms until it holds; fails the test with `never` once `within` has passed.
pub fn wait_until(within: Duration, never: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{never}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` every `every` until `settled` holds for what it gives, or `within` has passed;
/// returns the last value, for the test to judge.
pub fn settle<T>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> T,
    settled: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let value = probe();
        if settled(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(every);
    }
}
