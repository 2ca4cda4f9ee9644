//! Helpers shared by the integration tests that drive host binaries against a real server.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pg_harness::TestDatabase;
use postgres::SimpleQueryMessage;

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
    client
        .simple_query(query)
        .unwrap()
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

/// Advisory locks still held, once the backends of exited clients had time to end (a backend
/// notices its client's exit asynchronously).
pub fn advisory_locks(db: &TestDatabase) -> String {
    let mut client = db.client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let held = values(
            &mut client,
            "SELECT coalesce(string_agg(l.pid || ' ' || coalesce(a.state, '') || ' ' || coalesce(a.query, ''), '; '), '') FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'",
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
