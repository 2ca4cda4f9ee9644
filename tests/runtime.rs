//! The runtime on a real PostgreSQL: applying once, replicas racing, lock contention with live
//! traffic, crashes part-way, a database ahead of the binary, edited migrations, adoption, and
//! error texts without passwords.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use migrate::{Health, Migrator};
mod common;

use common::{
    Driver, OnDriver, advisory_locks, applied, capture_logs, history, hold_lock, logged,
    on_both_drivers, stdout, values,
};
use pg_harness::{Cluster, ClusterOptions, TestDatabase, test_database};

static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");
static SETTINGS: migrate::Migrations = migrate::embed_migrations!("tests/migrations/settings");
static FAILING: migrate::Migrations = migrate::embed_migrations!("tests/migrations/failing");
static GROUPED: migrate::Migrations = migrate::embed_migrations!("tests/migrations/grouped");

on_both_drivers! {
    fn startup_applies_once_then_nothing_and_skip_touches_nothing(driver) {
        let db = test_database();
        let first = driver.run_host(db.url(), "basic", &[]);
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert_eq!(
            stdout(&first),
            "migrated applied=0001,0002,0003 health=Pass"
        );
        let log = String::from_utf8_lossy(&first.stderr);
        assert!(
            log.starts_with(&format!("INFO host on the {} driver\n", driver.name())),
            "{log}"
        );
        assert!(
            log.contains("INFO applied 0001 (tests/migrations/basic/0001_users.sql) in "),
            "{log}"
        );
        assert_eq!(history(&db), ["0001", "0002", "0003"]);

        let second = driver.run_host(db.url(), "basic", &[]);
        assert_eq!(stdout(&second), "migrated applied= health=Pass");
        assert_eq!(history(&db), ["0001", "0002", "0003"]);

        let fresh = test_database();
        let skipped = driver.run_host(fresh.url(), "basic", &[("MIGRATE_SKIP", "1")]);
        assert_eq!(stdout(&skipped), "skipped pending=3");
        let tables = values(
            &mut fresh.client(),
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        );
        assert_eq!(
            tables,
            ["0"],
            "MIGRATE_SKIP must leave the schema untouched"
        );

        let unconfigured = driver.host("", "basic", &[])
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert_eq!(stdout(&unconfigured), "not-configured");
        assert!(unconfigured.status.success());
    }
}

on_both_drivers! {
    fn eight_replicas_at_once_apply_each_revision_exactly_once(driver) {
        let db = test_database();
        let children: Vec<_> = (0..8)
            .map(|_| driver.host(db.url(), "basic", &[]).spawn().unwrap())
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        assert_eq!(
            common::applied_by_all(&outputs),
            ["0001", "0002", "0003"],
            "each revision applied by exactly one replica"
        );
        assert_eq!(history(&db), ["0001", "0002", "0003"]);
        assert_eq!(advisory_locks(&db), "0", "no advisory lock left behind");
    }
}

on_both_drivers! {
    fn timeouts_are_set_local_inside_the_migration_and_do_not_leak(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&SETTINGS).run_on(&mut client).unwrap();
        let seen = client.values("SELECT lock_timeout || ' ' || statement_timeout FROM settings_seen ORDER BY 1 DESC",
        );
        assert_eq!(
            seen,
            ["750ms 4s", "1s 0"],
            "directive values, then the defaults (1s, none)"
        );
        let after = client.values("SELECT current_setting('lock_timeout') || ' ' || current_setting('statement_timeout')",
        );
        assert_eq!(after, ["0 0"], "SET LOCAL ends with the transaction");
    }
}

