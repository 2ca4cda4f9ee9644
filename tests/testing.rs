//! `#[migrate::test]` on a real server. The `host_*` tests are ignored in a plain run: the
//! driver tests run them in a process of their own, on 8 threads, against a server of the
//! harness, then check the server: one template, every test database gone, or kept and named
//! when its test failed.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use migrate::testing::TestDatabase;

static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");

const SIGN: &str = "migrate-host-history";

/// The same primary key in every test's database.
const INSERT_SHARED_KEY: &str = "INSERT INTO users (id, email, name) VALUES (1, $1, 'Jürgen')";
const EMAILS: &str = "SELECT email FROM users";
/// A database's history: each revision with the microsecond it was applied at.
const HISTORY: &str = "SELECT string_agg(revision || '@' || (extract(epoch FROM applied_at) * 1000000)::bigint, ',' ORDER BY revision) FROM migrate_history";

/// Inserts the same key as every other test, sees only its own row, and prints its database's
/// history (revision and time of each row) for the driver to compare.
fn own_row_only(client: &mut postgres::Client, test: &str) {
    let email = format!("{test}@example.fr");
    client.execute(INSERT_SHARED_KEY, &[&email]).unwrap();
    let rows: Vec<String> = client
        .query(EMAILS, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [email]);
    let history: String = client.query_one(HISTORY, &[]).unwrap().get(0);
    println!("{SIGN} {history}");
}

async fn own_row_only_async(client: &tokio_postgres::Client, test: &str) {
    let email = format!("{test}@example.fr");
    client.execute(INSERT_SHARED_KEY, &[&email]).await.unwrap();
    let rows: Vec<String> = client
        .query(EMAILS, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [email]);
    let history: String = client.query_one(HISTORY, &[]).await.unwrap().get(0);
    println!("{SIGN} {history}");
}

/// Pairs of tests, one blocking and one async each.
macro_rules! host_tests {
    ($($blocking:ident $asynchronous:ident)*) => {$(
        #[migrate::test(MIGRATIONS)]
        #[ignore = "run by the driver tests of this file, against their server"]
        fn $blocking(db: TestDatabase) {
            own_row_only(&mut db.client().unwrap(), stringify!($blocking));
        }

        #[migrate::test(MIGRATIONS)]
        #[ignore = "run by the driver tests of this file, against their server"]
        async fn $asynchronous(db: TestDatabase) {
            let client = db.connect_async().await.unwrap();
            own_row_only_async(&client, stringify!($asynchronous)).await;
        }
    )*};
}

host_tests! {
    host_blocking_01 host_async_01 host_blocking_02 host_async_02 host_blocking_03 host_async_03
    host_blocking_04 host_async_04 host_blocking_05 host_async_05 host_blocking_06 host_async_06
    host_blocking_07 host_async_07 host_blocking_08 host_async_08 host_blocking_09 host_async_09
    host_blocking_10 host_async_10 host_blocking_11 host_async_11 host_blocking_12 host_async_12
    host_blocking_13 host_async_13 host_blocking_14 host_async_14 host_blocking_15 host_async_15
    host_blocking_16 host_async_16 host_blocking_17 host_async_17 host_blocking_18 host_async_18
    host_blocking_19 host_async_19 host_blocking_20 host_async_20 host_blocking_21 host_async_21
    host_blocking_22 host_async_22 host_blocking_23 host_async_23 host_blocking_24 host_async_24
}

#[migrate::test(MIGRATIONS, fixtures("zoe"))]
#[ignore = "run by the driver tests of this file, against their server"]
fn fixture_host(db: TestDatabase) {
    let name: String = db
        .client()
        .unwrap()
        .query_one("SELECT name FROM users WHERE id = 7", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "Zoë 🦊");
}

#[migrate::test(MIGRATIONS)]
#[ignore = "run by the driver tests of this file, against their server"]
fn failing_host(db: TestDatabase) {
    own_row_only(&mut db.client().unwrap(), "failing_host");
    panic!("this test fails on purpose");
}

#[migrate::test(MIGRATIONS)]
#[ignore = "run by the driver tests of this file, against their server"]
async fn failing_result_host(db: TestDatabase) -> Result<(), String> {
    let client = db.connect_async().await.unwrap();
    own_row_only_async(&client, "failing_result_host").await;
    Err("this test fails on purpose, by its result".to_owned())
}

#[migrate::test(MIGRATIONS)]
#[ignore = "run by the driver tests of this file, against their server"]
#[should_panic(expected = "on purpose")]
fn expected_panic_host(db: TestDatabase) {
    own_row_only(&mut db.client().unwrap(), "expected_panic_host");
    panic!("this test panics on purpose, and passes by it");
}

