//! The runner: applies pending migrations exactly once across replicas, through transaction-mode
//! poolers, under lock contention and across crashes.
//!
//! Protocol, per transactional migration:
//! 1. Read the history without any lock (one round trip), unless this run just applied the
//!    previous migration and knows the history's marker. Up to date: done.
//! 2. One batch: `BEGIN ISOLATION LEVEL READ COMMITTED` (whatever the server's default, so that
//!    the checks under the lock see what the previous holder committed); the local
//!    `idle_in_transaction_session_timeout`, `lock_timeout` and `statement_timeout`; a guard that
//!    takes the transaction's advisory lock and checks, by index lookups, that the history is
//!    still what was read; the statements; the history row; `COMMIT`. The migration and its row
//!    commit together or not at all. When the lock is busy the guard refuses, and the run polls
//!    again later outside any transaction (a waiter parked inside a transaction would block the
//!    holder's `CREATE INDEX CONCURRENTLY`). The lock lives and dies with the transaction, so it
//!    works through a transaction-mode pooler and is never left behind.
//!
//! A no-transaction migration holds a session advisory lock instead (direct connections only)
//! and records its progress statement by statement, so that a crash resumes where it stopped.
//! A statement the server answered with an error did not take effect: the row records it as
//! failed, and the next attempt (this run's retry, or a later run) re-runs it without proof.
//!
//! The protocol is written once, as async code over a `Session` and a `Driver`
//! (`../driver.rs`): the blocking API runs it on the `postgres` driver, whose calls complete before
//! they return, and the `*_async` API (feature `tokio`) on tokio-postgres. Whatever must reach
//! the server on every path (the ROLLBACK of an open transaction, the release of the session
//! lock) is held by a `Guard`, which sends it without waiting when the future is dropped
//! half-way.
mod errors;
mod gate;
mod lock;
mod no_transaction;
mod run;
pub(super) mod session;
mod stamp;
mod transactional;

use std::time::{Duration, Instant};

use postgres::Client;

use super::catalog::{Catalog, Dependencies};
use super::config::{Pooler, Settings, valid_identifier, valid_schema};
use super::connect::Connector;
#[cfg(feature = "tokio")]
use super::driver::Tokio;
use super::driver::{Blocking, BlockingOwned, Driver, Session, block_on};
use super::error::{Error, database_error};
use super::history;
use super::status::Status;
use crate::Migrations;
use errors::reading_the_history;
use session::Conn;
pub(crate) use session::outside_async_runtime;

/// One migration applied by this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub revision: &'static str,
    pub duration: Duration,
}

/// What a run did and where the database stands afterwards.
#[derive(Debug, Clone)]
#[must_use = "the report tells what was applied and whether the schema is up to date"]
pub struct Report {
    pub applied: Vec<Applied>,
    pub status: Status,
}

/// Applies embedded migrations. Built with small setters; every setting has a safe default.
///
/// ```ignore
/// let report = migrate::Migrator::new(&MIGRATIONS)
///     .lock_timeout(Duration::from_millis(500))
///     .run(&mut client)?;
/// ```
#[derive(Debug, Clone)]
pub struct Migrator<'m> {
    migrations: &'m Migrations,
    settings: Settings,
    /// The URL a run was given, from which long statements are watched ([`super::progress`]).
    watch_from: Option<String>,
    /// The fleet's target this migrator runs on (a tenant schema or a database), which its
    /// progress readings name.
    target: Option<String>,
}

impl<'m> Migrator<'m> {
    pub fn new(migrations: &'m Migrations) -> Migrator<'m> {
        Migrator {
            migrations,
            settings: Settings::default(),
            watch_from: None,
            target: None,
        }
    }

    /// This migrator, on the fleet's target `name`.
    pub(crate) fn on_target(self, name: &str) -> Migrator<'m> {
        Migrator {
            target: Some(name.to_owned()),
            ..self
        }
    }

