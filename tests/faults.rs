//! The fault matrix: each scenario is a fault meeting a migration, on real servers (PostgreSQL
//! from the harness, PgBouncer 1.18 from Debian), bounded in time, and asserts the database
//! afterwards. Client SIGKILL mid transaction and mid CREATE INDEX CONCURRENTLY are in
//! `tests/runtime.rs`.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Driver, OnDriver, advisory_locks, history, on_both_drivers, stdout, values};
use migrate::Migrator;
use pg_harness::{Cluster, Pgbouncer, shared_cluster, test_database};

static SLOW: migrate::Migrations = migrate::embed_migrations!("tests/migrations/slow");
static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");
static VALIDATE_DEFAULT: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/validate_default");
static VALIDATE_LONG: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/validate_long");
static VALIDATE_SHORT: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/validate_short");

/// Starts `count` copies of the host binary at once and returns their outputs.
fn replicas(driver: Driver, count: usize, url: &str, env: &[(&str, &str)]) -> Vec<Output> {
    let children: Vec<_> = (0..count)
        .map(|_| driver.host(url, "basic", env).spawn().unwrap())
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

on_both_drivers! {
    fn thirty_two_replicas_direct_apply_each_revision_once(driver) {
        let db = test_database();
        let outputs = replicas(driver, 32, db.url(), &[]);
        assert_eq!(common::applied_by_all(&outputs), ["0001", "0002", "0003"]);
        assert_eq!(history(&db), ["0001", "0002", "0003"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn eight_replicas_through_pgbouncer_transaction_mode_pool_2(driver) {
        let db = test_database();
        let bouncer = Pgbouncer::start(shared_cluster(), "transaction", 2);
        let outputs = replicas(driver, 8,
            &bouncer.url(db.name()),
            &[("MIGRATE_POOLER", "transaction")],
        );
        assert_eq!(common::applied_by_all(&outputs), ["0001", "0002", "0003"]);
        assert_eq!(history(&db), ["0001", "0002", "0003"]);
        assert_eq!(advisory_locks(&db), "0");
        for out in &outputs {
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(!log.contains("prepared statement"), "{log}");
        }
        assert!(!bouncer.log().contains("prepared statement"));
        eprintln!("BOUNCERLOG {}", bouncer.log().lines().filter(|l| l.contains("closing because")).collect::<Vec<_>>().join("\nBOUNCERLOG "));
    }
}

on_both_drivers! {
    fn through_a_transaction_pooler_nothing_leaks_and_no_transaction_is_refused(driver) {
        let db = test_database();
        let bouncer = Pgbouncer::start(shared_cluster(), "transaction", 1);
        let pooled = bouncer.url(db.name());
        let out = driver.run_host(
            &pooled,
            "index",
            &[
                ("MIGRATE_POOLER", "transaction"),
                ("MIGRATE_LOCK_TIMEOUT", "750ms"),
            ],
        );
        assert_eq!(stdout(&out), "failed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.ends_with("migration 0005 (tests/migrations/index/0005_index.sql) is marked no-transaction and needs a session lock, which a transaction-mode pooler cannot hold\n  help: set MIGRATION_DATABASE_URL to a direct connection to the server (not through the pooler); migrations use it, the service keeps using DATABASE_URL\n"),
            "{stderr}"
        );
        assert_eq!(
            history(&db),
            ["0001", "0002", "0003", "0004"],
            "the transactional ones applied once"
        );

        // The next client on the same single server connection sees the server's defaults: the
        // runner's SET LOCAL ended with each transaction.
        let mut next = postgres::Client::connect(&pooled, postgres::NoTls).unwrap();
        let settings = values(
            &mut next,
            "SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')",
        );
        assert_eq!(settings, ["0 0"]);
        drop(next);

        // With the direct connection for migrations, the service's pooled URL can stay as it is.
        let direct = db.url().to_owned();
        let out = driver.run_host(
            &pooled,
            "index",
            &[
                ("MIGRATE_POOLER", "transaction"),
                ("MIGRATION_DATABASE_URL", &direct),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004", "0005"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn the_whole_server_restarting_mid_migration_is_survived(driver) {
        let mut cluster = Cluster::start();
        let db = cluster.create_database();
        let url = db.url().to_owned();
        let runner = std::thread::spawn(move || {
            Migrator::new(&SLOW)
                .wait_budget(Duration::from_secs(60))
                .run_url_on(driver, &url)
        });
        let mut watcher = db.client();
        common::wait_until(
            Duration::from_secs(30),
            "the migration never reached pg_sleep",
            || {
                values(
                    &mut watcher,
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%' AND datname = current_database()",
                ) == ["1"]
            },
        );
        drop(watcher);
        cluster.stop();
        std::thread::sleep(Duration::from_secs(1));
        cluster.restart();
        let report = runner
            .join()
            .unwrap()
            .expect("the runner reconnects and completes");
        assert_eq!(report.status.pending.len(), 0);
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004"]);
        assert_eq!(
            values(&mut db.client(), "SELECT count(*) FROM audit"),
            ["1"],
            "nothing half-applied, nothing twice"
        );
    }
}

on_both_drivers! {
    fn an_unreachable_database_fails_clearly_within_the_budget(driver) {
        // Nothing listens on this port: connection refused, retried until the budget is spent.
        let port = pg_harness::free_port();
        let started = Instant::now();
        let err = Migrator::new(&BASIC)
            .wait_budget(Duration::from_secs(2))
            .run_url_on(driver, &format!(
                "postgres://app:hunter2-secret@127.0.0.1:{port}/app"
            ))
            .unwrap_err();
        let took = started.elapsed();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot connect to postgres://app@127.0.0.1:{port}/app (tried for "
            )),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
            "took {took:?}"
        );

        // A listener that accepts TCP but never answers, like a blackholed address: each attempt
        // ends at the connect timeout, and the budget ends the retries.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let err = Migrator::new(&BASIC)
            .wait_budget(Duration::from_secs(3))
            .run_url_on(driver, &format!(
                "postgres://app:hunter2-secret@127.0.0.1:{port}/app?connect_timeout=1"
            ))
            .unwrap_err();
        let took = started.elapsed();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot connect to postgres://app@127.0.0.1:{port}/app?connect_timeout=1 (tried for "
            )),
            "{text}"
        );
        assert!(
            text.to_lowercase().contains("timeout") || text.to_lowercase().contains("timed out"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains(
                "timed out after 1.0s waiting for the server to complete the login (connect_timeout)"
            ),
            "{text}"
        );
        assert!(
            took >= Duration::from_secs(3) && took < Duration::from_secs(10),
            "took {took:?}"
        );
        drop(silent);
    }
}

on_both_drivers! {
    fn a_role_statement_timeout_does_not_kill_a_long_validation(driver) {
        for (set, expect_ok) in [
            (&VALIDATE_DEFAULT, true),
            (&VALIDATE_LONG, true),
            (&VALIDATE_SHORT, false),
        ] {
            let db = test_database();
            let mut admin = db.client();
            admin
                .batch_execute(&format!(
                    "ALTER ROLE postgres IN DATABASE \"{}\" SET statement_timeout = '1s'",
                    db.name()
                ))
                .unwrap();
            let mut client = driver.connect(db.url());
            assert_eq!(
                client.values("SHOW statement_timeout"),
                ["1s"],
                "the role's default is in force"
            );
            let started = Instant::now();
            let result = Migrator::new(set).run_on(&mut client);
            let took = started.elapsed();
            if expect_ok {
                let report = result.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(report.applied.len(), 4);
                assert!(
                    took >= Duration::from_secs(2),
                    "the validation really took long: {took:?}"
                );
            } else {
                let err = result.unwrap_err();
                assert_eq!(err.sqlstate(), Some("57014"), "{err}");
                assert!(err.to_string().starts_with("migration 0004 failed at tests/migrations/validate_short/0004_validate.sql:5: SQLSTATE 57014: canceling statement due to statement timeout"), "{err}");
                assert_eq!(history(&db), ["0001", "0002", "0003"]);
            }
        }
    }
}

on_both_drivers! {
    fn a_hung_lock_holder_is_named_when_the_budget_runs_out(driver) {
        let db = test_database();
        let migrator = Migrator::new(&BASIC).wait_budget(Duration::from_secs(2));
        let key = migrator.lock_key();
        let mut stuck = postgres::Client::connect(
            &format!("{}?application_name=stuck-deployer", db.url()),
            postgres::NoTls,
        )
        .unwrap();
        let pid = values(&mut stuck, "SELECT pg_backend_pid()::text").remove(0);
        stuck
            .batch_execute(&format!("SELECT pg_advisory_lock({key})"))
            .unwrap();
        let started = Instant::now();
        let err = migrator.run_url_on(driver, db.url()).unwrap_err();
        let took = started.elapsed();
        let text = err.to_string();
        assert!(text.starts_with("gave up after "), "{text}");
        assert!(text.contains(&format!("another process holds the migration lock (held by pid {pid} (application_name 'stuck-deployer', state idle, since ")), "{text}");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
            "took {took:?}"
        );
        assert_eq!(
            values(
                &mut db.client(),
                "SELECT to_regclass('migrate_history') IS NULL"
            ),
            ["t"],
            "nothing was touched"
        );
    }
}

