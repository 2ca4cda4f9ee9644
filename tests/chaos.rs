//! The randomized search: seeded, replayable scenarios that draw a migration set, server and
//! role settings, 1 to 8 replicas on both drivers (some through PgBouncer in transaction mode,
//! some on borrowed clients, some cancelled at a random moment, some in processes of their own,
//! the test host calling `migrate::startup`, that are SIGKILLed or SIGSTOPped) and faults at
//! random moments (backends terminated, a server restart, a table held by application traffic),
//! then edits between runs, and check the runtime's invariants after each scenario:
//! - each revision applied at most once, and applied exactly when the history says so;
//! - the schema equals what the applied revisions build;
//! - no advisory lock and no idle-in-transaction backend left;
//! - every run returned within its wait budget plus [`BOUND`] (plus PgBouncer's login retry
//!   when the server restarted behind it);
//! - a borrowed client comes back usable, outside any transaction, with its own settings;
//! - once the faults stop, one clean run finishes the work (or stops with the one error its
//!   state calls for), and never by running out of budget.
//!
//! `MIGRATE_CHAOS_SCENARIOS` (default 100, about three minutes) scenarios run from
//! `MIGRATE_CHAOS_BASE` (default a fixed seed, so that CI replays the same search);
//! `MIGRATE_CHAOS_SEED` replays one scenario. `scripts/chaos --scenarios N` runs more from a
//! random base. The replicas in processes run the `runtime_host` example, which `cargo test`
//! builds with the tests (`scripts/chaos` builds it first).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migrate::{Error, Migrations, Migrator, Pooler};
mod common;

use common::first_column;
use pg_harness::{Cluster, Pgbouncer};

/// What a run may take beyond its wait budget: one connection attempt at the deadline (the
/// connect timeout, 5 s), one last attempt (at most a lock timeout, under 1 s here) and the
/// query that names the lock's holder.
const BOUND: Duration = Duration::from_secs(7);

/// What a run through PgBouncer may take beyond [`BOUND`] when the server restarted under it:
/// PgBouncer holds the queries of its clients while it cannot log in to the server, and tries
/// again after `server_login_retry` (15 s by default), which no client setting shortens.
const POOLER_LOGIN_RETRY: Duration = Duration::from_secs(15);

/// splitmix64: a tiny seeded generator, enough to draw scenarios.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One migration of a drawn set.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// The ledger, the switch and the first table.
    Base,
    /// A new table, and a ledger row in the same transaction.
    Table,
    /// A new table alone: self-contained, so it commits in groups.
    Grouped,
    /// A column added to an existing table (the one application traffic holds).
    Alter { table: usize },
    /// `CREATE INDEX CONCURRENTLY`, named or not, then a ledger row: no-transaction.
    Concurrent { table: usize, named: bool },
    /// Fails until the scenario turns the switch on; transactional or not.
    Switched { no_transaction: bool },
}

#[derive(Debug, Clone)]
struct Drawn {
    kind: Kind,
    /// Made transactional after the first phase (an edit of an interrupted migration).
    edited: bool,
}

fn revision(i: usize) -> String {
    format!("c{i:03}")
}

