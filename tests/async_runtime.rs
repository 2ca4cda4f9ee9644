//! What only the async runtime has: a future dropped in the middle of a migration (a cancelled
//! task, a timeout around it), and clients handed out by a deadpool-postgres pool. Every other
//! runtime and fault test runs on both drivers (`on_both_drivers!`).

use std::time::{Duration, Instant};

use migrate::Migrator;
mod common;

use common::driver::{connect_tokio as connect, runtime};
use common::{advisory_locks, history, values};
use pg_harness::{TestDatabase, test_database};

static SLOW: migrate::Migrations = migrate::embed_migrations!("tests/migrations/slow");
static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");

/// Resolves once 0004 of `SLOW` ran its first statement (`CREATE TABLE audit`) and sleeps in
/// its second, in the database at `url` (the other tests of this file share the server).
async fn in_the_second_statement_of_0004(url: &str) {
    let watcher = connect(url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = watcher
            .simple_query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%' AND datname = current_database()",
            )
            .await
            .unwrap();
        if common::first_column(&rows) == ["1"] {
            return;
        }
        assert!(Instant::now() < deadline, "0004 never reached its sleep");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state of backend `pid` once it is no longer running the dropped migration's statement.
fn settled_state(db: &TestDatabase, pid: &str) -> String {
    let mut admin = db.client();
    common::settle(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            values(
                &mut admin,
                &format!("SELECT coalesce(state, 'gone') FROM pg_stat_activity WHERE pid = {pid} UNION ALL SELECT 'gone' LIMIT 1"),
            )
            .remove(0)
        },
        |state| state != "active",
    )
}

/// Nothing of the dropped migration is left: no table, no history row, no lock.
fn nothing_of_0004_is_left(db: &TestDatabase) {
    assert_eq!(advisory_locks(db), "0", "the migration lock is released");
    assert_eq!(history(db), ["0001", "0002", "0003"], "no history row");
    assert_eq!(
        values(&mut db.client(), "SELECT to_regclass('audit') IS NULL"),
        ["t"],
        "the first statement's table was rolled back"
    );
}

#[test]
fn dropping_the_future_after_the_first_statement_leaves_nothing_and_the_client_usable() {
    let db = test_database();
    let runtime = runtime();
    let migrator = Migrator::new(&SLOW);
    let (mut client, pid) = runtime.block_on(async {
        let mut client = connect(db.url()).await;
        let first_three = migrate::__private::migrations(&SLOW.as_slice()[..3]);
        let _ = Migrator::new(&first_three)
            .run_async(&mut client)
            .await
            .unwrap();
        let pid = common::first_column(
            &client
                .simple_query("SELECT pg_backend_pid()")
                .await
                .unwrap(),
        )
        .remove(0);
        tokio::select! {
            result = migrator.run_async(&mut client) => {
                panic!("the migration was meant to be dropped, it ended: {result:?}")
            }
            () = in_the_second_statement_of_0004(db.url()) => {}
        }
        (client, pid)
    });
    // The future is gone; the statement the server was running ends on its own, then the
    // ROLLBACK queued by the dropped guard runs.
    assert_eq!(
        settled_state(&db, &pid),
        "idle",
        "the borrowed client is outside any transaction"
    );
    nothing_of_0004_is_left(&db);

    // The same client works, and commits on its own; the next run completes.
    let report = runtime.block_on(async {
        client
            .batch_execute("CREATE TABLE probe (id int)")
            .await
            .unwrap();
        migrator.run_async(&mut client).await.unwrap()
    });
    assert_eq!(
        values(&mut db.client(), "SELECT to_regclass('probe') IS NOT NULL"),
        ["t"]
    );
    assert_eq!(common::applied(&report), ["0004"]);
    assert_eq!(
        values(&mut db.client(), "SELECT count(*) FROM audit"),
        ["1"]
    );
}

#[test]
fn dropping_a_run_url_future_mid_migration_closes_its_connection_and_keeps_nothing() {
    let db = test_database();
    let first_three = migrate::__private::migrations(&SLOW.as_slice()[..3]);
    let _ = Migrator::new(&first_three).run_url(db.url()).unwrap();
    let runtime = runtime();
    let url = db.url().to_owned();
    let migrator = Migrator::new(&SLOW);
    runtime.block_on(async {
        tokio::select! {
            result = migrator.run_url_async(&url) => {
                panic!("the migration was meant to be dropped, it ended: {result:?}")
            }
            () = in_the_second_statement_of_0004(&url) => {}
        }
    });
    nothing_of_0004_is_left(&db);
    let mut admin = db.client();
    common::wait_until(
        Duration::from_secs(5),
        "the runner's own connection outlived the future",
        || {
            values(
                &mut admin,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'migrate' AND datname = current_database()",
            ) == ["0"]
        },
    );
    let report = runtime
        .block_on(Migrator::new(&SLOW).run_url_async(&url))
        .unwrap();
    assert_eq!(report.applied.len(), 1, "the next run completes");
}

