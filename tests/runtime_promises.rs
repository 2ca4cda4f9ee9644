//! The runtime's promises where examples did not look: server settings that change how values
//! are rendered, an interrupted migration whose file became transactional, a run dropped while
//! it asks for the lock, the caller's own session settings, unnamed concurrent index builds
//! retried, and the truth of each error's help.

use std::time::{Duration, Instant};

use migrate::__private::migrations;
use migrate::{Error, Migrator};
mod common;

use common::{OnDriver, advisory_locks, on_both_drivers};
use pg_harness::test_database;

static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");
static INTERRUPTED: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/interrupted");
static CANCEL: migrate::Migrations = migrate::embed_migrations!("tests/migrations/cancel");
static UNNAMED_INDEX: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/unnamed_index");

/// Runs `work` on a thread of its own and fails the test when it has not returned within
/// `bound`: a runner that loops forever must fail the test, not hang the suite.
fn within<T: Send + 'static>(bound: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(bound)
        .unwrap_or_else(|_| panic!("still running after {bound:?}"))
}

on_both_drivers! {
    /// `DateStyle 'SQL, DMY'` renders a timestamp with a zone abbreviation that, under
    /// `Asia/Kolkata`, reads back as another zone (IST is Israel's in the default set): a
    /// history position kept as text never matches again.
    fn the_history_position_survives_any_datestyle_and_time_zone(driver) {
        let db = test_database();
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE \"{0}\" SET DateStyle = 'SQL, DMY'; ALTER DATABASE \"{0}\" SET TimeZone = 'Asia/Kolkata'; ALTER DATABASE \"{0}\" SET IntervalStyle = 'sql_standard'",
                db.name()
            ))
            .unwrap();
        let url = db.url().to_owned();
        let started = Instant::now();
        let report = within(Duration::from_secs(30), move || {
            Migrator::new(&BASIC)
                .group_limit(1)
                .wait_budget(Duration::from_secs(3))
                .run_url_on(driver, &url)
        })
        .unwrap();
        assert_eq!(common::applied(&report), ["0001", "0002", "0003"]);
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // A second run, which reads the history written under these settings, has nothing to do.
        let url = db.url().to_owned();
        let again = within(Duration::from_secs(30), move || {
            Migrator::new(&BASIC).group_limit(1).wait_budget(Duration::from_secs(3)).run_url_on(driver, &url)
        })
        .unwrap();
        assert!(again.applied.is_empty());
        assert!(again.status.is_up_to_date());
    }
}

on_both_drivers! {
    /// A no-transaction migration failed half-way; the developer fixed the file and dropped
    /// `-- migrate:no-transaction`. The runner stops at once, naming both checksums, instead of
    /// retrying a guard that can never pass.
    fn an_interrupted_migration_made_transactional_stops_at_once(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&migrations(&INTERRUPTED.as_slice()[..1]))
            .run_on(&mut client)
            .unwrap();
        client
            .batch_execute("INSERT INTO migrate_history (revision, parents, checksum, state, statements_done, failed_statement, applied_by) VALUES ('0002', '0001', 'a1b2c3d4e5f6', 'running', 1, 2, 'an older build')")
            .unwrap();
        // The fixed file: the same revision, now transactional (the `basic` set's 0002).
        let fixed: &'static [migrate::Migration] =
            Box::leak(Box::new([INTERRUPTED.as_slice()[0], BASIC.as_slice()[1]]));
        let fixed: &'static migrate::Migrations = Box::leak(Box::new(migrations(fixed)));
        let started = Instant::now();
        let url = db.url().to_owned();
        let err = within(Duration::from_secs(30), move || {
            Migrator::new(fixed)
                .wait_budget(Duration::from_secs(3))
                .run_url_on(driver, &url)
        })
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let checksum = BASIC.as_slice()[1].checksum();
        assert_eq!(
            err.to_string(),
            format!(
                "no-transaction migration 0002 (tests/migrations/basic/0002_posts.sql) was interrupted after 1 statement(s) and its file changed since it started: checksum a1b2c3d4e5f6 when it started, {checksum} now\n  help: deploy a build with the file as it was when it started so that it can finish, and put the change in a new migration"
            )
        );
        assert!(matches!(err, Error::EditedWhileInterrupted { .. }));
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    /// A caller's own session settings survive a no-transaction migration on its client: they
    /// are restored, not reset to the server's defaults.
    fn a_borrowed_client_keeps_its_own_session_settings(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        client
            .batch_execute("SET lock_timeout = '4321ms'; SET statement_timeout = '98765ms'")
            .unwrap();
        let report = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap();
        assert_eq!(common::applied(&report), ["0001", "0002"]);
        assert_eq!(
            client.values("SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')"),
            ["4321ms 98765ms"]
        );
        assert_eq!(
            client.values("SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND xact_start = query_start"),
            ["1"],
            "outside any transaction"
        );
    }
}