on_both_drivers! {
    fn a_held_lock_makes_the_migration_retry_without_stalling_readers(driver) {
        capture_logs();
        let db = test_database();
        let mut client = driver.connect(db.url());
        // 0001 and 0002 first; 0003 (ALTER TABLE users) will meet the held lock.
        let _ = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        client.batch_execute("DELETE FROM migrate_history WHERE revision = '0003'; ALTER TABLE users DROP COLUMN name").unwrap();

        // A long transaction holds ACCESS SHARE on users for 3 s: the ALTER's ACCESS EXCLUSIVE
        // request conflicts with it.
        let holder = hold_lock(db.url(), "users", Duration::from_secs(3));

        // Live traffic: readers of users, measuring how long each query waited.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let url = db.url().to_owned();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    let mut worst = Duration::ZERO;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let t = Instant::now();
                        c.simple_query("SELECT count(*) FROM users").unwrap();
                        worst = worst.max(t.elapsed());
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    worst
                })
            })
            .collect();

        let started = Instant::now();
        let report = Migrator::new(&BASIC)
            .lock_timeout(Duration::from_millis(300))
            .run_on(&mut client)
            .unwrap();
        let took = started.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .max()
            .unwrap();
        holder.join().unwrap();

        assert_eq!(
            common::applied(&report),
            ["0003"]
        );
        assert!(
            took >= Duration::from_millis(2500),
            "it had to wait for the holder: {took:?}"
        );
        let retries = logged("SQLSTATE 55P03");
        assert!(
            !retries.is_empty(),
            "expected lock_timeout retries in the log"
        );
        assert!(retries[0].contains("migration 0003 at tests/migrations/basic/0003_names.sql:4: SQLSTATE 55P03: canceling statement due to lock timeout; rolled back, retrying"), "{retries:?}");
        // A reader queued behind the ALTER waits at most about lock_timeout (300 ms), never for the
        // holder's 3 s.
        assert!(
            worst < Duration::from_millis(1500),
            "a reader waited {worst:?}"
        );
    }
}

on_both_drivers! {
    fn a_failing_statement_names_revision_file_line_and_sqlstate_and_keeps_nothing(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let err = Migrator::new(&FAILING).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "migration 0002 failed at tests/migrations/failing/0002_broken.sql:6: SQLSTATE 42P01: relation \"no_such_table\" does not exist\n  statement: INSERT INTO no_such_table VALUES (1)\n  help: nothing of this migration was kept (it ran in one transaction with its history row); fix the migration in a new build, or fix the data it trips on, then start again"
        );
        assert_eq!(err.sqlstate(), Some("42P01"));
        assert_eq!(history(&db), ["0001"]);
        assert_eq!(
            client.values("SELECT count(*) FROM pg_tables WHERE tablename = 'kept_only_if_all_succeeds'"
            ),
            ["0"]
        );
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn ahead_warns_diverged_and_edited_stop_with_named_revisions(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&BASIC).run_on(&mut client).unwrap();

        // A rollback deploy: the database has 0004, built on our head 0003.
        client
            .batch_execute("INSERT INTO migrate_history (revision, parents, checksum, applied_by) VALUES ('0004', '0003', 'x', 'newer build'), ('0005', '0004', 'x', 'newer build')")
            .unwrap();
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert!(report.applied.is_empty());
        assert_eq!(report.status.health(), Health::Warn);
        assert!(report.status.ahead.iter().all(|a| a.descends_from_head));

        // Another branch: 0004b builds on 0002, not on our head.
        client.batch_execute("INSERT INTO migrate_history (revision, parents, checksum, applied_by) VALUES ('0004b', '0002', 'x', 'other branch')").unwrap();
        let err = Migrator::new(&BASIC).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the database has applied revisions this binary does not know and that do not build on its head 0003: 0004, 0005, 0004b\n  help: the database was migrated by a build from another branch; deploy a build that contains these revisions (merge the branches), or undo them by hand and delete their rows from the history table"
        );
        client
            .batch_execute(
                "DELETE FROM migrate_history WHERE revision LIKE '0004%' OR revision = '0005'",
            )
            .unwrap();

        // An applied migration edited after the fact.
        client
            .batch_execute("UPDATE migrate_history SET checksum = 'edited' WHERE revision = '0002'")
            .unwrap();
        let err = Migrator::new(&BASIC).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "applied migrations were edited since they ran: 0002 (tests/migrations/basic/0002_posts.sql)\n  help: an applied migration must not change; restore the file as it was applied and put the change in a new migration"
        );
        assert!(matches!(err, migrate::Error::ChecksumMismatch { .. }));
    }
}

