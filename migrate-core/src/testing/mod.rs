//! Test databases: a fresh database per test, cloned from a template the real runtime migrated
//! once (the `testing` feature).
//!
//! The server comes from `MIGRATE_TEST_DATABASE_URL`, else `DATABASE_URL`: a role that may create
//! databases, on a server kept for tests (the databases this module creates and drops are named
//! `migrate_tpl_…`, `migrate_test_…` and `migrate_spare_…`; nothing else is touched).
//!
//! The first test that needs the migrations creates `migrate_tpl_<digest>`, where the digest
//! covers every migration's checksum and the history table's place, and migrates it with
//! [`Migrator`], history table included. It does so under an advisory lock taken in the URL's
//! database, so that test threads and processes build it once; a template whose build was cut
//! short is not marked complete, and the next test builds it again. Every test then gets
//! `CREATE DATABASE migrate_test_… TEMPLATE migrate_tpl_<digest>`: a copy, in milliseconds.
//!
//! A test database is dropped when its [`TestDatabase`] goes out of scope, unless the test is
//! failing (the thread is panicking): then it is kept, and its name is printed. Test databases
//! and templates older than a day are removed by the first test of each process.
//!
//! A process that runs several tests copies the template ahead of them and drops their
//! databases behind them, in the background (`background.rs`), and finishes both before it
//! exits: a passing test's database may outlive the test by a moment, never the process.

mod background;
mod template;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postgres_protocol::escape::escape_identifier;

use crate::Migrations;
use crate::runtime::Error;
use crate::runtime::connect::{connect, redact};
use crate::runtime::error::database_error;

/// Test databases: `migrate_test_<unix seconds>_<process>_<counter>`.
pub const TEST_PREFIX: &str = "migrate_test_";

/// The `application_name` of this module's connections.
const APPLICATION_NAME: &str = "migrate-testing";

/// The server the tests run on: `MIGRATE_TEST_DATABASE_URL`, else `DATABASE_URL`.
pub fn server_url() -> Result<String, Error> {
    server_url_from(|name| std::env::var(name).ok())
}

fn server_url_from(variable: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    ["MIGRATE_TEST_DATABASE_URL", "DATABASE_URL"]
        .into_iter()
        .find_map(|name| variable(name).filter(|v| !v.trim().is_empty()))
        .ok_or(Error::NoTestServer)
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, Error> {
    crate::runtime::connect::url_for_database(url, database).map_err(|e| Error::InvalidConfig {
        name: "the test server's URL".to_owned(),
        value: redact(url),
        reason: format!("{e}; test databases need a postgres:// URL"),
    })
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A lock on what this process keeps between tests. A test that panicked while holding it left
/// nothing half-done (each change is one insert or remove), so its poison is ignored.
fn locked<T>(kept: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    kept.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connections to the servers' maintenance databases, kept between the tests of a process: a
/// new connection for each copy and each drop costs a good part of what the copy does.
static ADMINS: Mutex<Vec<(String, postgres::Client)>> = Mutex::new(Vec::new());

/// Runs `work` on a connection to `server_url` from [`ADMINS`] (a new one when none is free),
/// and keeps the connection for the next test unless the work failed.
fn with_admin<T>(
    server_url: &str,
    work: impl FnOnce(&mut postgres::Client) -> Result<T, Error>,
) -> Result<T, Error> {
    let admins = || locked(&ADMINS);
    let pooled = {
        let mut pool = admins();
        pool.iter()
            .position(|(url, _)| url == server_url)
            .map(|at| pool.swap_remove(at).1)
    };
    let mut client = match pooled {
        Some(client) if !client.is_closed() => client,
        _ => connect(server_url, APPLICATION_NAME)?,
    };
    let done = work(&mut client);
    if done.is_ok() && !client.is_closed() {
        admins().push((server_url.to_owned(), client));
    }
    done
}

/// Once per process: removes what earlier runs left (old test databases and templates, but
/// `current`; spares of processes that are gone). A failure is reported and does not stop the
/// test.
fn clean_up_once(admin: &mut postgres::Client, current: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cleaned = template::remove_stale(admin, current)
            .and_then(|()| background::remove_orphaned_spares(admin));
        if let Err(e) = cleaned {
            eprintln!("migrate::testing: could not remove old test databases: {e}");
        }
    });
}

/// The rows of `sql`, as text cells.
fn rows(
    client: &mut postgres::Client,
    sql: &str,
    action: &str,
) -> Result<Vec<Vec<Option<String>>>, Error> {
    let messages = client.simple_query(sql).map_err(database_error(action))?;
    Ok(crate::runtime::catalog::rows(&messages).collect())
}

/// The first cell of the first row of `sql`.
fn value(client: &mut postgres::Client, sql: &str, action: &str) -> Result<Option<String>, Error> {
    Ok(rows(client, sql, action)?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten()))
}