/// A process that asks for a second database gets the next ones copied ahead: spares appear on
/// the server while its tests run, and a later test takes one under its own name (the same
/// database: the same oid). A spare someone is connected to cannot be renamed: the test copies
/// the template itself, and that spare is dropped, not left behind.
#[test]
#[ignore = "run by the driver tests of this file, against their server"]
fn spares_host() {
    let server = pg_harness::server_url();
    let mut admin = connect(&server, None);
    let oid = |admin: &mut postgres::Client, name: &str| -> i64 {
        admin
            .query_one(
                "SELECT oid::int8 FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .unwrap()
            .get(0)
    };
    let two_spares = |admin: &mut postgres::Client| -> Vec<(String, i64)> {
        common::wait_until(Duration::from_secs(20), "no spare copies were made", || {
            databases(admin, "migrate_spare_").len() >= 2
        });
        // A spare is listed once its copy commits, a moment before its maker hands it out.
        std::thread::sleep(std::time::Duration::from_millis(200));
        databases(admin, "migrate_spare_")
            .into_iter()
            .map(|name| {
                let oid = oid(admin, &name);
                (name, oid)
            })
            .collect()
    };
    let first = TestDatabase::create(&MIGRATIONS).unwrap();
    let second = TestDatabase::create(&MIGRATIONS).unwrap();
    let ready = two_spares(&mut admin);
    let third = TestDatabase::create(&MIGRATIONS).unwrap();
    let taken = oid(&mut admin, third.name());
    assert!(
        ready.iter().any(|(_, oid)| *oid == taken),
        "{} ({taken}) is not one of {ready:?}",
        third.name()
    );
    own_row_only(&mut third.client().unwrap(), "spares_host");

    let ready = two_spares(&mut admin);
    let held: Vec<postgres::Client> = ready
        .iter()
        .map(|(name, _)| connect(&server, Some(name)))
        .collect();
    let fourth = TestDatabase::create(&MIGRATIONS).unwrap();
    let copied = oid(&mut admin, fourth.name());
    assert!(ready.iter().all(|(_, oid)| *oid != copied), "{ready:?}");
    let one_gone = |left: &Vec<String>| ready.iter().any(|(name, _)| !left.contains(name));
    let left = common::settle(
        Duration::from_secs(20),
        Duration::from_millis(20),
        || databases(&mut admin, "migrate_spare_"),
        one_gone,
    );
    assert!(
        one_gone(&left),
        "the spare that could not be taken is still there: {left:?}"
    );
    drop(held);
    drop((first, second, third, fourth));
}

static FAILING: migrate::Migrations = migrate::embed_migrations!("tests/migrations/failing");

/// A set whose migration fails is built once per process: the next test gets the same error at
/// once, and the server sees no other transaction (the ids show it).
#[test]
#[ignore = "run by the driver tests of this file, against their server"]
fn failed_build_host() {
    let mut admin = connect(&pg_harness::server_url(), None);
    let xid = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one("SELECT txid_current()", &[])
            .unwrap()
            .get(0)
    };
    let before = xid(&mut admin);
    let first = TestDatabase::create(&FAILING).unwrap_err().to_string();
    let between = xid(&mut admin);
    let second = TestDatabase::create(&FAILING).unwrap_err().to_string();
    let after = xid(&mut admin);
    assert!(first.starts_with("migration 0002 failed at "), "{first}");
    assert_eq!(second, first);
    assert!(between > before + 2, "{before} {between}");
    assert_eq!(after, between + 1);
}

/// A blocking client in an async test is refused with a message, not an abort of the binary.
#[migrate::test(MIGRATIONS)]
#[ignore = "run by the driver tests of this file, against their server"]
async fn blocking_client_in_async_host(db: TestDatabase) {
    assert_eq!(
        db.client().err().map(|e| e.to_string()).unwrap_or_default(),
        "TestDatabase::client() is a blocking connection, and this test runs on a tokio runtime, where its first query would abort the test binary\n  help: use `db.connect_async().await` in an async test"
    );
}

/// The driver tests share the server's list of databases: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The server the host tests run on: the harness's (its maintenance database).
fn server_url() -> String {
    pg_harness::server_url()
}

/// This test binary, running `filter` among the ignored tests on 8 threads against the server.
fn run_hosts(url: &str, filter: &[&str]) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--test-threads", "8", "--nocapture"])
        .args(filter)
        .env("MIGRATE_TEST_DATABASE_URL", url)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

/// A connection to the server at `url`, or to its database `database`.
fn connect(url: &str, database: Option<&str>) -> postgres::Client {
    let url = match database {
        Some(database) => format!(
            "{}/{database}",
            url.rsplit_once('/').map_or(url, |(server, _)| server)
        ),
        None => url.to_owned(),
    };
    pg_harness::connect_with_retry(&url, std::time::Duration::from_secs(30))
}

