//! The runtime's failure paths on a real PostgreSQL: retries in no-transaction migrations, a
//! refused statement re-run on the next start, an interrupted migration whose file changed, a
//! failed history insert, client-side errors, calls from async code, settings at their limits,
//! `stamp` under contention and the isolation level of migration transactions.

use std::time::{Duration, Instant};

use migrate::__private::{MigrationParts, migration, migrations};
use migrate::{Migrator, Statement};
mod common;

use common::{
    Driver, DriverClient, OnDriver, advisory_locks, capture_logs, history, hold_lock, logged,
    on_both_drivers, values,
};
use pg_harness::test_database;

static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");
static SETTINGS: migrate::Migrations = migrate::embed_migrations!("tests/migrations/settings");
static INTERRUPTED: migrate::Migrations =
    migrate::embed_migrations!("tests/migrations/interrupted");

/// The first `n` migrations of a set.
fn first(set: &'static migrate::Migrations, n: usize) -> migrate::Migrations {
    migrations(&set.as_slice()[..n])
}

fn state_of(client: &mut DriverClient, revision: &str) -> Vec<String> {
    client.values(
        &format!(
            "SELECT state || ' ' || statements_done || ' ' || coalesce(failed_statement::text, '-') FROM migrate_history WHERE revision = '{revision}'"
        ),
    )
}

/// A database with `INTERRUPTED`'s first migration applied: the table `users`, before 0002.
fn users_table_only(driver: Driver) -> (pg_harness::TestDatabase, DriverClient) {
    let db = test_database();
    let mut client = driver.connect(db.url());
    let _ = Migrator::new(&first(&INTERRUPTED, 1))
        .run_on(&mut client)
        .unwrap();
    (db, client)
}

fn nickname_indexes(client: &mut DriverClient) -> Vec<String> {
    client.values("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_nickname_idx'")
}