on_both_drivers! {
    fn a_start_reads_the_history_only_when_it_changed_since_it_was_complete(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let mut other = db.client();
        let digest = |c: &mut postgres::Client| {
            values(c, "SELECT last_value FROM migrate_history_digest")
        };
        let revisions = |report: &migrate::Report| -> Vec<String> {
            report.status.applied.iter().map(|r| r.revision.to_string()).collect()
        };
        // The macro's digest is the one the runtime would compute.
        assert_eq!(
            BASIC.history_digest(),
            migrate::__private::history_digest_hex(BASIC.iter().map(|m| (m.revision(), m.checksum())))
        );
        let _ = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        let recorded = digest(&mut other);
        assert_ne!(recorded, ["0"], "a run that leaves the history complete records its digest");

        // Nobody may read the history table for 3 s: a start that read it would wait.
        let (locked, is_locked) = std::sync::mpsc::channel();
        let url = db.url().to_owned();
        let holder = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.batch_execute("BEGIN; LOCK TABLE migrate_history IN ACCESS EXCLUSIVE MODE").unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            c.batch_execute("COMMIT").unwrap();
        });
        is_locked.recv_timeout(Duration::from_secs(30)).unwrap();
        let started = Instant::now();
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        let took = started.elapsed();
        holder.join().unwrap();
        assert!(took < Duration::from_millis(1500), "the start read the history: {took:?}");
        assert_eq!(report.status.health(), Health::Pass);
        assert_eq!(revisions(&report), ["0001", "0002", "0003"]);

        // A change rolled back resets the digest all the same: the next start reads the
        // history, finds it complete, and records the same digest again.
        other.batch_execute("BEGIN; UPDATE migrate_history SET checksum = 'edited'; ROLLBACK").unwrap();
        assert_eq!(digest(&mut other), ["0"]);
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(revisions(&report), ["0001", "0002", "0003"]);
        assert_eq!(digest(&mut other), recorded);

        // A writer at work: the start finds the history complete as committed, and does not wait
        // for the writer to record the digest.
        other.batch_execute("BEGIN; INSERT INTO migrate_history (revision, parents, checksum, applied_by) VALUES ('0004', '0003', 'x', 'newer build')").unwrap();
        let started = Instant::now();
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());
        assert_eq!(report.status.health(), Health::Pass);
        assert_eq!(digest(&mut db.client()), ["0"]);
        other.batch_execute("COMMIT").unwrap();
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(report.status.health(), Health::Warn, "the committed row is seen");
        assert_eq!(digest(&mut other), ["0"], "nothing recorded for a database ahead");

        // A role that may delete history rows but not touch the sequence still resets it (the
        // trigger's function runs as its owner), and the start applies the migration again.
        let ops = format!("{}_ops", db.name());
        other.batch_execute(&format!(
            "DELETE FROM migrate_history WHERE revision = '0004'; \
             CREATE ROLE \"{ops}\"; GRANT SELECT, DELETE ON migrate_history TO \"{ops}\""
        )).unwrap();
        let _ = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(digest(&mut other), recorded);
        other.batch_execute(&format!(
            "SET ROLE \"{ops}\"; DELETE FROM migrate_history WHERE revision = '0003'; RESET ROLE; \
             ALTER TABLE users DROP COLUMN name; DROP OWNED BY \"{ops}\"; DROP ROLE \"{ops}\""
        )).unwrap();
        assert_eq!(digest(&mut other), ["0"]);
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(common::applied(&report), ["0003"]);
        assert_eq!(digest(&mut other), recorded);

        // The trigger finds the sequence by the names its table has when it runs.
        other.batch_execute("ALTER SCHEMA public RENAME TO moved; UPDATE moved.migrate_history SET applied_by = 'someone'; ALTER SCHEMA moved RENAME TO public").unwrap();
        assert_eq!(digest(&mut other), ["0"]);
        let _ = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(digest(&mut other), recorded);

        // What keeps the digest is the runner's, not the migrations': the catalog leaves it out.
        let catalog = Migrator::new(&BASIC).catalog(&mut other).unwrap();
        let names: Vec<&String> = catalog.objects.keys().map(|(_, name)| name).collect();
        assert!(names.iter().all(|n| !n.contains("migrate_history")), "{names:?}");

        // Dropping the history table drops its digest with it.
        other.batch_execute("DROP TABLE migrate_history").unwrap();
        assert_eq!(values(&mut other, "SELECT to_regclass('migrate_history_digest') IS NULL"), ["t"]);
    }
}