fn sql_of(i: usize, m: &Drawn) -> String {
    let rev = revision(i);
    let parents = if i == 1 {
        "none".to_owned()
    } else {
        revision(i - 1)
    };
    let ledger = format!("INSERT INTO chaos_ledger VALUES ('{rev}');\n");
    let switch = "DO $$ BEGIN IF current_setting('chaos.switch', true) IS DISTINCT FROM 'on' THEN RAISE EXCEPTION 'the chaos switch is off'; END IF; END $$;\n";
    let (header, body) = match &m.kind {
        Kind::Base => (
            "",
            "CREATE TABLE chaos_ledger (revision text NOT NULL);\nCREATE TABLE c_1 (id int);\n"
                .to_owned(),
        ),
        Kind::Table => (
            "",
            format!("CREATE TABLE c_{i} (id int, v text);\n{ledger}"),
        ),
        Kind::Grouped => ("", format!("CREATE TABLE g_{i} (id int);\n")),
        Kind::Alter { table } => (
            "",
            format!("ALTER TABLE c_{table} ADD COLUMN a_{i} int;\n{ledger}"),
        ),
        Kind::Concurrent { table, named } => (
            "-- migrate:no-transaction\n",
            format!(
                "CREATE INDEX CONCURRENTLY {}ON c_{table} (id);\n{ledger}",
                if *named {
                    format!("c_{table}_i{i} ")
                } else {
                    String::new()
                }
            ),
        ),
        Kind::Switched { no_transaction } if *no_transaction && !m.edited => (
            "-- migrate:no-transaction\n",
            format!("CREATE TABLE IF NOT EXISTS s_{i} (id int);\n{switch}{ledger}"),
        ),
        Kind::Switched { .. } => (
            "",
            format!("CREATE TABLE IF NOT EXISTS s_{i} (id int);\n{switch}{ledger}"),
        ),
    };
    format!("-- revision: {rev}\n-- parents: {parents}\n-- message: chaos {i}\n{header}{body}")
}

/// Writes the set into a fresh directory and loads it as the standalone command does. The
/// directory stays for replicas in processes of their own, which read it themselves.
fn load(seed: u64, phase: &str, set: &[Drawn]) -> (&'static Migrations, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "migrate-chaos-{}-{seed}-{phase}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, m) in set.iter().enumerate() {
        let i = i + 1;
        std::fs::write(dir.join(format!("{}_chaos.sql", revision(i))), sql_of(i, m)).unwrap();
    }
    let analysis = migrate::analysis::check::analyze_dir(&dir, "chaos");
    let errors: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "the drawn set does not compile: {errors:#?}"
    );
    let migrations = Migrations::from_analysis(&analysis);
    (Box::leak(Box::new(migrations)), dir)
}

fn draw_set(rng: &mut Rng) -> Vec<Drawn> {
    let mut set = vec![Drawn {
        kind: Kind::Base,
        edited: false,
    }];
    let mut tables = vec![1];
    for i in 2..=(3 + rng.below(6) as usize) {
        let kind = match rng.below(10) {
            0 | 1 => Kind::Table,
            2 | 3 => Kind::Grouped,
            4 | 5 => Kind::Alter {
                table: *rng.pick(&tables),
            },
            6 | 7 => Kind::Concurrent {
                table: *rng.pick(&tables),
                named: rng.chance(50),
            },
            _ => Kind::Switched {
                no_transaction: rng.chance(60),
            },
        };
        if kind == Kind::Table {
            tables.push(i);
        }
        set.push(Drawn {
            kind,
            edited: false,
        });
    }
    set
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    UrlBlocking,
    UrlTokio,
    BorrowedBlocking,
    BorrowedTokio,
    /// The host binary (`migrate::startup`), in a process of its own.
    Process {
        tokio: bool,
    },
}

/// What happens to a replica's process while it runs.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Kill { after: Duration },
    Stop { after: Duration, stopped: Duration },
}

#[derive(Debug, Clone)]
struct Replica {
    mode: Mode,
    pooled: bool,
    budget: Duration,
    lock_timeout: Duration,
    group_limit: usize,
    /// The tokio future is dropped after this long (a timeout around the run).
    cancel_after: Option<Duration>,
    /// The borrowed client's own `lock_timeout`, set before the run.
    own_lock_timeout: String,
    /// For a replica in a process: SIGKILL, or SIGSTOP then SIGCONT.
    signal: Option<Signal>,
}

#[derive(Debug, Clone)]
enum Fault {
    Terminate { after: Duration },
    Restart { after: Duration, down: Duration },
    HoldTable { after: Duration, hold: Duration },
}

#[derive(Debug)]
struct Scenario {
    set: Vec<Drawn>,
    settings: Vec<String>,
    replicas: Vec<Replica>,
    faults: Vec<Fault>,
    edit: bool,
    tokio_final: bool,
}