    pub(crate) fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// This migrator, watching its long statements from `url` (a second connection), unless
    /// watching is off (a zero threshold): then nothing is read for it either.
    pub(crate) fn watched_from(&self, url: &str) -> Migrator<'m> {
        Migrator {
            watch_from: (!self.settings.progress_after.is_zero()).then(|| url.to_owned()),
            ..self.clone()
        }
    }

    pub fn with_settings(migrations: &'m Migrations, settings: Settings) -> Migrator<'m> {
        Migrator {
            migrations,
            settings,
            watch_from: None,
            target: None,
        }
    }

    /// How long one statement may wait for a lock before it fails and the migration is retried
    /// (default 1 s). Keeps a queued ACCESS EXCLUSIVE request from freezing the table.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.settings.lock_timeout = timeout;
        self
    }

    /// Limit for one statement (default: none, which also overrides a role's default).
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.statement_timeout = timeout;
        self
    }

    /// Total time spent waiting for the migration lock and retrying (default 10 min).
    /// `Duration::MAX` waits without limit.
    pub fn wait_budget(mut self, budget: Duration) -> Self {
        self.settings.wait_budget = budget;
        self
    }

    /// How long the server keeps the migration's session when the runner goes silent in the
    /// middle of a migration (default 1 min): a frozen or vanished client then loses its session
    /// and every lock it held, instead of keeping a table locked for hours.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// Schema of the history table (default `public`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.settings.schema = schema.into();
        self
    }

    /// Name of the history table (default `migrate_history`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.settings.table = table.into();
        self
    }

    /// Recorded in `applied_by` and sent as `application_name` on connections the runner opens.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.settings.application_name = name.into();
        self
    }

    /// Declares a transaction-mode pooler between runner and server.
    pub fn pooler(mut self, pooler: Pooler) -> Self {
        self.settings.pooler = pooler;
        self
    }

    /// The most self-contained migrations committed in one transaction (default
    /// [`DEFAULT_GROUP_LIMIT`](super::config::DEFAULT_GROUP_LIMIT)); `1` commits each on its own.
    pub fn group_limit(mut self, limit: usize) -> Self {
        self.settings.group_limit = limit;
        self
    }

    /// The migrations this migrator applies.
    pub fn migrations(&self) -> &'m Migrations {
        self.migrations
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !valid_schema(&self.settings.schema) {
            return Err(Error::InvalidConfig {
                name: "schema".to_owned(),
                value: self.settings.schema.clone(),
                reason:
                    "expected a name of at most 63 bytes without `\"`, `$` or control characters"
                        .to_owned(),
            });
        }
        if !valid_identifier(&self.settings.table) {
            return Err(Error::InvalidConfig {
                name: "history table".to_owned(),
                value: self.settings.table.clone(),
                reason: "expected letters, digits and _ (at most 63)".to_owned(),
            });
        }
        Ok(())
    }

    /// Applies what is pending on `client`. A lost connection is an error (use [`run_url`] for
    /// reconnects).
    ///
    /// [`run_url`]: Migrator::run_url
    pub fn run(&self, client: &mut Client) -> Result<Report, Error> {
        self.validate()?;
        outside_async_runtime(|| block_on(self.run_on(&Blocking, &mut Conn::Borrowed(client))))?
    }

    /// Applies what is pending on the database at `url`, reconnecting with backoff within the
    /// wait budget when the connection drops.
    pub fn run_url(&self, url: &str) -> Result<Report, Error> {
        self.validate()?;
        let connector = Connector::new(url, &self.settings.application_name)?;
        self.watched_from(url).run_with(&connector)
    }

    fn run_with(&self, connector: &Connector) -> Result<Report, Error> {
        outside_async_runtime(|| block_on(self.run_connector(&BlockingOwned, connector)))?
    }

    /// Compares the binary with the database without changing anything.
    pub fn status(&self, client: &mut Client) -> Result<Status, Error> {
        self.validate()?;
        outside_async_runtime(|| block_on(self.status_on(client)))?
    }

    /// Records `revision` and all its ancestors as applied without running them: adopting a
    /// database whose schema was created by hand or by another tool. Returns the revisions
    /// recorded now (already recorded ones are left as they are). Waits for the migration lock
    /// like [`Migrator::run`], polling outside any transaction, within the wait budget.
    pub fn stamp(&self, client: &mut Client, revision: &str) -> Result<Vec<&'static str>, Error> {
        self.validate()?;
        outside_async_runtime(|| block_on(self.stamp_on(&Blocking, client, revision)))?
    }

    /// The database's schema as its catalog describes it (tables, columns, constraints,
    /// indexes), without this migrator's history table: one side of drift detection
    /// ([`catalog::diff`](super::catalog::diff)).
    pub fn catalog(&self, client: &mut Client) -> Result<Catalog, Error> {
        self.validate()?;
        outside_async_runtime(|| {
            block_on(Catalog::read(client, &self.settings, Dependencies::Read))
        })?
        .map_err(database_error("reading the catalog"))
    }

    /// [`Migrator::run`] on a tokio-postgres client: the same protocol and guarantees, awaiting
    /// instead of blocking. A client from a pool works as it is (`&mut pooled` for a
    /// deadpool-postgres object). Dropping the future half-way leaves nothing half-applied: the
    /// open transaction is rolled back and the migration lock released as soon as the statement
    /// the server is running ends, and the client is usable again.
    #[cfg(feature = "tokio")]
    pub async fn run_async(&self, client: &mut tokio_postgres::Client) -> Result<Report, Error> {
        self.validate()?;
        self.run_on(&Tokio, &mut Conn::Borrowed(client)).await
    }

    /// [`Migrator::run_url`] on tokio: connections (TLS per `sslmode`) on the caller's runtime,
    /// reconnecting with backoff within the wait budget.
    #[cfg(feature = "tokio")]
    pub async fn run_url_async(&self, url: &str) -> Result<Report, Error> {
        self.validate()?;
        let connector = Connector::new(url, &self.settings.application_name)?;
        self.watched_from(url)
            .run_connector(&Tokio, &connector)
            .await
    }

    /// [`Migrator::status`] on a tokio-postgres client.
    #[cfg(feature = "tokio")]
    pub async fn status_async(&self, client: &mut tokio_postgres::Client) -> Result<Status, Error> {
        self.validate()?;
        self.status_on(client).await
    }

    /// [`Migrator::stamp`] on a tokio-postgres client.
    #[cfg(feature = "tokio")]
    pub async fn stamp_async(
        &self,
        client: &mut tokio_postgres::Client,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error> {
        self.validate()?;
        self.stamp_on(&Tokio, client, revision).await
    }

    pub(crate) async fn status_on<S: Session>(&self, client: &mut S) -> Result<Status, Error> {
        let mut status = self.history_status_on(client).await?;
        self.compare_with_snapshot(client, &mut status).await?;
        Ok(status)
    }

    /// The status from the history alone, without the snapshot comparison: a tenant schema's,
    /// whose database holds the other tenants too.
    pub(crate) async fn history_status_on<S: Session>(
        &self,
        client: &mut S,
    ) -> Result<Status, Error> {
        let rows = history::read(client, &self.settings)
            .await
            .map_err(reading_the_history)?;
        Ok(Status::compute(self.migrations, rows.as_deref()))
    }

    /// [`Migrator::history_status_on`] on a blocking client.
    pub(crate) fn history_status(&self, client: &mut Client) -> Result<Status, Error> {
        self.validate()?;
        outside_async_runtime(|| block_on(self.history_status_on(client)))?
    }

    /// With a schema snapshot embedded and the database at the binary's head, compares the live
    /// catalog with it (one catalog read) and records the differences in `status`.
    pub(crate) async fn compare_with_snapshot<S: Session>(
        &self,
        client: &mut S,
        status: &mut Status,
    ) -> Result<(), Error> {
        let Some(expected) = self.migrations.snapshot().and_then(Catalog::from_snapshot) else {
            return Ok(());
        };
        if !status.is_up_to_date() || !status.ahead.is_empty() {
            return Ok(());
        }
        // Only the differences are reported here, not a fix's order: no dependencies.
        let actual = Catalog::read(client, &self.settings, Dependencies::Skip)
            .await
            .map_err(database_error("reading the catalog"))?;
        status.schema_drift = Some(super::catalog::diff(&expected, &actual));
        Ok(())
    }

    /// Runs on connections the runner opens itself, and opens again when they are lost.
    pub(crate) async fn run_connector<D: Driver>(
        &self,
        driver: &D,
        connector: &Connector,
    ) -> Result<Report, Error> {
        self.run_on(driver, &mut owned(connector)).await
    }
}

/// A connection the runner opens itself, and opens again when it is lost.
fn owned<S>(connector: &Connector) -> Conn<'_, S> {
    Conn::Owned {
        connector,
        client: None,
        last_error: String::new(),
        started: Instant::now(),
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// A service spawns the async runner on a multi-threaded runtime: its futures must be Send.
    #[test]
    fn the_async_futures_can_be_spawned() {
        let migrator = Migrator::new(&crate::runtime::status::tests::SET);
        let connector = Connector::new("postgres://u@db/app", "migrate").unwrap();
        assert_send(&migrator.run_connector(&Tokio, &connector));
        assert_send(&migrator.run_url_async("postgres://u@db/app"));
    }
}