on_both_drivers! {
    fn stamp_adopts_an_existing_schema_without_running_it(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        // A schema made by hand (or another tool) matching 0001 and 0002.
        client
            .batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL); CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), body text)")
            .unwrap();
        let stamped = Migrator::new(&BASIC).stamp_on(&mut client, "0002").unwrap();
        assert_eq!(stamped, ["0001", "0002"]);
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(
            common::applied(&report),
            ["0003"]
        );
        assert_eq!(
            Migrator::new(&BASIC)
                .stamp_on(&mut client, "nope")
                .unwrap_err()
                .to_string(),
            "revision nope is not one of this binary's migrations\n  help: run `status` to list the revisions this binary contains"
        );
    }
}

fn kill_when(driver: Driver, db: &TestDatabase, set: &str, ready: &str) {
    let mut child = driver.host(db.url(), set, &[]).spawn().unwrap();
    let mut watcher = db.client();
    common::wait_until(
        Duration::from_secs(60),
        "the migration never reached the point to kill it",
        || values(&mut watcher, ready).first().map(String::as_str) == Some("t"),
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

on_both_drivers! {
    fn sigkill_in_a_transactional_migration_then_restart_completes(driver) {
        let db = test_database();
        kill_when(
            driver,
            &db,
            "slow",
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%' AND datname = current_database())",
        );
        let out = driver.run_host(db.url(), "slow", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004"]);
        assert_eq!(
            values(&mut db.client(), "SELECT count(*) FROM audit"),
            ["1"]
        );
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn sigkill_in_create_index_concurrently_then_restart_completes_without_invalid_index(driver) {
        let db = test_database();
        kill_when(
            driver,
            &db,
            "index",
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY users_slow_key%' AND datname = current_database())",
        );
        let out = driver.run_host(db.url(), "index", &[]);
        assert!(
            out.status.success(),
            "{}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004", "0005"]);
        let mut client = driver.connect(db.url());
        assert_eq!(
            client.values("SELECT count(*) FROM pg_index WHERE NOT indisvalid"
            ),
            ["0"],
            "no INVALID index left"
        );
        assert_eq!(
            client.values("SELECT count(*) FROM pg_indexes WHERE indexname IN ('users_slow_key', 'users_email')"
            ),
            ["2"]
        );
        assert_eq!(
            client.values("SELECT state || ' ' || statements_done FROM migrate_history WHERE revision = '0005'"
            ),
            ["applied 2"]
        );
        assert_eq!(advisory_locks(&db), "0");
    }
}

on_both_drivers! {
    fn a_wrong_password_is_reported_without_the_password(driver) {
        let cluster = Cluster::start_with(ClusterOptions {
            config: vec!["password_encryption = 'scram-sha-256'".to_owned()],
            hba: Some("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n".to_owned()),
            ..ClusterOptions::default()
        });
        let socket = format!(
            "host={} port={} user=postgres dbname=postgres",
            cluster.dir().display(),
            cluster.port()
        );
        let mut admin = postgres::Client::connect(&socket, postgres::NoTls).unwrap();
        admin
            .batch_execute("CREATE ROLE app LOGIN PASSWORD 'right-horse-battery'")
            .unwrap();
        let url = format!(
            "postgres://app:Tr0ub4dor-and-3@127.0.0.1:{}/postgres",
            cluster.port()
        );
        let err = Migrator::new(&BASIC)
            .wait_budget(Duration::from_millis(300))
            .run_url_on(driver, &url)
            .unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("Tr0ub4dor"), "{text}");
        assert!(
            text.starts_with(&format!(
                "cannot connect to postgres://app@127.0.0.1:{}/postgres (tried for ",
                cluster.port()
            )),
            "{text}"
        );
        assert!(
            text.contains("password authentication failed for user \"app\""),
            "{text}"
        );
        assert!(!format!("{err:?}").contains("Tr0ub4dor"));
    }
}

on_both_drivers! {
    fn transaction_pooler_mode_refuses_no_transaction_migrations(driver) {
        let db = test_database();
        let out = driver.run_host(db.url(), "index", &[("MIGRATE_POOLER", "transaction")]);
        assert!(!out.status.success());
        assert_eq!(stdout(&out), "failed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last_error = stderr
            .rsplit("ERROR migrations failed: ")
            .next()
            .unwrap_or_default();
        assert_eq!(
            last_error
                .split_once("\nmigration 0005")
                .map_or(last_error, |(first, _)| first),
            "migration 0005 (tests/migrations/index/0005_index.sql) is marked no-transaction and needs a session lock, which a transaction-mode pooler cannot hold\n  help: set MIGRATION_DATABASE_URL to a direct connection to the server (not through the pooler); migrations use it, the service keeps using DATABASE_URL"
        );
        // The transactional ones before it were applied.
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004"]);
    }
}

/// A server with `ssl = on`, a certificate for the name `db.internal` only signed by a test
/// CA, and TCP logins allowed over TLS only. Returns the CA certificate's path.
fn tls_cluster() -> (Cluster, std::path::PathBuf) {
    // One directory per call: both drivers' tests run at once in this process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("migrate-tls-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:db.internal\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=migrate test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=db.internal",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    let cluster = Cluster::start_with(ClusterOptions {
        config: vec![
            "ssl = on".to_owned(),
            "ssl_cert_file = 'server.crt'".to_owned(),
            "ssl_key_file = 'server.key'".to_owned(),
        ],
        hba: Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\n".to_owned()),
        files: vec![
            (
                "server.crt".to_owned(),
                std::fs::read(dir.join("server.crt")).unwrap(),
            ),
            (
                "server.key".to_owned(),
                std::fs::read(dir.join("server.key")).unwrap(),
            ),
        ],
        ..ClusterOptions::default()
    });
    (cluster, dir.join("ca.crt"))
}

on_both_drivers! {
    fn sslmode_require_verify_ca_and_verify_full_behave_as_in_libpq(driver) {
        let (cluster, cert) = tls_cluster();
        let base = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port());
        let fast = |m: Migrator<'static>| m.wait_budget(Duration::from_millis(200));

        // require: encrypted, certificate not checked. The migrations really run over TLS.
        let report = fast(Migrator::new(&BASIC))
            .run_url_on(driver, &format!("{base}?sslmode=require"))
            .unwrap();
        assert_eq!(report.applied.len(), 3);
        let root = cert.display().to_string();
        let connector_check = format!("{base}?sslmode=verify-ca&sslrootcert={root}");
        let report = fast(Migrator::new(&BASIC))
            .run_url_on(driver, &connector_check)
            .unwrap();
        assert!(
            report.applied.is_empty(),
            "verify-ca: chain checked, host name not"
        );

        // verify-full: the certificate names db.internal, not 127.0.0.1.
        let err = fast(Migrator::new(&BASIC))
            .run_url_on(driver, &format!("{base}?sslmode=verify-full&sslrootcert={root}"))
            .unwrap_err();
        assert!(
            err.to_string().contains("certificate not valid for name"),
            "{err}"
        );
        // verify-full with the system roots: the self-signed certificate is unknown.
        let err = fast(Migrator::new(&BASIC))
            .run_url_on(driver, &format!("{base}?sslmode=verify-full"))
            .unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
        // disable: the server accepts TLS connections only.
        let err = fast(Migrator::new(&BASIC))
            .run_url_on(driver, &format!("{base}?sslmode=disable"))
            .unwrap_err();
        assert!(err.to_string().contains("no encryption"), "{err}");

        // The connection used TLS.
        let socket = format!(
            "host={} port={} user=postgres dbname=postgres",
            cluster.dir().display(),
            cluster.port()
        );
        let mut admin = postgres::Client::connect(&socket, postgres::NoTls).unwrap();
        let applied_by_tls = values(&mut admin, "SELECT count(*) FROM migrate_history");
        assert_eq!(applied_by_tls, ["3"]);
        let _ = std::fs::remove_dir_all(cert.parent().unwrap());
    }
}