const SETTINGS: [&str; 13] = [
    "DateStyle = 'SQL, DMY'",
    "DateStyle = 'German, YMD'",
    "TimeZone = 'Asia/Kolkata'",
    "TimeZone = 'America/St_Johns'",
    "IntervalStyle = 'iso_8601'",
    "default_transaction_isolation = 'serializable'",
    "default_transaction_isolation = 'repeatable read'",
    "search_path = nowhere, public",
    "statement_timeout = '900ms'",
    "lock_timeout = '50ms'",
    "idle_in_transaction_session_timeout = '2s'",
    "extra_float_digits = 3",
    "standard_conforming_strings = off",
];

fn draw(seed: u64, pooler: bool) -> Scenario {
    let mut rng = Rng(seed);
    let set = draw_set(&mut rng);
    let settings = SETTINGS
        .iter()
        .filter(|_| rng.chance(25))
        .map(|s| s.to_string())
        .collect();
    let replicas = (0..1 + rng.below(8))
        .map(|_| {
            let mode = *rng.pick(&[
                Mode::UrlBlocking,
                Mode::UrlTokio,
                Mode::BorrowedBlocking,
                Mode::BorrowedTokio,
                Mode::Process { tokio: false },
                Mode::Process { tokio: true },
            ]);
            let url_mode = matches!(
                mode,
                Mode::UrlBlocking | Mode::UrlTokio | Mode::Process { .. }
            );
            let signal = match (mode, rng.below(4)) {
                (Mode::Process { .. }, 0) => Some(Signal::Kill {
                    after: rng.millis(0, 1200),
                }),
                (Mode::Process { .. }, 1) => Some(Signal::Stop {
                    after: rng.millis(0, 1200),
                    stopped: rng.millis(100, 2000),
                }),
                _ => None,
            };
            Replica {
                mode,
                pooled: pooler && url_mode && rng.chance(30),
                budget: rng.millis(800, 4000),
                lock_timeout: rng.millis(100, 800),
                group_limit: *rng.pick(&[1, 2, 64]),
                cancel_after: (matches!(mode, Mode::UrlTokio | Mode::BorrowedTokio)
                    && rng.chance(30))
                .then(|| rng.millis(0, 400)),
                // Odd, so that the server shows it in milliseconds (it writes 7000ms as 7s).
                own_lock_timeout: format!("{}ms", (1000 + rng.below(9000)) | 1),
                signal,
            }
        })
        .collect();
    let mut faults = Vec::new();
    if rng.chance(35) {
        faults.push(Fault::Terminate {
            after: rng.millis(0, 1500),
        });
    }
    if rng.chance(35) {
        faults.push(Fault::HoldTable {
            after: rng.millis(0, 800),
            hold: rng.millis(300, 3000),
        });
    }
    if rng.chance(8) {
        faults.push(Fault::Restart {
            after: rng.millis(0, 1500),
            down: rng.millis(100, 1500),
        });
    }
    Scenario {
        set,
        settings,
        replicas,
        faults,
        edit: rng.chance(50),
        tokio_final: rng.chance(50),
    }
}

/// What one replica's run ended with.
#[derive(Debug)]
struct Ran {
    /// The run's result; `Err` when it did not end with one: cancelled, no connection, or a
    /// process (which reports in `process`).
    result: Result<Result<migrate::Report, Error>, &'static str>,
    /// A process's exit code (`None` when killed) and what it wrote on stderr.
    process: Option<(Option<i32>, String)>,
    took: Duration,
    /// For a borrowed client still connected: its `lock_timeout` and whether it is outside any
    /// transaction, read after the run.
    borrowed_after: Option<Result<(String, bool), String>>,
}

struct Env {
    cluster: Arc<Mutex<Cluster>>,
    port: u16,
    pgbouncer: Option<Pgbouncer>,
}