/// `CREATE DATABASE name TEMPLATE template`, with the copy strategy that is fastest on the
/// server: `FILE_COPY` (PostgreSQL 15+) where `fsync` is off, as on a server kept for tests, where
/// it copies a template of 200 tables in about 23 ms against 36 ms for the default `WAL_LOG`;
/// the default where `fsync` is on, since `FILE_COPY` then waits for two checkpoints.
fn copy_template(
    admin: &mut postgres::Client,
    server_url: &str,
    name: &str,
    template: &str,
) -> Result<(), Error> {
    static FILE_COPY: Mutex<BTreeMap<String, bool>> = Mutex::new(BTreeMap::new());
    let known = locked(&FILE_COPY).get(server_url).copied();
    let file_copy = match known {
        Some(known) => known,
        None => {
            let file_copy = value(
                admin,
                "SELECT current_setting('server_version_num')::int >= 150000 \
                 AND current_setting('fsync') = 'off'",
                "reading the server's version and fsync setting",
            )?
            .is_some_and(|v| v == "t");
            locked(&FILE_COPY).insert(server_url.to_owned(), file_copy);
            file_copy
        }
    };
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}{}",
            escape_identifier(name),
            escape_identifier(template),
            if file_copy { " STRATEGY FILE_COPY" } else { "" }
        ))
        .map_err(database_error("creating a test database from the template"))
}

/// A database of one test's own, migrated: dropped when it goes out of scope, kept (and named on
/// stderr) when the test fails.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server_url: String,
    /// Drops the database when it goes out of scope: false for the handle `#[migrate::test]`
    /// passes to the test, while it keeps the owner to judge the outcome.
    owner: bool,
    /// Keeps the database when the thread panics (a failing test); not for a test that is
    /// expected to panic (`#[should_panic]`).
    keep_on_panic: bool,
}

impl TestDatabase {
    /// A new database on the server of [`server_url`], with every migration of `migrations`
    /// applied (and recorded in its history, as in production).
    pub fn create(migrations: &'static Migrations) -> Result<TestDatabase, Error> {
        let server_url = server_url()?;
        crate::runtime::outside_async_runtime(|| TestDatabase::create_on(migrations, &server_url))?
    }

    /// [`TestDatabase::create`] on the server at `server_url` (a role that may create
    /// databases), for a host that finds its test server another way.
    pub fn create_on(
        migrations: &'static Migrations,
        server_url: &str,
    ) -> Result<TestDatabase, Error> {
        crate::runtime::outside_async_runtime(|| TestDatabase::create_here(migrations, server_url))?
    }

    fn create_here(
        migrations: &'static Migrations,
        server_url: &str,
    ) -> Result<TestDatabase, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{TEST_PREFIX}{}_{}_{}",
            unix_seconds(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // Refused before anything is created on the server.
        let url = with_database(server_url, &name)?;
        with_admin(server_url, |admin| {
            clean_up_once(admin, &template::name(migrations));
            let template = template::ensure(admin, migrations, server_url)?;
            if background::take_spare(admin, server_url, &template, &name).is_some() {
                return Ok(());
            }
            match copy_template(admin, server_url, &name, &template) {
                // Removed since this process built or found it (by another's clean-up): again.
                Err(Error::Database { cause, .. }) if cause.code == "3D000" => {
                    template::forget(&template);
                    let template = template::ensure(admin, migrations, server_url)?;
                    copy_template(admin, server_url, &name, &template)
                }
                copied => copied,
            }
        })?;
        Ok(TestDatabase {
            url,
            name,
            server_url: server_url.to_owned(),
            owner: true,
            keep_on_panic: true,
        })
    }