mod refinery_schema {
    refinery::embed_migrations!("tests/migrations/refinery");
}

on_both_drivers! {
    fn a_database_migrated_by_refinery_is_adopted_with_stamp(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        refinery_schema::migrations::runner()
            .run(&mut db.client())
            .unwrap();
        assert_eq!(
            client.values("SELECT max(version)::text FROM refinery_schema_history"
            ),
            ["2"]
        );

        // Its V1 and V2 are this project's 0001 and 0002: record them, then continue with 0003.
        let status = Migrator::new(&BASIC).status_on(&mut client).unwrap();
        assert_eq!(status.pending.len(), 3, "nothing is known before the stamp");
        assert_eq!(
            Migrator::new(&BASIC).stamp_on(&mut client, "0002").unwrap(),
            ["0001", "0002"]
        );
        let report = Migrator::new(&BASIC).run_on(&mut client).unwrap();
        assert_eq!(
            common::applied(&report),
            ["0003"]
        );
        assert_eq!(report.status.health(), Health::Pass);
        assert_eq!(
            client.values("SELECT applied_by LIKE '%(stamp)' FROM migrate_history WHERE revision = '0001'"
            ),
            ["t"]
        );
    }
}

on_both_drivers! {
    fn a_terminated_backend_mid_migration_reconnects_and_completes(driver) {
        static SLOW: migrate::Migrations = migrate::embed_migrations!("tests/migrations/slow");
        capture_logs();
        let db = test_database();
        let url = db.url().to_owned();
        let runner = std::thread::spawn(move || {
            Migrator::new(&SLOW)
                .wait_budget(Duration::from_secs(60))
                .run_url_on(driver, &url)
        });
        let mut admin = db.client();
        common::wait_until(
            Duration::from_secs(30),
            "the migration never reached pg_sleep",
            || {
                values(
                    &mut admin,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%' AND datname = current_database() AND pid <> pg_backend_pid()",
                ) == ["1"]
            },
        );
        let report = runner.join().unwrap().unwrap();
        assert_eq!(
            common::applied(&report)
                .last(),
            Some(&"0004")
        );
        assert_eq!(history(&db), ["0001", "0002", "0003", "0004"]);
        assert_eq!(
            values(&mut admin, "SELECT count(*) FROM audit"),
            ["1"],
            "applied once"
        );
        assert!(
            !logged("; reconnecting").is_empty(),
            "the connection loss was seen and retried"
        );
    }
}