impl Env {
    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn values(url: &str, sql: &str) -> Vec<String> {
    let mut client = pg_harness::connect_with_retry(url, Duration::from_secs(30));
    first_column(&client.simple_query(sql).unwrap())
}

/// [`values`] of a table that a scenario may not have created (nothing applied yet): none.
fn values_if_created(url: &str, table: &str, sql: &str) -> Vec<String> {
    let exists = values(
        url,
        &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
    );
    if exists == ["t"] {
        values(url, sql)
    } else {
        Vec::new()
    }
}

fn lock_timeout_of(messages: &[postgres::SimpleQueryMessage]) -> String {
    first_column(messages).pop().unwrap_or_default()
}

const BORROWED_STATE: &str = "SELECT current_setting('lock_timeout')";

/// Whether a client is outside any transaction block: `SAVEPOINT` fails there (25P01), and
/// succeeds inside one (or fails with 25P02 inside a failed one).
const SAVEPOINT_PROBE: &str = "SAVEPOINT chaos_probe";

fn outside_transaction(probe: Result<(), postgres::Error>) -> bool {
    probe.is_err_and(|e| e.code().is_some_and(|c| c.code() == "25P01"))
}

/// A replica in a process of its own: the host binary on the set's directory, with the
/// replica's settings in its environment, signalled as drawn.
fn run_process(replica: &Replica, tokio: bool, dir: &std::path::Path, url: &str) -> Ran {
    let started = Instant::now();
    let mut command = std::process::Command::new(common::host_binary());
    command
        .env_clear()
        .env("DATABASE_URL", url)
        .env("MIGRATE_TEST_DIR", dir)
        .env(
            "MIGRATE_TEST_DRIVER",
            if tokio { "tokio" } else { "blocking" },
        )
        .env(
            "MIGRATE_WAIT_BUDGET",
            format!("{}ms", replica.budget.as_millis()),
        )
        .env(
            "MIGRATE_LOCK_TIMEOUT",
            format!("{}ms", replica.lock_timeout.as_millis()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if replica.pooled {
        command.env("MIGRATE_POOLER", "transaction");
    }
    let Ok(mut child) = command.spawn() else {
        return Ran {
            result: Err("could not start the host"),
            process: None,
            took: started.elapsed(),
            borrowed_after: None,
        };
    };
    let signal = |name: &str, pid: u32| {
        let _ = std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status();
    };
    match replica.signal {
        Some(Signal::Kill { after }) => {
            std::thread::sleep(after);
            let _ = child.kill();
        }
        Some(Signal::Stop { after, stopped }) => {
            std::thread::sleep(after);
            signal("-STOP", child.id());
            std::thread::sleep(stopped);
            signal("-CONT", child.id());
        }
        None => {}
    }
    let process = child
        .wait_with_output()
        .map(|out| {
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .unwrap_or((None, String::new()));
    Ran {
        result: Err("a process"),
        process: Some(process),
        took: started.elapsed(),
        borrowed_after: None,
    }
}

fn run_replica(
    k: usize,
    replica: &Replica,
    migrations: &'static Migrations,
    dir: &std::path::Path,
    url: &str,
) -> Ran {
    if let Mode::Process { tokio } = replica.mode {
        return run_process(replica, tokio, dir, url);
    }
    let migrator = Migrator::new(migrations)
        .wait_budget(replica.budget)
        .lock_timeout(replica.lock_timeout)
        .group_limit(replica.group_limit)
        .application_name(format!("chaos-{k}"))
        .pooler(if replica.pooled {
            Pooler::Transaction
        } else {
            Pooler::None
        });
    let borrowed_url = format!("{url}?application_name=chaos-borrowed-{k}");
    let started = Instant::now();
    let own = format!("SET lock_timeout = '{}'", replica.own_lock_timeout);
    let (result, borrowed_after) = match replica.mode {
        Mode::UrlBlocking => (Ok(migrator.run_url(url)), None),
        Mode::BorrowedBlocking => match postgres::Client::connect(&borrowed_url, postgres::NoTls) {
            Ok(mut client) => {
                let _ = client.batch_execute(&own);
                let result = migrator.run(&mut client);
                let outside = outside_transaction(client.batch_execute(SAVEPOINT_PROBE));
                let after = client
                    .simple_query(BORROWED_STATE)
                    .map(|m| (lock_timeout_of(&m), outside))
                    .map_err(|e| e.to_string());
                (Ok(result), Some(after))
            }
            Err(_) => (Err("could not connect"), None),
        },
        Mode::Process { .. } => (Err("a process"), None),
        Mode::UrlTokio | Mode::BorrowedTokio => {
            let runtime = common::driver::runtime();
            runtime.block_on(async {
                let cancel = replica.cancel_after.unwrap_or(Duration::MAX);
                if replica.mode == Mode::UrlTokio {
                    let run = tokio::time::timeout(cancel, migrator.run_url_async(url)).await;
                    (run.map_err(|_| "cancelled"), None)
                } else {
                    let Ok((mut client, connection)) =
                        tokio_postgres::connect(&borrowed_url, tokio_postgres::NoTls).await
                    else {
                        return (Err("could not connect"), None);
                    };
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&own).await;
                    let run = tokio::time::timeout(cancel, migrator.run_async(&mut client)).await;
                    let outside = outside_transaction(client.batch_execute(SAVEPOINT_PROBE).await);
                    let after = client
                        .simple_query(BORROWED_STATE)
                        .await
                        .map(|m| (lock_timeout_of(&m), outside))
                        .map_err(|e| e.to_string());
                    (run.map_err(|_| "cancelled"), Some(after))
                }
            })
        }
    };
    Ran {
        result,
        process: None,
        took: started.elapsed(),
        borrowed_after,
    }
}

/// What a replica's process never prints, whatever the faults: an object created twice (a
/// migration applied twice), an edit or divergence nobody made, a panic.
const PROCESS_NEVER_SAYS: [&str; 7] = [
    "SQLSTATE 42P07",
    "SQLSTATE 42701",
    "SQLSTATE 42710",
    "were edited since they ran",
    "changed since it started",
    "do not build on its head",
    "panicked",
];

/// Whether `error` is one a replica may end with while others race it and faults strike.
fn allowed_during_faults(error: &Error) -> bool {
    match error {
        Error::WaitBudgetExhausted { .. }
        | Error::Connect { .. }
        | Error::Interrupted { .. }
        | Error::NoTransactionThroughPooler { .. } => true,
        // A borrowed connection that was lost, or the server shutting down under a statement.
        Error::Database { .. } => true,
        Error::Migration { cause, .. } => {
            // The switch, a backend terminated under the statement, or a server setting that
            // a migration statement trips on (a role's statement_timeout does not reach the
            // runner's statements: it sets its own).
            ["P0001", "57P01", "57P02", "57P03", "25P02"].contains(&cause.code.as_str())
                || cause.code.starts_with("08")
        }
        _ => false,
    }
}

fn check(env: &Env, seed: u64, scenario: &Scenario) -> Result<String, String> {
    let admin = env.url("postgres");
    let db = format!("chaos_{}_{seed}", std::process::id());
    let mut client = pg_harness::connect_with_retry(&admin, Duration::from_secs(30));
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        client
            .batch_execute(&sql)
            .map_err(|e| format!("{sql}: {e:?}"))?;
    }
    for setting in &scenario.settings {
        // Half on the database, half on the role in this database.
        let target = if setting.len() % 2 == 0 {
            format!("DATABASE {db}")
        } else {
            format!("ROLE postgres IN DATABASE {db}")
        };
        client
            .batch_execute(&format!("ALTER {target} SET {setting}"))
            .map_err(|e| format!("{setting}: {e}"))?;
    }
    let direct = env.url(&db);
    let pooled = env
        .pgbouncer
        .as_ref()
        .map_or_else(|| direct.clone(), |p| p.url(&db));
    let (first, first_dir) = load(seed, "first", &scenario.set);

    // Phase 1: replicas race each other and the faults.
    let fault_threads: Vec<_> = scenario
        .faults
        .iter()
        .cloned()
        .map(|fault| {
            let cluster = env.cluster.clone();
            let admin = admin.clone();
            let direct = direct.clone();
            let db = db.clone();
            std::thread::spawn(move || match fault {
                Fault::Terminate { after } => {
                    std::thread::sleep(after);
                    // The server may be restarting under another fault: then there is nothing to end.
                    if let Ok(mut admin) = postgres::Client::connect(&admin, postgres::NoTls) {
                        let _ = admin.batch_execute(&format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND application_name LIKE 'chaos-%'"));
                    }
                }
                Fault::Restart { after, down } => {
                    std::thread::sleep(after);
                    let mut cluster = cluster.lock().unwrap();
                    cluster.stop();
                    std::thread::sleep(down);
                    cluster.restart();
                }
                Fault::HoldTable { after, hold } => {
                    std::thread::sleep(after);
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < deadline {
                        if let Ok(mut app) = postgres::Client::connect(
                            &format!("{direct}?application_name=app"),
                            postgres::NoTls,
                        ) && app.batch_execute("BEGIN; SELECT count(*) FROM public.c_1").is_ok()
                        {
                            std::thread::sleep(hold);
                            let _ = app.batch_execute("COMMIT");
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    let replicas: Vec<_> = scenario
        .replicas
        .iter()
        .cloned()
        .enumerate()
        .map(|(k, replica)| {
            let url = if replica.pooled {
                pooled.clone()
            } else {
                direct.clone()
            };
            let dir = first_dir.clone();
            std::thread::spawn(move || run_replica(k, &replica, first, &dir, &url))
        })
        .collect();
    let ran: Vec<Ran> = replicas.into_iter().map(|r| r.join().unwrap()).collect();
    for fault in fault_threads {
        let _ = fault.join();
    }
    let mut violations = Vec::new();
    for (k, (replica, ran)) in scenario.replicas.iter().zip(&ran).enumerate() {
        let stopped = match replica.signal {
            Some(Signal::Stop { stopped, .. }) => stopped,
            _ => Duration::ZERO,
        };
        let restarted = scenario
            .faults
            .iter()
            .any(|f| matches!(f, Fault::Restart { .. }));
        let pooler = if replica.pooled && restarted {
            POOLER_LOGIN_RETRY
        } else {
            Duration::ZERO
        };
        if ran.took > replica.budget + BOUND + stopped + pooler {
            violations.push(format!(
                "replica {k} took {:?}, beyond its budget {:?} + {BOUND:?}",
                ran.took, replica.budget
            ));
        }
        if let Ok(Err(error)) = &ran.result
            && !allowed_during_faults(error)
        {
            violations.push(format!("replica {k} ({replica:?}) failed: {error}"));
        }
        if let Some((Some(code), stderr)) = &ran.process
            && *code != 0
            && (*code != 1 || PROCESS_NEVER_SAYS.iter().any(|text| stderr.contains(text)))
        {
            violations.push(format!(
                "replica {k} ({replica:?}) exited with {code}: {stderr}"
            ));
        }
        if let Some(Ok((timeout, outside))) = &ran.borrowed_after {
            if *timeout != replica.own_lock_timeout {
                violations.push(format!(
                    "replica {k}: the borrowed client's lock_timeout is {timeout}, it set {}",
                    replica.own_lock_timeout
                ));
            }
            if !outside {
                violations.push(format!(
                    "replica {k}: the borrowed client is left inside a transaction"
                ));
            }
        }
    }
    violations.extend(leftovers(&admin, &db));

    // Phase 2: the switch is turned on, maybe an interrupted migration edited, one clean run.
    values(
        &admin,
        &format!("ALTER DATABASE {db} SET chaos.switch = 'on'"),
    );
    let running: Vec<String> = values_if_created(
        &direct,
        "migrate_history",
        "SELECT revision FROM migrate_history WHERE state = 'running' ORDER BY 1",
    );
    let mut set = scenario.set.clone();
    let mut edited = false;
    if scenario.edit {
        for (i, m) in set.iter_mut().enumerate() {
            if let Kind::Switched {
                no_transaction: true,
            } = m.kind
                && running.contains(&revision(i + 1))
            {
                m.edited = true;
                edited = true;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&first_dir);
    let (last, last_dir) = load(seed, "last", &set);
    let _ = std::fs::remove_dir_all(&last_dir);
    let clean = Migrator::new(last).wait_budget(Duration::from_secs(20));
    let started = Instant::now();
    let result = if scenario.tokio_final {
        common::driver::runtime().block_on(clean.run_url_async(&direct))
    } else {
        clean.run_url(&direct)
    };
    let took = started.elapsed();
    if took > Duration::from_secs(20) + BOUND {
        violations.push(format!("the clean run took {took:?}"));
    }
    let outcome = match &result {
        Ok(report) if report.status.is_up_to_date() => "applied".to_owned(),
        Ok(report) => {
            violations.push(format!(
                "the clean run left work pending: {:?}",
                report.status.pending.len()
            ));
            "pending".to_owned()
        }
        Err(Error::EditedWhileInterrupted { revision, .. }) if edited => {
            format!("edited {revision}")
        }
        Err(Error::Interrupted { revision, .. }) if running.contains(revision) => {
            format!("interrupted {revision}")
        }
        Err(error) => {
            violations.push(format!(
                "the clean run failed{}: {error}",
                if edited {
                    " (an interrupted file was edited)"
                } else {
                    ""
                }
            ));
            "failed".to_owned()
        }
    };
    violations.extend(ledger_matches_history(&direct, last));
    if outcome == "applied" {
        violations.extend(schema_is_what_the_revisions_build(env, seed, &direct, last));
    }
    violations.extend(leftovers(&admin, &db));
    let _ = values(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    if violations.is_empty() {
        Ok(outcome)
    } else {
        Err(violations.join("\n  "))
    }
}

/// The rows of `sql`, `revision value` each, by revision; none when `table` does not exist.
fn pairs_if_created(url: &str, table: &str, sql: &str) -> BTreeMap<String, String> {
    values_if_created(url, table, sql)
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, v)| (r.to_owned(), v.to_owned()))
        .collect()
}

/// Each ledger revision inserted at most once; once exactly for an applied row, never for a
/// revision without a row (a running row may have run its ledger statement or not).
fn ledger_matches_history(url: &str, migrations: &Migrations) -> Vec<String> {
    let ledger = pairs_if_created(
        url,
        "chaos_ledger",
        "SELECT revision || ' ' || count(*) FROM chaos_ledger GROUP BY revision",
    );
    let rows = pairs_if_created(
        url,
        "migrate_history",
        "SELECT revision || ' ' || state FROM migrate_history",
    );
    let mut violations = Vec::new();
    for migration in migrations {
        let writes_ledger = migration
            .statements()
            .iter()
            .any(|s| migration.statement_sql(s).contains("chaos_ledger VALUES"));
        if !writes_ledger {
            continue;
        }
        let revision = migration.revision();
        let count: usize = ledger
            .get(revision)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let state = rows.get(revision).map(String::as_str);
        let fine = match state {
            Some("applied") => count == 1,
            Some(_) => count <= 1,
            None => count == 0,
        };
        if !fine {
            violations.push(format!(
                "{revision}: {count} ledger row(s) with history state {state:?}"
            ));
        }
    }
    violations
}

/// The schema of the database against a fresh one built by the same migrations in one run.
fn schema_is_what_the_revisions_build(
    env: &Env,
    seed: u64,
    url: &str,
    migrations: &'static Migrations,
) -> Vec<String> {
    let fresh = format!("chaos_{}_{seed}_fresh", std::process::id());
    let admin = env.url("postgres");
    values(
        &admin,
        &format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)"),
    );
    values(&admin, &format!("CREATE DATABASE {fresh}"));
    values(
        &admin,
        &format!("ALTER DATABASE {fresh} SET chaos.switch = 'on'"),
    );
    let fresh_url = env.url(&fresh);
    let migrator = Migrator::new(migrations);
    let mut violations = Vec::new();
    match migrator.run_url(&fresh_url) {
        Err(e) => violations.push(format!("the fresh build failed: {e}")),
        Ok(_) => {
            let catalog = |url: &str| {
                let mut client = pg_harness::connect_with_retry(url, Duration::from_secs(30));
                migrator.catalog(&mut client)
            };
            match (catalog(&fresh_url), catalog(url)) {
                (Ok(expected), Ok(actual)) => {
                    for difference in migrate::catalog::diff(&expected, &actual) {
                        violations.push(format!("schema: {difference}"));
                    }
                }
                (a, b) => violations.push(format!("reading catalogs: {a:?} {b:?}")),
            }
        }
    }
    values(
        &admin,
        &format!("DROP DATABASE IF EXISTS {fresh} WITH (FORCE)"),
    );
    violations
}

/// Advisory locks and idle-in-transaction backends left in the database, once the backends of
/// finished clients had time to end.
fn leftovers(admin: &str, db: &str) -> Vec<String> {
    common::settle(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            values(
                admin,
                &format!(
                    "SELECT l.pid || ' advisory lock ' || coalesce(a.application_name, '') FROM pg_locks l JOIN pg_database d ON d.oid = l.database LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND d.datname = '{db}' \
                     UNION ALL SELECT pid || ' idle in transaction ' || application_name FROM pg_stat_activity WHERE datname = '{db}' AND state LIKE 'idle in transaction%' AND application_name <> 'app'"
                ),
            )
        },
        Vec::is_empty,
    )
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_runtime_keeps_its_invariants_across_a_randomized_search() {
    let cluster = Cluster::start();
    let port = cluster.port();
    let pgbouncer = pgbouncer_installed().then(|| Pgbouncer::start(&cluster, "transaction", 20));
    let env = Env {
        cluster: Arc::new(Mutex::new(cluster)),
        port,
        pgbouncer,
    };
    let seeds: Vec<u64> = match env_u64("MIGRATE_CHAOS_SEED") {
        Some(seed) => vec![seed],
        None => {
            let base = env_u64("MIGRATE_CHAOS_BASE").unwrap_or(0x05EE_D0FC_4A05);
            let count = env_u64("MIGRATE_CHAOS_SCENARIOS").unwrap_or(100);
            let mut rng = Rng(base);
            println!("chaos: {count} scenario(s) from base {base}");
            (0..count).map(|_| rng.next() % 1_000_000_000).collect()
        }
    };
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for seed in &seeds {
        let scenario = draw(*seed, env.pgbouncer.is_some());
        match check(&env, *seed, &scenario) {
            Ok(outcome) => {
                let kind = outcome.split(' ').next().unwrap_or("").to_owned();
                *outcomes.entry(kind).or_default() += 1;
            }
            Err(violations) => {
                println!(
                    "chaos: scenario {seed} broke an invariant:\n  {violations}\n  scenario: {scenario:?}\n  replay: MIGRATE_CHAOS_SEED={seed} cargo test --all-features --test chaos -- --nocapture"
                );
                failures.push(*seed);
            }
        }
    }
    println!(
        "chaos: {} scenario(s) in {:.0?}, final runs: {outcomes:?}, broken: {failures:?}",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "scenarios that broke an invariant: {failures:?} (replay one with MIGRATE_CHAOS_SEED=<seed>)"
    );
}

fn pgbouncer_installed() -> bool {
    std::process::Command::new("pgbouncer")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || std::path::Path::new("/usr/sbin/pgbouncer").exists()
}