on_both_drivers! {
    /// A failed no-transaction migration's help tells what was kept: the statements before the
    /// failed one, recorded, and where the next run resumes.
    fn a_failed_no_transaction_migration_says_what_was_kept(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&migrations(&INTERRUPTED.as_slice()[..1]))
            .run_on(&mut client)
            .unwrap();
        // The index's name is taken by a table: statement 2 fails, statement 1 took effect.
        client.batch_execute("CREATE TABLE users_nickname_idx ()").unwrap();
        let err = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "migration 0002 failed at tests/migrations/interrupted/0002_nickname.sql:6: SQLSTATE 42P07: relation \"users_nickname_idx\" already exists\n  statement: CREATE INDEX CONCURRENTLY users_nickname_idx ON users (nickname)\n  help: this migration is marked no-transaction: its first 1 statement(s) took effect and are recorded, the failed statement did not; fix the migration in a new build, or fix the data it trips on, then start again: the next run resumes at statement 2"
        );
    }
}

/// Polls `future` at most `polls` times: `Some(output)` when it finished within them, `None`
/// when it was dropped after its last poll (a cancelled task, a timeout around the run).
async fn within_polls<F: std::future::Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = Box::pin(future);
    let mut seen = 0;
    std::future::poll_fn(|cx| {
        seen += 1;
        match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
            std::task::Poll::Pending if seen >= polls => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

/// The catalog of a database, to compare schemas.
fn catalog_of(url: &str) -> migrate::catalog::Catalog {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    Migrator::new(&CANCEL).catalog(&mut client).unwrap()
}

/// The async run dropped after its k-th poll, for every k of a full run (transactional
/// migrations, a group, a no-transaction one with concurrent indexes), on a borrowed client and
/// on `run_url_async`. After each drop: no advisory lock, no idle transaction; the borrowed
/// client usable, outside any transaction, with its own settings; and a run to the end leaves
/// the schema a clean run builds.
#[test]
fn dropping_the_run_at_every_await_point_keeps_every_promise() {
    let runtime = common::driver::runtime();
    // What a clean run builds: a test database the migrations ran into.
    let reference =
        migrate::testing::TestDatabase::create_on(&CANCEL, &pg_harness::server_url()).unwrap();
    let expected = catalog_of(reference.url());
    for borrowed in [true, false] {
        let mut finished_at = None;
        for polls in 1..400 {
            let db = test_database();
            let outcome = runtime.block_on(async {
                let mut client = common::driver::connect_tokio(db.url()).await;
                client
                    .batch_execute("SET lock_timeout = '4321ms'; SET statement_timeout = '98765ms'")
                    .await
                    .unwrap();
                let migrator = Migrator::new(&CANCEL);
                let finished = if borrowed {
                    within_polls(migrator.run_async(&mut client), polls).await
                } else {
                    within_polls(migrator.run_url_async(db.url()), polls).await
                };
                if let Some(result) = &finished {
                    assert!(result.is_ok(), "{result:?}");
                }
                // Whatever the dropped run queued on the connection runs before these.
                let probe = client.batch_execute("SAVEPOINT probe").await.unwrap_err();
                assert_eq!(probe.code().map(|c| c.code()), Some("25P01"), "after {polls} poll(s): {probe}");
                let settings = client
                    .simple_query("SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')")
                    .await
                    .unwrap();
                assert_eq!(common::first_column(&settings), ["4321ms 98765ms"], "after {polls} poll(s)");
                finished.is_some()
            });
            assert_eq!(advisory_locks(&db), "0", "after {polls} poll(s)");
            let idle = common::values(
                &mut db.client(),
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            );
            assert_eq!(idle, ["0"], "after {polls} poll(s)");
            let report = Migrator::new(&CANCEL).run_url(db.url()).unwrap();
            assert!(report.status.is_up_to_date());
            let differences = migrate::catalog::diff(&expected, &catalog_of(db.url()));
            assert!(
                differences.is_empty(),
                "after {polls} poll(s): {differences:?}"
            );
            if outcome {
                finished_at = Some(polls);
                break;
            }
        }
        let polls = finished_at.expect("the run finishes within 400 polls");
        println!(
            "borrowed: {borrowed}: dropped after each of 1..{polls} polls, then ran to its end"
        );
    }
}

on_both_drivers! {
    /// An unnamed `CREATE INDEX CONCURRENTLY` retried after lock timeouts leaves exactly one
    /// index: the INVALID ones its failed attempts left are found by definition and dropped.
    fn a_retried_unnamed_concurrent_index_leaves_exactly_one_index(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&migrations(&UNNAMED_INDEX.as_slice()[..1]))
            .run_on(&mut client)
            .unwrap();
        // A writer holds ROW EXCLUSIVE on t for 2 s: the build waits for it and times out.
        let (held, is_held) = std::sync::mpsc::channel();
        let url = db.url().to_owned();
        let writer = std::thread::spawn(move || {
            let mut writer = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            writer.batch_execute("BEGIN; INSERT INTO t (c) VALUES (1)").unwrap();
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(2));
            writer.batch_execute("COMMIT").unwrap();
        });
        is_held.recv().unwrap();
        let report = Migrator::new(&UNNAMED_INDEX)
            .lock_timeout(Duration::from_millis(300))
            .run_on(&mut client)
            .unwrap();
        writer.join().unwrap();
        assert_eq!(common::applied(&report), ["0002"]);
        assert_eq!(
            client.values("SELECT indexrelid::regclass::text || ' ' || indisvalid FROM pg_index WHERE indrelid = 't'::regclass AND NOT indisprimary"),
            ["t_c_idx true"],
            "one index, named as a clean build names it"
        );
    }
}