on_both_drivers! {
    fn the_history_can_live_in_its_own_schema(driver) {
        let db = test_database();
        let mut client = driver.connect(db.url());
        let _ = Migrator::new(&BASIC)
            .schema("ops")
            .table("schema_history")
            .run_on(&mut client)
            .unwrap();
        assert_eq!(
            client.values( "SELECT count(*) FROM ops.schema_history"),
            ["3"]
        );
        assert_eq!(
            client.values("SELECT to_regclass('public.migrate_history') IS NULL"
            ),
            ["t"]
        );
        let err = Migrator::new(&BASIC)
            .schema("ops\"; DROP TABLE users; --")
            .run_on(&mut client)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid schema `ops\"; DROP TABLE users; --`: expected a name of at most 63 bytes without `\"`, `$` or control characters"
        );
        // Any other name is one quoted identifier: a tenant's schema as a fleet lists it.
        let fresh = test_database();
        let mut client = driver.connect(fresh.url());
        let _ = Migrator::new(&BASIC)
            .schema("Mandant Ü; DROP TABLE users")
            .run_on(&mut client)
            .unwrap();
        assert_eq!(
            client.values("SELECT count(*) FROM \"Mandant Ü; DROP TABLE users\".migrate_history"),
            ["3"]
        );
        assert_eq!(client.values("SELECT count(*) FROM users"), ["0"]);
    }
}

on_both_drivers! {
    fn an_unprovable_interrupted_statement_stops_with_the_remedy_that_works(driver) {
        static INTERRUPTED: migrate::Migrations =
            migrate::embed_migrations!("tests/migrations/interrupted");
        let db = test_database();
        let mut client = driver.connect(db.url());
        let all = INTERRUPTED.as_slice();
        let _ = Migrator::new(&migrate::__private::migrations(&all[..1]))
            .run_on(&mut client)
            .unwrap();
        // What a crash during the ALTER leaves: the row says running, no statement done.
        client
            .batch_execute(&format!(
                "INSERT INTO migrate_history (revision, parents, checksum, state, statements_done, applied_by) VALUES ('0002', '0001', '{}', 'running', 0, 'crashed')",
                all[1].checksum()
            ))
            .unwrap();
        let status = Migrator::new(&INTERRUPTED).status_on(&mut client).unwrap();
        assert_eq!(
            status.interrupted.as_ref().map(|i| (
                i.revision.as_str(),
                i.statements_done,
                i.statements_total
            )),
            Some(("0002", 0, 2))
        );
        let err = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no-transaction migration 0002 was interrupted at tests/migrations/interrupted/0002_nickname.sql:5 and the runner cannot tell whether that statement took effect\n  statement: ALTER TABLE users ADD COLUMN nickname text\n  help: check the schema; if the statement did not take effect, run it yourself; then mark it done with\n    UPDATE \"public\".\"migrate_history\" SET statements_done = 1 WHERE revision = '0002';\n  and start again: the runner continues with the statement after it\n  (a statement written with IF [NOT] EXISTS is retried by the runner itself)"
        );
        assert_eq!(
            advisory_locks(&db),
            "0",
            "the session lock is released on this path too"
        );

        // Following the remedy completes the migration.
        client
            .batch_execute("ALTER TABLE users ADD COLUMN nickname text")
            .unwrap();
        client
            .batch_execute(
                "UPDATE \"public\".\"migrate_history\" SET statements_done = 1 WHERE revision = '0002'",
            )
            .unwrap();
        let report = Migrator::new(&INTERRUPTED).run_on(&mut client).unwrap();
        assert_eq!(
            common::applied(&report),
            ["0002"]
        );
        assert_eq!(
            client.values("SELECT state || ' ' || statements_done FROM migrate_history WHERE revision = '0002'"
            ),
            ["applied 2"]
        );
        assert_eq!(
            client.values("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_nickname_idx'"
            ),
            ["1"]
        );
    }
}