    /// The database's name: `migrate_test_…`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection string for the database, with the server's credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new blocking connection to the database. In an `async` test, use
    /// [`TestDatabase::connect_async`].
    pub fn client(&self) -> Result<postgres::Client, Error> {
        // Its queries would start a runtime inside the test's, and abort the test binary.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingClientInAsyncTest);
        }
        connect(&self.url, APPLICATION_NAME)
    }

    /// A new connection on the caller's tokio runtime (its task is spawned there).
    #[cfg(feature = "tokio")]
    pub async fn connect_async(&self) -> Result<tokio_postgres::Client, Error> {
        crate::runtime::connect_async(&self.url, APPLICATION_NAME).await
    }

    /// Runs `sql` (a fixture: rows the test starts from) in one transaction.
    pub fn apply_fixture(&self, name: &str, sql: &str) -> Result<(), Error> {
        let url = self.url.clone();
        crate::runtime::outside_async_runtime(move || {
            let mut client = connect(&url, APPLICATION_NAME)?;
            let mut transaction = client
                .transaction()
                .map_err(database_error("starting the fixture's transaction"))?;
            transaction
                .batch_execute(sql)
                .map_err(|e| Error::Database {
                    action: format!("applying the fixture `{name}`"),
                    cause: Box::new(crate::runtime::ServerError::from_postgres(&e)),
                })?;
            transaction
                .commit()
                .map_err(database_error("committing the fixture"))
        })?
    }

    /// A handle on the same database that leaves it in place when dropped: what
    /// `#[migrate::test]` gives the test, keeping the owner to drop or keep the database by the
    /// test's outcome.
    #[doc(hidden)]
    pub fn handle(&self) -> TestDatabase {
        TestDatabase {
            name: self.name.clone(),
            url: self.url.clone(),
            server_url: self.server_url.clone(),
            owner: false,
            keep_on_panic: false,
        }
    }

    /// For a test expected to panic (`#[should_panic]`): its panic is a pass, and the database
    /// is dropped all the same.
    #[doc(hidden)]
    pub fn expect_panic(&mut self) {
        self.keep_on_panic = false;
    }

    /// Keeps the database for inspection, and says so on stderr.
    pub fn keep(mut self) {
        self.report_kept();
        self.owner = false;
    }

    fn report_kept(&self) {
        eprintln!(
            "migrate::testing: the test failed; its database {} is kept for inspection ({}); it is removed after a day",
            self.name,
            redact(&self.url)
        );
    }

    fn drop_database(&self) -> Result<(), Error> {
        with_admin(&self.server_url, |admin| {
            template::drop_database(admin, &self.name)
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        if std::thread::panicking() && self.keep_on_panic {
            self.report_kept();
            return;
        }
        // In the background, so that the next test need not wait; the process waits for it
        // before it exits.
        if background::drop_later(&self.server_url, self.name.clone()).is_ok() {
            return;
        }
        match crate::runtime::outside_async_runtime(|| self.drop_database()) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => eprintln!(
                "migrate::testing: could not drop the test database {}: {e}",
                self.name
            ),
        }
    }
}

/// What a test returned: `()`, or a `Result` whose `Err` fails the test (and keeps its database).
pub trait TestOutcome {
    fn failed(&self) -> bool;
}

impl TestOutcome for () {
    fn failed(&self) -> bool {
        false
    }
}

impl<T, E> TestOutcome for Result<T, E> {
    fn failed(&self) -> bool {
        self.is_err()
    }
}

/// Runs an `async` test's body on a runtime of its own (what `#[migrate::test]` expands to).
#[cfg(feature = "tokio")]
#[doc(hidden)]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("migrate::testing: could not start a tokio runtime for the test: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_the_test_url_then_the_database_url_and_its_absence_says_what_to_set() {
        let from = |pairs: &'static [(&str, &str)]| {
            server_url_from(move |name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(
            from(&[
                ("DATABASE_URL", "postgres://app@db/app"),
                (
                    "MIGRATE_TEST_DATABASE_URL",
                    "postgres://t@localhost/postgres"
                )
            ])
            .unwrap(),
            "postgres://t@localhost/postgres"
        );
        assert_eq!(
            from(&[
                ("DATABASE_URL", "postgres://app@db/app"),
                ("MIGRATE_TEST_DATABASE_URL", " ")
            ])
            .unwrap(),
            "postgres://app@db/app"
        );
        assert_eq!(
            from(&[]).unwrap_err().to_string(),
            "no server for test databases: neither MIGRATE_TEST_DATABASE_URL nor DATABASE_URL is set\n  help: set MIGRATE_TEST_DATABASE_URL to a server kept for tests, as a role that may create databases (postgres://user:password@localhost:5432/postgres)"
        );
    }

    #[test]
    fn a_test_database_url_keeps_the_server_and_its_credentials() {
        assert_eq!(
            with_database(
                "postgres://u:p%C3%A9@db:5433/postgres?sslmode=require",
                "migrate_test_1_2_3"
            )
            .unwrap(),
            "postgres://u:p%C3%A9@db:5433/migrate_test_1_2_3?sslmode=require"
        );
        let refused = with_database("host=db password=geheim", "x")
            .unwrap_err()
            .to_string();
        assert!(!refused.contains("geheim"), "{refused}");
    }
}