on_both_drivers! {
    fn a_frozen_client_mid_migration_loses_its_locks_within_the_idle_timeout(driver) {
        let db = test_database();
        let mut child = driver.host(db.url(), "slow", &[("MIGRATE_IDLE_TIMEOUT", "2s")])
            .spawn()
            .unwrap();
        let mut watcher = db.client();
        // 0004 holds ACCESS EXCLUSIVE on the new table `audit` and the migration lock during its
        // pg_sleep(3); the client is frozen right there.
        common::wait_until(Duration::from_secs(60), "0004 never started", || {
            values(
                &mut watcher,
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%' AND datname = current_database())",
            ) == ["t"]
        });
        let stop = std::process::Command::new("kill")
            .args(["-STOP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(stop.success());
        let frozen = Instant::now();
        // The sleep ends (at most 3 s), the backend waits idle in transaction for the frozen
        // client, and the server ends it after 2 s: the locks go with it.
        let locks = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'migrate' AND a.datname = current_database() AND (l.locktype = 'advisory' OR l.relation = to_regclass('audit'))";
        while values(&mut watcher, locks) != ["0"] {
            assert!(
                frozen.elapsed() < Duration::from_secs(15),
                "the frozen client's locks are still held after {:?}: {:?}",
                frozen.elapsed(),
                values(
                    &mut watcher,
                    "SELECT string_agg(a.pid || ' ' || a.state || ' ' || l.locktype || ' ' || l.mode || ' ' || a.query || ' ' || current_setting('idle_in_transaction_session_timeout'), '; ') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'migrate'"
                )
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let released_after = frozen.elapsed();
        assert!(
            released_after < Duration::from_secs(3 + 2 + 3),
            "released after {released_after:?}"
        );
        // A second replica completes the migration.
        let out = driver.run_host(db.url(), "slow", &[("MIGRATE_WAIT_BUDGET", "20s")]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004"]);
        assert_eq!(values(&mut watcher, "SELECT count(*) FROM audit"), ["1"]);
    }
}