on_both_drivers! {
    fn a_lock_timeout_in_a_no_transaction_migration_is_retried_and_applied(driver) {
        capture_logs();
        let (db, mut client) = users_table_only(driver);
        // Live traffic reads users for 3 s; 0002's ALTER TABLE needs ACCESS EXCLUSIVE on it.
        let holder = hold_lock(db.url(), "users", Duration::from_secs(3));
        let started = Instant::now();
        let report = Migrator::new(&INTERRUPTED)
            .lock_timeout(Duration::from_millis(300))
            .run_on(&mut client)
            .unwrap();
        let took = started.elapsed();
        holder.join().unwrap();
        assert_eq!(
            common::applied(&report),
            ["0002"]
        );
        assert!(took >= Duration::from_millis(2500), "it waited: {took:?}");
        let retries = logged(
            "migration 0002 at tests/migrations/interrupted/0002_nickname.sql:5: SQLSTATE 55P03: canceling statement due to lock timeout; rolled back, retrying",
        );
        assert!(!retries.is_empty(), "the lock timeout is logged as a retry");
        assert_eq!(state_of(&mut client, "0002"), ["applied 2 -"]);
        assert_eq!(nickname_indexes(&mut client), ["1"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn a_statement_the_server_refused_is_run_again_on_the_next_start(driver) {
        let (db, mut client) = users_table_only(driver);
        // Someone added the column by hand: 0002's first statement fails with 42701.
        client
            .batch_execute("ALTER TABLE users ADD COLUMN nickname text")
            .unwrap();
        let err = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap_err();
        assert_eq!(err.sqlstate(), Some("42701"), "{err}");
        assert_eq!(
            state_of(&mut client, "0002"),
            ["running 0 1"],
            "the row records that statement 1 failed"
        );
        // The operator undoes the manual change; the next start runs the statement again without
        // asking for proof, because the server said it had failed.
        client
            .batch_execute("ALTER TABLE users DROP COLUMN nickname")
            .unwrap();
        let report = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap();
        assert_eq!(report.applied.len(), 1);
        assert_eq!(state_of(&mut client, "0002"), ["applied 2 -"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn an_interrupted_migration_whose_file_changed_does_not_resume(driver) {
        let (db, mut client) = users_table_only(driver);
        client
            .batch_execute("ALTER TABLE users ADD COLUMN nickname text; INSERT INTO migrate_history (revision, parents, checksum, state, statements_done, applied_by) VALUES ('0002', '0001', 'e3b0c44298fc', 'running', 1, 'an older build')")
            .unwrap();
        let err = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap_err();
        let checksum = INTERRUPTED.as_slice()[1].checksum();
        assert_eq!(
            err.to_string(),
            format!(
                "no-transaction migration 0002 (tests/migrations/interrupted/0002_nickname.sql) was interrupted after 1 statement(s) and its file changed since it started: checksum e3b0c44298fc when it started, {checksum} now\n  help: deploy a build with the file as it was when it started so that it can finish, and put the change in a new migration"
            )
        );
        assert!(matches!(err, migrate::Error::EditedWhileInterrupted { .. }));
        assert_eq!(
            nickname_indexes(&mut client),
            ["0"],
            "nothing more of it ran"
        );
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn a_failed_history_insert_rolls_back_and_hands_the_client_back_usable(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&first(&BASIC, 2)).run_on(&mut client).unwrap();
        // The INSERT of 0003's row fails, in the same round trip as its COMMIT.
        client
            .batch_execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'history is read-only today'; END $$;
                 CREATE TRIGGER refuse BEFORE INSERT ON migrate_history FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            .unwrap();
        let err = Migrator::new(&BASIC).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "recording the migration and COMMIT failed: SQLSTATE P0001: history is read-only today"
        );
        // Not inside a transaction, let alone an aborted one: a plain statement works and commits.
        assert_eq!(
            client.values("SELECT txid_current_if_assigned() IS NULL"),
            ["t"]
        );
        client.batch_execute("CREATE TABLE probe (id int)").unwrap();
        let mut other = db.client();
        assert_eq!(
            values(&mut other, "SELECT to_regclass('probe') IS NOT NULL"),
            ["t"],
            "the client's statement committed on its own"
        );
        assert_eq!(
            values(
                &mut other,
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'name'"
            ),
            ["0"],
            "0003 was rolled back with its row"
        );
        assert_eq!(history(&db), ["0001", "0002"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

static NUL_STATEMENTS: [Statement; 1] = [Statement {
    start: 0,
    end: 22,
    line: 1,
    column: 1,
    concurrent_index: None,
    concurrent_table: None,
    rerunnable: false,
}];
static NUL_LIST: [migrate::Migration; 1] = [migration(MigrationParts {
    revision: "0001",
    parents: &[],
    message: None,
    no_transaction: false,
    lock_timeout: None,
    statement_timeout: None,
    path: "built/0001_nul.sql",
    sql: "SELECT 'a\0b' AS broken",
    statements: &NUL_STATEMENTS,
    checksum: "0",
    self_contained: false,
    replaces: &[],
})];
static NUL: migrate::Migrations = migrations(&NUL_LIST);

on_both_drivers! {
    fn a_client_side_error_is_fatal_at_once_not_a_reconnect_loop(driver) {
        let db = test_database();
        let started = Instant::now();
        let err = Migrator::new(&NUL)
            .wait_budget(Duration::from_secs(30))
            .run_url_on(driver, db.url())
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no reconnect loop: {:?}",
            started.elapsed()
        );
        assert!(
            matches!(err, migrate::Error::Migration { ref revision, .. } if revision == "0001"),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(
                "migration 0001 failed at built/0001_nul.sql:1: error encoding message to server: "
            ),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
        // The statement never left the client: nothing sent after it may commit the
        // migration's row without it.
        assert_eq!(history(&db), Vec::<String>::new(), "no history row");
        assert_eq!(advisory_locks(&db), "0");
    }
}

#[test]
fn the_sync_api_works_when_called_from_async_code() {
    let db = test_database();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let url = db.url().to_owned();
    let report = runtime
        .block_on(async move { Migrator::new(&BASIC).run_url(&url) })
        .unwrap();
    assert_eq!(report.applied.len(), 3);
    // On an executor thread, inside a task. The client goes back out with the answer: the
    // `postgres` driver cannot even be dropped inside a runtime.
    let mut client = db.client();
    let task = runtime.spawn(async move { (Migrator::new(&BASIC).status(&mut client), client) });
    let (status, client) = runtime.block_on(task).unwrap();
    drop(client);
    assert!(status.unwrap().is_up_to_date());
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = db.client();
    let stamped = current
        .block_on(async { Migrator::new(&BASIC).stamp(&mut client, "0003") })
        .unwrap();
    assert!(stamped.is_empty());
}

on_both_drivers! {
    fn settings_at_their_limits_saturate(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let report = Migrator::new(&SETTINGS)
            .wait_budget(Duration::MAX)
            .lock_timeout(Duration::MAX)
            .statement_timeout(Some(Duration::MAX))
            .idle_timeout(Duration::MAX)
            .run_on(&mut client)
            .unwrap();
        assert_eq!(report.applied.len(), 4);
        assert_eq!(
            client.values("SELECT lock_timeout || ' ' || statement_timeout FROM settings_seen ORDER BY 1"
            ),
            ["2147483647ms 2147483647ms", "750ms 4s"]
        );
    }
}

on_both_drivers! {
    fn stamp_waits_for_the_migration_lock_within_the_budget(driver) {
        let db = test_database();
        let mut holder = db.client();
        let key = Migrator::new(&BASIC).lock_key();
        holder
            .batch_execute(&format!("SELECT pg_advisory_lock({key})"))
            .unwrap();
        let mut client = driver.connect(db.url());
        let started = Instant::now();
        let err = Migrator::new(&BASIC)
            .wait_budget(Duration::from_millis(600))
            .stamp_on(&mut client, "0002")
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(600));
        let text = err.to_string();
        assert!(
            text.starts_with("gave up after 0.6s (the wait budget): another process holds the migration lock (held by pid "),
            "{text}"
        );
        // Released within the budget: stamp goes ahead.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            holder
                .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
                .unwrap();
        });
        let stamped = Migrator::new(&BASIC)
            .wait_budget(Duration::from_secs(20))
            .stamp_on(&mut client, "0002")
            .unwrap();
        release.join().unwrap();
        assert_eq!(stamped, ["0001", "0002"]);
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn migrations_run_read_committed_whatever_the_server_default(driver) {
        let db = test_database();
        let mut admin = db.client();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'serializable'",
                db.name()
            ))
            .unwrap();
        let mut client = driver.connect(db.url());
        assert_eq!(
            client.values("SHOW default_transaction_isolation"),
            ["serializable"]
        );
        let _ = Migrator::new(&SETTINGS).run_on(&mut client).unwrap();
        assert_eq!(
            client.values("SELECT level FROM isolation_seen"),
            ["read committed"]
        );
    }
}

on_both_drivers! {
    fn an_interrupted_if_not_exists_statement_is_run_again_by_the_runner(driver) {
        static RERUNNABLE: migrate::Migrations =
            migrate::embed_migrations!("tests/migrations/rerunnable");
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&first(&RERUNNABLE, 1))
            .run_on(&mut client)
            .unwrap();
        // A crash right after the ALTER took effect, before its progress was recorded.
        client
            .batch_execute(&format!(
                "ALTER TABLE users ADD COLUMN nickname text; INSERT INTO migrate_history (revision, parents, checksum, state, statements_done, applied_by) VALUES ('0002', '0001', '{}', 'running', 0, 'crashed')",
                RERUNNABLE.as_slice()[1].checksum()
            ))
            .unwrap();
        let report = Migrator::new(&RERUNNABLE).run_on(&mut client).unwrap();
        assert_eq!(report.applied.len(), 1);
        assert_eq!(state_of(&mut client, "0002"), ["applied 2 -"]);
        assert_eq!(
            client.values("SELECT to_regclass('tags') IS NOT NULL"),
            ["t"]
        );
    }
}