fn databases(admin: &mut postgres::Client, prefix: &str) -> Vec<String> {
    admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
            &[&prefix],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn forty_eight_tests_on_eight_threads_each_get_a_database_copied_from_one_template() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = server_url();
    let mut admin = connect(&url, None);
    // What runs of long ago left: a kept test database and a template of other migrations. The
    // first test of the process removes both.
    for statement in [
        "CREATE DATABASE migrate_test_1000000000_1_1",
        "CREATE DATABASE migrate_tpl_00000000000000000000",
        "COMMENT ON DATABASE migrate_tpl_00000000000000000000 IS 'migrate test template, complete; built at 1000000000'",
    ] {
        admin.batch_execute(statement).unwrap();
    }
    // A spare copy whose maker was killed: no session has its process id.
    admin
        .batch_execute("CREATE DATABASE migrate_spare_999999_1000000000_1")
        .unwrap();
    let run = run_hosts(&url, &["host_"]);
    let output = text(&run);
    assert!(run.status.success(), "{output}");
    let passed = output
        .lines()
        .filter(|l| l.starts_with("test host_") && l.ends_with(" ok"))
        .count();
    assert_eq!(passed, 48, "{output}");

    // Every database's history is the template's, to the microsecond: the migrations ran once.
    let histories: BTreeSet<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix(SIGN).map(str::trim))
        .collect();
    assert_eq!(histories.len(), 1, "{histories:?}");
    let templates = databases(&mut admin, "migrate_tpl_");
    let [template] = templates.as_slice() else {
        panic!("templates: {templates:?}");
    };
    let mut template_client = connect(&url, Some(template.as_str()));
    let history: String = template_client.query_one(HISTORY, &[]).unwrap().get(0);
    drop(template_client);
    assert_eq!(histories.first().copied(), Some(history.as_str()));
    assert!(history.starts_with("0001@"), "{history}");

    // Nothing left: no test database, no spare, no session of the tests.
    assert_eq!(databases(&mut admin, "migrate_test_"), Vec::<String>::new());
    assert_eq!(
        databases(&mut admin, "migrate_spare_"),
        Vec::<String>::new()
    );
    // The process has exited; its backends end a moment later.
    let sessions = common::settle(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || -> i64 {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'migrate-testing'",
                    &[],
                )
                .unwrap()
                .get(0)
        },
        |sessions| *sessions == 0,
    );
    assert_eq!(sessions, 0);

    // A build cut short (killed before it was marked complete, a table missing): the next test
    // builds it again, and a test with a fixture starts from its rows.
    admin
        .batch_execute(&format!("COMMENT ON DATABASE {template} IS NULL"))
        .unwrap();
    let mut template_client = connect(&url, Some(template.as_str()));
    template_client.batch_execute("DROP TABLE posts").unwrap();
    drop(template_client);
    let fixture = run_hosts(&url, &["--exact", "fixture_host"]);
    assert!(fixture.status.success(), "{}", text(&fixture));
    assert_eq!(databases(&mut admin, "migrate_test_"), Vec::<String>::new());
    let mut template_client = connect(&url, Some(template.as_str()));
    let posts: i64 = template_client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'posts'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(posts, 1, "the template was built again");
}

#[test]
fn a_process_copies_ahead_and_leaves_no_spare_when_it_exits() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = server_url();
    let mut admin = connect(&url, None);
    let run = run_hosts(&url, &["--exact", "spares_host"]);
    let output = text(&run);
    assert!(run.status.success(), "{output}");
    // The spare it could not take is named with the server's reason, once.
    let refused: Vec<&str> = output
        .lines()
        .filter(|l| {
            l.starts_with("migrate::testing: a spare copy of the template could not be taken (")
        })
        .collect();
    let [line] = refused.as_slice() else {
        panic!("{output}");
    };
    assert!(line.ends_with("); the test copies it itself"), "{line}");
    assert!(
        line.contains("(SQLSTATE 55006: database \"migrate_spare_")
            && line.contains("\" is being accessed by other users); "),
        "{line}"
    );
    assert_eq!(
        databases(&mut admin, "migrate_spare_"),
        Vec::<String>::new()
    );
    assert_eq!(databases(&mut admin, "migrate_test_"), Vec::<String>::new());
}

#[test]
fn a_failing_test_keeps_its_database_and_names_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = server_url();
    let mut admin = connect(&url, None);
    for test in ["failed_build_host", "blocking_client_in_async_host"] {
        let run = run_hosts(&url, &["--exact", test]);
        assert!(run.status.success(), "{}", text(&run));
    }
    // A test that passes by panicking leaves nothing.
    let run = run_hosts(&url, &["--exact", "expected_panic_host"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        !text(&run).contains("is kept for inspection"),
        "{}",
        text(&run)
    );
    assert_eq!(databases(&mut admin, "migrate_test_"), Vec::<String>::new());
    for test in ["failing_host", "failing_result_host"] {
        let run = run_hosts(&url, &["--exact", test]);
        let output = text(&run);
        assert!(!run.status.success(), "{output}");
        let kept: Vec<&str> = output
            .lines()
            .filter_map(|l| l.strip_prefix("migrate::testing: the test failed; its database "))
            .collect();
        let [line] = kept.as_slice() else {
            panic!("{output}");
        };
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            line.starts_with(&format!("{name} is kept for inspection (postgres://")),
            "{line}"
        );
        assert!(line.ends_with("); it is removed after a day"), "{line}");
        assert_eq!(databases(&mut admin, "migrate_test_"), [name]);
        // The kept database holds what the test did.
        let mut kept = connect(&url, Some(name));
        let email: String = kept.query_one(EMAILS, &[]).unwrap().get(0);
        assert_eq!(email, format!("{test}@example.fr"));
        drop(kept);
        admin
            .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .unwrap();
    }
}