/// The history's revisions by the transaction that wrote them (rows committed together share
/// an xmin), oldest first: `["0001 0002 0003", "0004"]`.
fn commits(db: &TestDatabase) -> Vec<String> {
    values(
        &mut db.client(),
        "SELECT string_agg(revision, ' ' ORDER BY applied_at, revision) FROM migrate_history GROUP BY xmin::text ORDER BY min(applied_at)",
    )
}

on_both_drivers! {
    fn self_contained_migrations_commit_together_and_a_failure_among_them_reads_as_alone(driver) {
        capture_logs();
        let judged: Vec<bool> = GROUPED.iter().map(|m| m.self_contained()).collect();
        assert_eq!(judged, [true, true, true, false, true]);

        let db = test_database();
        let report = Migrator::new(&GROUPED).run_url_on(driver, db.url()).unwrap();
        assert_eq!(applied(&report), ["0001", "0002", "0003", "0004", "0005"]);
        assert_eq!(report.status.health(), Health::Pass);
        assert_eq!(commits(&db), ["0001 0002 0003", "0004", "0005"]);
        assert!(
            !logged("applied 0002 (tests/migrations/grouped/0002_orders.sql, one of 3 in one transaction) in ").is_empty()
        );
        assert!(!logged("applied 0004 (tests/migrations/grouped/0004_shipped.sql) in ").is_empty());
        // Each row of a group has its own time, and the server's measure of its own work.
        assert_eq!(
            values(
                &mut db.client(),
                "SELECT count(DISTINCT applied_at)::text || ' ' || bool_and(execution_ms >= 0)::text FROM migrate_history WHERE revision IN ('0001', '0002', '0003')",
            ),
            ["3 true"]
        );
        assert_eq!(values(&mut db.client(), "SELECT name FROM accounts"), ["Zoë Müller 🎉"]);
        let again = Migrator::new(&GROUPED).run_url_on(driver, db.url()).unwrap();
        assert!(again.applied.is_empty());
        assert_eq!(again.status.health(), Health::Pass);

        for (limit, expected) in [
            (1, vec!["0001", "0002", "0003", "0004", "0005"]),
            (2, vec!["0001 0002", "0003", "0004", "0005"]),
        ] {
            let db = test_database();
            let report = Migrator::new(&GROUPED).group_limit(limit).run_url_on(driver, db.url()).unwrap();
            assert_eq!(report.applied.len(), 5);
            assert_eq!(commits(&db), expected, "group limit {limit}");
        }

        // 0003 fails (its table exists): the group rolls back, 0001 and 0002 are applied on
        // their own, and the failure reads exactly as without grouping.
        let failing = |limit: usize| {
            let db = test_database();
            db.client().batch_execute("CREATE TABLE audit (id int)").unwrap();
            let error = Migrator::new(&GROUPED)
                .group_limit(limit)
                .run_url_on(driver, db.url())
                .unwrap_err()
                .to_string();
            (error, commits(&db))
        };
        let (grouped_error, grouped_commits) = failing(64);
        let (alone_error, alone_commits) = failing(1);
        assert_eq!(grouped_error, alone_error);
        assert!(
            grouped_error.contains("tests/migrations/grouped/0003_audit.sql:3"),
            "{grouped_error}"
        );
        assert_eq!(grouped_commits, ["0001", "0002"]);
        assert_eq!(alone_commits, ["0001", "0002"]);
    }
}