/// `sslmode=require` in a key=value connection string is honoured: against a server without
/// TLS the connection is refused, never made in plain text.
#[test]
fn sslmode_require_in_key_value_form_refuses_a_server_without_tls() {
    let db = test_database();
    let url = url::Url::parse(db.url()).unwrap();
    let pairs = format!(
        "host={} port={} user={} dbname={} sslmode=require connect_timeout=3",
        url.host_str().unwrap(),
        url.port().unwrap(),
        url.username(),
        db.name()
    );
    let err = Migrator::new(&BASIC)
        .wait_budget(Duration::from_secs(1))
        .run_url(&pairs)
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("sslmode='require'"), "{err}");
    let plain = format!("{pairs} sslmode=disable");
    assert!(Migrator::new(&BASIC).run_url(&plain).is_ok());
}

/// A password never reaches an output, whatever form carries it: the userinfo, a `password`
/// URL parameter, a key=value pair; in the connect error, the invalid-URL error and the log.
#[test]
fn no_password_in_any_output_whatever_its_form() {
    let port = pg_harness::free_port();
    for url in [
        format!("postgres://app:s3cret@127.0.0.1:{port}/app"),
        format!("postgres://app@127.0.0.1:{port}/app?password=s3cret"),
        format!("host=127.0.0.1 port={port} user=app password=s3cret dbname=app"),
        format!("host=127.0.0.1 port={port} user=app password='s3 cret' dbname=app"),
        "postgres://app:s3cret@127.0.0.1:notaport/app?password=s3cret".to_owned(),
        format!("host=127.0.0.1 port={port} password=s3cret sslmode=sometimes"),
    ] {
        let out = common::run_host(&url, "basic", &[("MIGRATE_WAIT_BUDGET", "1s")]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{url}: {all}");
        assert!(
            !all.contains("s3cret") && !all.contains("s3 cret"),
            "{url}: {all}"
        );
        if !url.contains("notaport") {
            assert!(
                all.contains("127.0.0.1"),
                "{url}: the target is still named: {all}"
            );
        }
    }
}

/// A loopback TCP proxy in front of the test server that counts the client's turns: how many
/// times the client sends after the server has answered, which is the number of round trips.
struct TurnCounter {
    port: u16,
    turns: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TurnCounter {
    fn start(server_port: u16) -> TurnCounter {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let turns = Arc::new(AtomicUsize::new(0));
        let counted = turns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", server_port)) else {
                    return;
                };
                // Whether the last bytes went from the server to the client.
                let server_spoke = Arc::new(Mutex::new(AtomicBool::new(true)));
                let pump = |mut from: std::net::TcpStream,
                            mut to: std::net::TcpStream,
                            from_client: bool| {
                    let server_spoke = server_spoke.clone();
                    let counted = counted.clone();
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 65536];
                        while let Ok(n) = from.read(&mut buffer) {
                            if n == 0 {
                                break;
                            }
                            {
                                let spoke = server_spoke.lock().unwrap();
                                if from_client && spoke.swap(false, Ordering::SeqCst) {
                                    counted.fetch_add(1, Ordering::SeqCst);
                                } else if !from_client {
                                    spoke.store(true, Ordering::SeqCst);
                                }
                            }
                            if to.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pump(server, client, false);
            }
        });
        TurnCounter { port, turns }
    }

    /// The round trips `run` makes against a fresh database through the proxy.
    fn count(&self, run: impl FnOnce(&str)) -> usize {
        let db = test_database();
        let url = url::Url::parse(db.url()).unwrap();
        let through = format!(
            "postgres://{}@127.0.0.1:{}/{}?sslmode=disable",
            url.username(),
            self.port,
            db.name()
        );
        self.turns.store(0, std::sync::atomic::Ordering::SeqCst);
        run(&through);
        // The closing Terminate of a dropped connection may still be on its way.
        std::thread::sleep(Duration::from_millis(200));
        self.turns.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `migrate::startup` takes the pipelined path `Migrator::run_url` takes: a migration's guard,
/// statements, history row and COMMIT in one round trip, not one round trip each.
#[test]
fn startup_sends_each_migration_in_one_round_trip_as_run_url_does() {
    let server_port = url::Url::parse(test_database().url())
        .unwrap()
        .port()
        .unwrap();
    let proxy = TurnCounter::start(server_port);
    let run_url = proxy.count(|url| {
        let _ = Migrator::new(&BASIC).group_limit(1).run_url(url).unwrap();
    });
    let startup = proxy.count(|url| {
        let settings = migrate::Settings {
            group_limit: 1,
            ..migrate::Settings::default()
        };
        let config = migrate::EnvConfig {
            skip: false,
            url: Some(url.to_owned()),
            url_source: "DATABASE_URL",
            settings,
        };
        assert!(migrate::startup_with(&BASIC, &config).is_ready());
    });
    assert!(run_url > 0);
    assert_eq!(
        startup, run_url,
        "round trips of startup_with and of run_url for the same 3 migrations"
    );
}