#[test]
fn a_client_from_a_deadpool_pool_applies_the_migrations() {
    use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
    let db = test_database();
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager).max_size(2).build().unwrap();
    runtime().block_on(async {
        let mut pooled = pool.get().await.unwrap();
        let report = Migrator::new(&BASIC).run_async(&mut pooled).await.unwrap();
        assert_eq!(report.applied.len(), 3);
        let status = Migrator::new(&BASIC)
            .status_async(&mut pooled)
            .await
            .unwrap();
        assert!(status.is_up_to_date());
        // Back in the pool, the connection serves the application outside any transaction.
        drop(pooled);
        let next = pool.get().await.unwrap();
        let rows = next
            .simple_query("SELECT count(*) FROM users")
            .await
            .unwrap();
        assert_eq!(common::first_column(&rows), ["0"]);
    });
    assert_eq!(history(&db), ["0001", "0002", "0003"]);
    assert_eq!(advisory_locks(&db), "0");
}

static FAILING: migrate::Migrations = migrate::embed_migrations!("tests/migrations/failing");

/// The async fleet: every tenant schema migrated on the caller's runtime, one history each,
/// status per tenant; a canary that fails leaves the others unattempted.
#[test]
fn a_fleet_of_schemas_migrates_on_tokio_and_a_failing_canary_stops_it() {
    let db = test_database();
    let tenants: Vec<String> = (1..=6).map(|i| format!("locataire_{i}")).collect();
    let mut admin = db.client();
    for tenant in &tenants {
        admin
            .batch_execute(&format!("CREATE SCHEMA {tenant}"))
            .unwrap();
    }
    let targets = migrate::fleet::Targets::Schemas(tenants.clone());
    let options = migrate::fleet::FleetOptions {
        jobs: 3,
        ..Default::default()
    };
    runtime().block_on(async {
        let report = Migrator::new(&BASIC)
            .run_each_async(db.url(), &targets, options)
            .await;
        assert!(report.failed().is_empty(), "{report:?}");
        for (target, tenant) in report.targets.iter().zip(&tenants) {
            assert_eq!(&target.target, tenant);
            assert!(
                matches!(&target.outcome, migrate::fleet::TargetOutcome::Applied(r) if r == &["0001", "0002", "0003"]),
                "{target:?}"
            );
        }
        let statuses = Migrator::new(&BASIC)
            .status_each_async(db.url(), &targets, 2)
            .await;
        assert_eq!(statuses.len(), 6);
        for (_, status) in &statuses {
            let status = status.as_ref().unwrap();
            assert_eq!((status.applied.len(), status.pending.len()), (3, 0));
        }
    });
    // Each tenant's tables and history in its own schema; nothing in public.
    assert_eq!(
        values(
            &mut admin,
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_name IN ('users', 'posts', 'migrate_history') ORDER BY 1"
        )
        .len(),
        18
    );
    assert_eq!(
        values(
            &mut admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        ["0"]
    );

    // A migration failing everywhere: the 2 canaries are attempted, the 4 others are not.
    let fresh: Vec<String> = (1..=6).map(|i| format!("nouveau_{i}")).collect();
    for tenant in &fresh {
        admin
            .batch_execute(&format!("CREATE SCHEMA {tenant}"))
            .unwrap();
    }
    let report = runtime().block_on(Migrator::new(&FAILING).run_each_async(
        db.url(),
        &migrate::fleet::Targets::Schemas(fresh.clone()),
        migrate::fleet::FleetOptions {
            jobs: 4,
            canary: 2,
            ..Default::default()
        },
    ));
    assert_eq!(report.failed(), ["nouveau_1", "nouveau_2"]);
    assert!(
        report.targets[2..]
            .iter()
            .all(|t| matches!(t.outcome, migrate::fleet::TargetOutcome::Skipped)),
        "{report:?}"
    );
    assert_eq!(
        values(
            &mut admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname LIKE 'nouveau%' AND tablename = 'migrate_history'"
        ),
        ["2"]
    );
}
