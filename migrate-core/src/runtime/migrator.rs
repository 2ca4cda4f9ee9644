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
//! (`driver.rs`): the blocking API runs it on the `postgres` driver, whose calls complete before
//! they return, and the `*_async` API (feature `tokio`) on tokio-postgres. Whatever must reach
//! the server on every path (the ROLLBACK of an open transaction, the release of the session
//! lock) is held by a `Guard`, which sends it without waiting when the future is dropped
//! half-way.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use postgres_protocol::escape::escape_literal;
use sha2::{Digest, Sha256};

use super::catalog::Catalog;
use super::config::{Pooler, Settings, valid_identifier};
use super::connect::Connector;
#[cfg(feature = "tokio")]
use super::driver::Tokio;
use super::driver::{BatchError, Blocking, BlockingOwned, Driver, Session, block_on};
use super::error::{Error, ServerError, database_error};
use super::history::{self, HistoryDigest, HistoryRow, RowState};
use super::status::Status;
use crate::{Migration, Migrations, Statement};

/// A status and the history marker it was computed from (read with the history, or right after
/// the run's own insert).
#[derive(Debug)]
struct KnownHistory {
    status: Status,
    fingerprint: String,
}

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
}

enum Step {
    Done(Status),
    Applied,
    Busy,
    /// The history changed after it was read: read it again.
    Stale,
    /// Migrations committed together failed, and were rolled back: apply them (and the rest
    /// of the run) one transaction each, which reports or retries the failure as usual.
    Ungroup,
}

/// What one step of a migration transaction's batch is.
#[derive(Debug, Clone, Copy)]
enum BatchStep {
    Guard,
    /// The migration's statement with this index.
    Statement(&'static Migration, usize),
    /// The history row of a migration committed with others.
    Record,
    /// The last history row and COMMIT.
    Finish,
}

/// How every transaction that takes the migration lock begins: read committed whatever the
/// server's default, so that what it checks under the lock sees what the previous holder
/// committed.
const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The guard of a transactional migration refuses by failing to read one of these texts as an
/// integer (SQLSTATE 22P02, the text in the message). Plain SQL has no RAISE; a `DO` block
/// would, but PL/pgSQL compiles it again for every migration, which cost about a fifth of a
/// small migration's time on the server.
const GUARD_BUSY: &str = "migrate guard: another process holds the migration lock";
const GUARD_STALE: &str = "migrate guard: the history changed since it was read";

/// [`GUARD_BUSY`] or [`GUARD_STALE`] when `error` is the guard's refusal.
fn guard_refusal(error: &postgres::Error) -> Option<&'static str> {
    let error = error.as_db_error()?;
    if *error.code() != postgres::error::SqlState::INVALID_TEXT_REPRESENTATION {
        return None;
    }
    [GUARD_BUSY, GUARD_STALE]
        .into_iter()
        .find(|refusal| error.message().contains(refusal))
}

enum StepError {
    /// Lock timeout, deadlock, serialization failure: roll back and retry the migration.
    Retry(String),
    /// The connection is gone: reconnect and re-read the history (what was sent may have
    /// committed).
    Connection(String),
    Fatal(Error),
}

fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(e.code(), Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// The driver's texts for errors of the transport (socket, TLS, protocol framing, login). The
/// driver shows its error kind only through `Display`; every other error without a SQLSTATE is
/// the client's own (encoding a NUL byte, decoding a value) on a connection that still works.
const TRANSPORT_ERRORS: [&str; 6] = [
    "error communicating with the server",
    "unexpected message from server",
    "error performing TLS handshake",
    "error parsing response from server",
    "timeout waiting for server",
    "error connecting to server",
];

/// Whether the connection is gone, so that what was sent may or may not have taken effect.
/// Only then does the runner reconnect and re-read; a client-side error is fatal at once.
fn is_connection_loss(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code == "57P01" || code == "57P02" || code == "57P03"
        }
        None => e.as_db_error().is_none() && TRANSPORT_ERRORS.contains(&e.to_string().as_str()),
    }
}

fn classify(action: &str, e: postgres::Error) -> StepError {
    if is_retryable(&e) {
        StepError::Retry(format!("{action}: {}", ServerError::from_postgres(&e)))
    } else if is_connection_loss(&e) {
        StepError::Connection(format!("{action}: {}", ServerError::from_postgres(&e)))
    } else {
        StepError::Fatal(Error::Database {
            action: action.to_owned(),
            cause: Box::new(ServerError::from_postgres(&e)),
        })
    }
}

fn statement_error(migration: &Migration, statement: &Statement, e: postgres::Error) -> StepError {
    if is_retryable(&e) || is_connection_loss(&e) {
        return classify(
            &format!(
                "migration {} at {}:{}",
                migration.revision(),
                migration.path(),
                statement.line
            ),
            e,
        );
    }
    StepError::Fatal(Error::Migration {
        revision: migration.revision().to_owned(),
        path: migration.path().to_owned(),
        line: statement.line,
        statement: one_line(migration.statement_sql(statement)),
        cause: Box::new(ServerError::from_postgres(&e)),
    })
}

/// A statement on one line for an error message.
fn one_line(sql: &str) -> String {
    crate::analysis::source::one_line(sql, 200)
}

/// A timeout as PostgreSQL takes it: whole milliseconds, at most `i32::MAX` (about 24.8 days);
/// longer settings saturate instead of being refused by the server.
fn pg_millis(d: Duration) -> u128 {
    d.as_millis().min(i32::MAX as u128)
}

/// `None` is no limit (0 for PostgreSQL).
fn millis(d: Option<Duration>) -> u128 {
    d.map_or(0, pg_millis)
}

/// Runs a blocking call of the sync API where the `postgres` driver can run it. The driver
/// blocks on a runtime of its own and panics on a thread that already runs inside a tokio
/// runtime; tokio does not say whether the current thread may block (a `spawn_blocking` thread
/// may, an executor thread may not), so with a runtime around the call always runs on a helper
/// thread outside it, and the caller waits for it.
pub(crate) fn outside_async_runtime<T: Send>(call: impl FnOnce() -> T + Send) -> Result<T, Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(call());
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("migrate-blocking".to_owned())
            .spawn_scoped(scope, call)
            .map_err(|e| Error::Database {
                action: "starting a thread for a blocking call".to_owned(),
                cause: Box::new(ServerError {
                    code: String::new(),
                    message: e.to_string(),
                    detail: None,
                    hint: None,
                }),
            })?;
        Ok(helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// The instant the wait budget ends; `None` when it is too long to be represented (no limit).
fn deadline_after(start: Instant, budget: Duration) -> Option<Instant> {
    start.checked_add(budget)
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    })
}

/// Why a replica waits while another one migrates.
const LOCK_BUSY: &str = "another process holds the migration lock";

/// The longest wait between two retries after an error.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two polls of a busy migration lock.
const LOCK_POLL_CAP: Duration = Duration::from_millis(250);

/// Jittered exponential backoff: 100 ms doubling to 5 s, each delay between 50 % and 100 %.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new() -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Backoff {
            attempt: 0,
            seed: u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
    fn next_delay(&mut self) -> Duration {
        let cap = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        // xorshift64: jitter only, no need for a cryptographic generator.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_millis(cap / 2 + self.seed % (cap / 2 + 1))
    }
}

/// Logs one applied migration and adds it to the run's report.
fn record_applied(
    applied: &mut Vec<Applied>,
    migration: &'static Migration,
    elapsed: Duration,
    mode: &str,
) -> Step {
    log::info!(
        "applied {} ({}{mode}) in {} ms",
        migration.revision(),
        migration.path(),
        elapsed.as_millis()
    );
    applied.push(Applied {
        revision: migration.revision(),
        duration: elapsed,
    });
    Step::Applied
}

/// SQL that must reach the server on every path once it is needed (a ROLLBACK, the release of
/// the session lock): sent by the normal path and awaited there, or, when the protocol's future
/// is dropped half-way (an error before it, a cancelled task), sent without waiting on drop.
struct Guard<'a, S: Session> {
    client: &'a mut S,
    on_drop: Option<String>,
}

impl<'a, S: Session> Guard<'a, S> {
    fn new(client: &'a mut S, on_drop: impl Into<String>) -> Guard<'a, S> {
        Guard {
            client,
            on_drop: Some(on_drop.into()),
        }
    }

    /// Sends the final statements (ending with COMMIT or ROLLBACK). When they fail (the server
    /// stops a batch at its first error, so the COMMIT never ran), the guard still sends its SQL.
    async fn finish(mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, postgres::Error> {
        let messages = self.client.simple_query(sql).await?;
        self.on_drop = None;
        Ok(messages)
    }

    /// The statements that end the guard's need ran already (a batch that ended in COMMIT).
    fn done(mut self) {
        self.on_drop = None;
    }

    /// Sends the guard's own SQL now and waits for it; its outcome does not matter (a lost
    /// connection releases everything on the server's side).
    async fn release(mut self) {
        if let Some(sql) = self.on_drop.take() {
            let _ = self.client.batch_execute(&sql).await;
        }
    }
}

impl<S: Session> Drop for Guard<'_, S> {
    fn drop(&mut self) {
        if let Some(sql) = self.on_drop.take() {
            self.client.send_without_waiting(&sql);
        }
    }
}

/// A connection the runner borrows (no reconnect) or owns (reconnects on loss).
enum Conn<'a, S> {
    Borrowed(&'a mut S),
    Owned {
        connector: &'a Connector,
        client: Option<S>,
        last_error: String,
        started: Instant,
    },
}

impl<S: Session> Conn<'_, S> {
    /// The connection, opened now when there is none. When it opens one, it runs `meanwhile`
    /// during the login and returns its result; otherwise `meanwhile` does not run.
    async fn get_while<D: Driver<Session = S>, T: Send>(
        &mut self,
        driver: &D,
        meanwhile: impl FnOnce() -> T + Send,
    ) -> Result<(&mut S, Option<T>), StepError> {
        match self {
            Conn::Borrowed(client) => Ok((client, None)),
            Conn::Owned {
                connector,
                client,
                last_error,
                started,
            } => {
                if client.as_ref().is_some_and(S::is_closed) {
                    *client = None;
                }
                let mut done = None;
                if client.is_none() {
                    let (connected, meanwhile_done) =
                        driver.connect_while(connector, meanwhile).await;
                    done = meanwhile_done;
                    match connected {
                        Ok(new) => *client = Some(new),
                        Err(e) => {
                            *last_error = e.to_string();
                            // A refused login or a missing database will not fix itself: fail now.
                            let code = e.code().unwrap_or("");
                            if code.starts_with("28") || code == "3D000" {
                                return Err(StepError::Fatal(
                                    connector.failed(started.elapsed(), &last_error),
                                ));
                            }
                            return Err(StepError::Connection(format!(
                                "connecting to {}: {last_error}",
                                connector.display()
                            )));
                        }
                    }
                }
                match client.as_mut() {
                    Some(client) => Ok((client, done)),
                    None => Err(StepError::Connection("no connection".to_owned())),
                }
            }
        }
    }

    async fn get<D: Driver<Session = S>>(&mut self, driver: &D) -> Result<&mut S, StepError> {
        Ok(self.get_while(driver, || ()).await?.0)
    }

    fn lost(&mut self) -> bool {
        match self {
            Conn::Borrowed(_) => false,
            Conn::Owned { client, .. } => {
                *client = None;
                true
            }
        }
    }
}

/// The error of a status read.
fn reading_the_history(e: postgres::Error) -> Error {
    Error::Database {
        action: "reading the history".to_owned(),
        cause: Box::new(ServerError::from_postgres(&e)),
    }
}

impl<'m> Migrator<'m> {
    pub fn new(migrations: &'m Migrations) -> Migrator<'m> {
        Migrator {
            migrations,
            settings: Settings::default(),
        }
    }

    pub fn with_settings(migrations: &'m Migrations, settings: Settings) -> Migrator<'m> {
        Migrator {
            migrations,
            settings,
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
        for (name, value) in [
            ("schema", &self.settings.schema),
            ("history table", &self.settings.table),
        ] {
            if !valid_identifier(value) {
                return Err(Error::InvalidConfig {
                    name: name.to_owned(),
                    value: value.clone(),
                    reason: "expected letters, digits and _ (at most 63)".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The advisory lock key: one per history table, so two services sharing a database but not
    /// a history table do not wait for each other. An operator finds the holder with
    /// `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = key >> 32 AND objid = key & x'FFFFFFFF'`.
    pub fn lock_key(&self) -> i64 {
        let digest = Sha256::digest(
            format!("migrate:{}.{}", self.settings.schema, self.settings.table).as_bytes(),
        );
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
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
        self.run_with(&connector)
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
        outside_async_runtime(|| block_on(Catalog::read(client, &self.settings)))?
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
        self.run_connector(&Tokio, &connector).await
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
        let rows = history::read(client, &self.settings)
            .await
            .map_err(reading_the_history)?;
        let mut status = Status::compute(self.migrations, rows.as_deref());
        self.compare_with_snapshot(client, &mut status).await?;
        Ok(status)
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
        let actual = Catalog::read(client, &self.settings)
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

    async fn run_on<D: Driver>(
        &self,
        driver: &D,
        conn: &mut Conn<'_, D::Session>,
    ) -> Result<Report, Error> {
        let started = Instant::now();
        let deadline = deadline_after(started, self.settings.wait_budget);
        let mut applied = Vec::new();
        let mut backoff = Backoff::new();
        let mut known = None;
        let mut grouping = self.settings.group_limit > 1;
        loop {
            let outcome = self
                .step(driver, conn, &mut applied, &mut known, grouping)
                .await;
            let mut poll_cap = MAX_BACKOFF;
            let reason = match outcome {
                Ok(Step::Done(status)) => return Ok(Report { applied, status }),
                Ok(Step::Applied) => {
                    backoff.reset();
                    continue;
                }
                // Another process changed the history between the read and the lock: read it
                // again at once.
                Ok(Step::Stale) => continue,
                Ok(Step::Ungroup) => {
                    grouping = false;
                    continue;
                }
                Ok(Step::Busy) => {
                    // The holder is working: poll often, so replicas finish soon after it.
                    poll_cap = LOCK_POLL_CAP;
                    LOCK_BUSY.to_owned()
                }
                Err(StepError::Retry(reason)) => {
                    log::warn!("{reason}; rolled back, retrying");
                    reason
                }
                Err(StepError::Connection(reason)) => {
                    if !conn.lost() {
                        return Err(Error::Database {
                            action: "migrating".to_owned(),
                            cause: Box::new(ServerError {
                                code: String::new(),
                                message: reason,
                                detail: None,
                                hint: None,
                            }),
                        });
                    }
                    log::warn!("{reason}; reconnecting");
                    reason
                }
                Err(StepError::Fatal(error)) => return Err(error),
            };
            // The whole budget is used: the last sleep is cut to what remains and one more
            // attempt is made at the deadline.
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                if let Conn::Owned {
                    connector,
                    client: None,
                    last_error,
                    ..
                } = conn
                    && applied.is_empty()
                    && !last_error.is_empty()
                {
                    return Err(connector.failed(started.elapsed(), &last_error));
                }
                let reason = match conn.get(driver).await {
                    Ok(client) if reason == LOCK_BUSY => self.busy_reason(client).await,
                    _ => reason,
                };
                return Err(Error::WaitBudgetExhausted {
                    waited: started.elapsed(),
                    reason,
                });
            }
            let left = deadline.map_or(Duration::MAX, |deadline| deadline - now);
            driver
                .sleep(backoff.next_delay().min(poll_cap).min(left))
                .await;
        }
    }

    /// [`LOCK_BUSY`], naming the holder when it can be found.
    async fn busy_reason<S: Session>(&self, client: &mut S) -> String {
        match self.lock_holder(client).await {
            Some(holder) => format!("{LOCK_BUSY} ({holder})"),
            None => LOCK_BUSY.to_owned(),
        }
    }

    /// `BEGIN …; SELECT pg_try_advisory_xact_lock(k)`: [`BEGIN_READ_COMMITTED`], and the idle
    /// timeout covering the whole transaction, from before the lock is taken. (A transactional
    /// migration takes the lock in its guard instead: [`Migrator::guarded_begin_sql`].)
    fn lock_sql(&self) -> String {
        format!(
            "{BEGIN_READ_COMMITTED}; SET LOCAL idle_in_transaction_session_timeout = '{}ms'; SELECT pg_try_advisory_xact_lock({})",
            pg_millis(self.settings.idle_timeout),
            self.lock_key()
        )
    }

    /// Who holds the migration lock, from pg_locks and pg_stat_activity.
    async fn lock_holder<S: Session>(&self, client: &mut S) -> Option<String> {
        let key = self.lock_key() as u64;
        let query = format!(
            "SELECT a.pid::text || ' (application_name ' || quote_literal(coalesce(a.application_name, '')) || ', state ' || coalesce(a.state, '?') || ', since ' || coalesce(a.xact_start, a.backend_start)::text || ')' FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 LIMIT 1",
            key >> 32,
            key & 0xFFFF_FFFF
        );
        let messages = client.simple_query(&query).await.ok()?;
        first_value(&messages).map(|holder| format!("held by pid {holder}"))
    }

    /// One migration, or the finding that there is nothing (left) to do.
    ///
    /// Without a `known` history (the run's first step, or after a wait or a retry), the history
    /// is read without any lock: one round trip, and all of it when nothing is pending. The next
    /// transactional migration then goes in one more round trip ([`Migrator::apply_transactional`]),
    /// whose guard proves under the lock that the history is still what was read. Right after
    /// this run applied a migration, `known` holds the status it left and the history's marker
    /// read under the lock after its insert, so the next migration needs no read at all: the work
    /// per migration does not grow with the history.
    async fn step<D: Driver>(
        &self,
        driver: &D,
        conn: &mut Conn<'_, D::Session>,
        applied: &mut Vec<Applied>,
        known: &mut Option<KnownHistory>,
        grouping: bool,
    ) -> Result<Step, StepError> {
        // A first start with nothing to do returns this status: built while the connection's
        // login is under way, it costs the start no time.
        let first = known.is_none();
        let (client, all_applied) = conn
            .get_while(driver, || {
                first.then(|| Status::all_applied(self.migrations))
            })
            .await?;
        let current = match known.take() {
            Some(current) => current,
            None => {
                if self.digest_is_current(client).await? {
                    let status = all_applied
                        .flatten()
                        .unwrap_or_else(|| Status::all_applied(self.migrations));
                    return Ok(Step::Done(status));
                }
                let rows = match history::read(client, &self.settings)
                    .await
                    .map_err(|e| classify("reading the history", e))?
                {
                    Some(rows) => rows,
                    None => match self.create_history_table(client).await? {
                        Some(rows) => rows,
                        None => return Ok(Step::Busy),
                    },
                };
                let status = Status::compute(self.migrations, Some(&rows));
                status.check().map_err(StepError::Fatal)?;
                KnownHistory {
                    fingerprint: history::fingerprint_of(&rows),
                    status,
                }
            }
        };
        let Some(next) = current.status.next() else {
            if current.status.is_exactly_applied() {
                self.record_digest(client).await;
            }
            return Ok(Step::Done(current.status));
        };
        if !next.no_transaction() {
            let group = self.group_from(&current.status, grouping);
            return self
                .apply_transactional(client, current, &group, applied, known)
                .await;
        }
        if self.settings.pooler == Pooler::Transaction {
            return Err(StepError::Fatal(Error::NoTransactionThroughPooler {
                revision: next.revision().to_owned(),
                path: next.path().to_owned(),
            }));
        }
        self.apply_no_transaction(client, next, applied).await
    }

    /// Whether the history's digest is this binary's: the history is exactly its migrations,
    /// all applied, and nothing needs reading ([`HistoryDigest`]). A digest that cannot be read
    /// (not created yet, not readable by this role) only means the history must be read.
    async fn digest_is_current<S: Session>(&self, client: &mut S) -> Result<bool, StepError> {
        match client
            .simple_query(&history::digest_read_sql(&self.settings))
            .await
        {
            Ok(messages) => Ok(HistoryDigest::of(self.migrations).is_in(&messages)),
            Err(e) if e.code().is_some() => Ok(false),
            Err(e) => Err(classify("reading the history's digest", e)),
        }
    }

    /// Records the history's digest once a run found it to be exactly the binary's migrations,
    /// so that the next start reads the digest alone. Best effort: when it cannot (another
    /// process is writing the history, or this role may not create the objects), the next
    /// start reads the history, as it would without a digest.
    async fn record_digest<S: Session>(&self, client: &mut S) {
        let digest = HistoryDigest::of(self.migrations);
        let tx = Guard::new(client, "ROLLBACK");
        match tx
            .finish(&history::digest_write_sql(&self.settings, &digest))
            .await
        {
            Ok(_) => {}
            Err(e) => log::debug!("the history's digest was not recorded: {e}"),
        }
    }

    /// Creates the history table under the migration lock (two replicas creating it at once
    /// would collide in the catalog) and returns its rows; `None` when the lock is busy.
    async fn create_history_table<S: Session>(
        &self,
        client: &mut S,
    ) -> Result<Option<Vec<HistoryRow>>, StepError> {
        let tx = Guard::new(client, "ROLLBACK");
        let granted = tx
            .client
            .simple_query(&self.lock_sql())
            .await
            .map_err(|e| classify("taking the migration lock", e))?;
        if first_value(&granted).as_deref() != Some("t") {
            tx.release().await;
            return Ok(None);
        }
        let created = tx
            .finish(&format!(
                "{}; {}; COMMIT",
                history::create_sql(&self.settings),
                history::select_sql(&self.settings)
            ))
            .await
            .map_err(|e| classify("creating the history table", e))?;
        Ok(Some(history::rows(&created)))
    }

    /// The pending migrations the next transaction applies: the first, and when it is
    /// self-contained, the self-contained ones right after it with the same timeouts (up to the
    /// group limit). A prefix of the pending list, in order, so every parent of one of them is
    /// applied already or comes before it in the group.
    fn group_from(&self, status: &Status, grouping: bool) -> Vec<&'static Migration> {
        let Some(first) = status.next() else {
            return Vec::new();
        };
        if !grouping || !first.self_contained() {
            return vec![first];
        }
        status
            .pending
            .iter()
            .copied()
            .take_while(|m| {
                m.self_contained()
                    && m.lock_timeout() == first.lock_timeout()
                    && m.statement_timeout() == first.statement_timeout()
            })
            .take(self.settings.group_limit.max(1))
            .collect()
    }

    /// The first step of a transaction applying `group`: `BEGIN`, the local settings, and the
    /// guard that fails with [`GUARD_BUSY`] when another process holds the migration lock, and
    /// [`GUARD_STALE`] when one of the group is applied already, a parent from outside the
    /// group is not, or the history's marker moved away from `expected_marker`.
    fn guarded_begin_sql(&self, group: &[&'static Migration], expected_marker: &str) -> String {
        let table = history::qualified(&self.settings);
        let first = group.first();
        let lock_timeout = first
            .and_then(|m| m.lock_timeout())
            .unwrap_or(self.settings.lock_timeout);
        let statement_timeout = first
            .and_then(|m| m.statement_timeout())
            .or(self.settings.statement_timeout);
        let members: BTreeSet<&str> = group.iter().map(|m| m.revision()).collect();
        let outside_parents: BTreeSet<&str> = group
            .iter()
            .flat_map(|m| m.parents().iter().copied())
            .filter(|p| !members.contains(p))
            .collect();
        let quoted = |revisions: &BTreeSet<&str>| -> Vec<String> {
            revisions.iter().map(|r| escape_literal(r)).collect()
        };
        let parents_applied = if outside_parents.is_empty() {
            String::new()
        } else {
            let list = quoted(&outside_parents);
            format!(
                " OR (SELECT count(*) FROM {table} WHERE revision IN ({}) AND state = 'applied') <> {}",
                list.join(", "),
                list.len()
            )
        };
        // Two statements after BEGIN. The first takes the lock, after `set_config(…, true)`
        // (`SET LOCAL`; the select list is evaluated in order, so the settings hold from then on).
        // The checks need a statement of their own: a statement reads the snapshot taken when
        // it started, so checks in the statement that takes the lock would miss what the
        // previous holder committed between that start and the lock. `CASE … END::integer` is
        // cast at run time: the planner folds no branch of a CASE whose conditions are not
        // constants.
        format!(
            "{BEGIN_READ_COMMITTED}; SELECT \
                 set_config('idle_in_transaction_session_timeout', '{idle}ms', true), \
                 set_config('lock_timeout', '{lock}ms', true), \
                 set_config('statement_timeout', '{statement}ms', true), \
                 CASE WHEN NOT pg_try_advisory_xact_lock({key}) THEN '{GUARD_BUSY}' END::integer; \
                 SELECT CASE WHEN EXISTS (SELECT 1 FROM {table} WHERE revision IN ({revisions})){parents_applied} OR {marker_changed} \
                 THEN '{GUARD_STALE}' END::integer",
            idle = pg_millis(self.settings.idle_timeout),
            lock = pg_millis(lock_timeout),
            statement = millis(statement_timeout),
            key = self.lock_key(),
            revisions = quoted(&members).join(", "),
            marker_changed = history::marker_changed_sql(&self.settings, expected_marker),
        )
    }

    /// A transactional migration, or a group of self-contained ones ([`Migrator::group_from`]),
    /// in one round trip on the blocking drivers, two on the async one (where the driver
    /// pipelines):
    ///
    /// ```text
    /// BEGIN ISOLATION LEVEL READ COMMITTED; SELECT <local idle_in_transaction_session_timeout,
    ///   lock_timeout, statement_timeout>, <the lock>; SELECT <the checks>   -- step 0
    /// <each of the migration's statements>               -- one step each, sent with step 0
    /// (in a group: the migration's history row, then the next migration's statements)
    /// INSERT <history row> RETURNING <marker>; COMMIT    -- the last step
    /// ```
    ///
    /// The guard takes the transaction's advisory lock, and proves under it that no migration
    /// of the transaction is applied, that their parents are, and that the history's marker
    /// (its latest `applied_at`) is the one the status was computed from; otherwise it raises,
    /// and nothing of the batch runs. Each of these checks is an index lookup, so the cost
    /// stays the same as the history grows. The migrations and their rows commit together or
    /// not at all: after an error the server skips the rest of the failed step and fails every
    /// later one ("current transaction is aborted"), so the last step's COMMIT runs only when
    /// everything before it succeeded.
    ///
    /// The last step goes with the others when the session's calls always run to their end (the
    /// blocking drivers). On the async driver it is sent only once every statement succeeded: a
    /// future dropped half-way (a cancelled task, a timeout around the run) must leave nothing
    /// applied, and a COMMIT already queued on the connection would still run.
    ///
    /// A group that fails anywhere but in its guard is rolled back and applied again one
    /// migration per transaction ([`Step::Ungroup`]), so that what failed is reported, or
    /// retried, exactly as it would have been on its own.
    async fn apply_transactional<S: Session>(
        &self,
        client: &mut S,
        current: KnownHistory,
        group: &[&'static Migration],
        applied: &mut Vec<Applied>,
        known: &mut Option<KnownHistory>,
    ) -> Result<Step, StepError> {
        let Some((last, earlier)) = group.split_last() else {
            return Ok(Step::Done(current.status));
        };
        let grouped = !earlier.is_empty();
        let open = self.guarded_begin_sql(group, &current.fingerprint);
        let started = Instant::now();
        let applied_by = history::applied_by(&self.settings);
        // Where the server starts timing each migration of a group: BEGIN for the first, the
        // previous one's row for the others.
        let since = |position: usize| match position.checked_sub(1).and_then(|p| group.get(p)) {
            Some(before) => history::recorded_at_sql(&self.settings, before),
            None => "now()".to_owned(),
        };
        // What each step is, to name what failed.
        let mut steps: Vec<(String, BatchStep)> = vec![(open, BatchStep::Guard)];
        for (position, migration) in group.iter().copied().enumerate() {
            steps.extend(
                migration
                    .statements()
                    .iter()
                    .enumerate()
                    .map(|(i, statement)| {
                        (
                            migration.statement_sql(statement).to_owned(),
                            BatchStep::Statement(migration, i),
                        )
                    }),
            );
            if position < earlier.len() {
                let record = history::insert_grouped_sql(
                    &self.settings,
                    migration,
                    &since(position),
                    &applied_by,
                );
                steps.push((record, BatchStep::Record));
            }
        }
        // The execution time recorded is the server's own.
        let (record, returning) = if grouped {
            (
                history::insert_grouped_sql(
                    &self.settings,
                    last,
                    &since(earlier.len()),
                    &applied_by,
                ),
                history::returning_group_sql(&self.settings, earlier),
            )
        } else {
            (
                history::insert_sql(
                    &self.settings,
                    last,
                    RowState::Applied,
                    &history::elapsed_ms_sql(),
                    &applied_by,
                ),
                history::returning_fingerprint_sql(&self.settings),
            )
        };
        let finish = format!("{record} {returning}; COMMIT");
        let tx = Guard::new(client, "ROLLBACK");
        let in_one_trip = tx.client.runs_to_completion();
        if in_one_trip {
            steps.push((finish.clone(), BatchStep::Finish));
        }
        let texts: Vec<&str> = steps.iter().map(|(sql, _)| sql.as_str()).collect();
        let answer = match tx.client.run_batch(&texts).await {
            Ok(answer) => answer,
            Err(BatchError { step, error }) => {
                // Inside the transaction: roll it back before anything else. (A lost connection
                // leaves the outcome of a COMMIT already sent unknown; classify sends the run to
                // reconnect and read the history again.)
                tx.release().await;
                let failed = steps.get(step).map_or(BatchStep::Finish, |(_, kind)| *kind);
                return match failed {
                    BatchStep::Guard if guard_refusal(&error) == Some(GUARD_BUSY) => Ok(Step::Busy),
                    BatchStep::Guard if guard_refusal(&error) == Some(GUARD_STALE) => {
                        Ok(Step::Stale)
                    }
                    BatchStep::Guard => Err(classify("taking the migration lock", error)),
                    _ if grouped && !is_connection_loss(&error) => {
                        log::debug!(
                            "{} migrations committed together failed ({}); applying them one per transaction",
                            group.len(),
                            ServerError::from_postgres(&error)
                        );
                        Ok(Step::Ungroup)
                    }
                    BatchStep::Statement(migration, i) => match migration.statements().get(i) {
                        Some(statement) => Err(statement_error(migration, statement, error)),
                        None => Err(classify(
                            &format!("migration {}", migration.revision()),
                            error,
                        )),
                    },
                    BatchStep::Record | BatchStep::Finish => {
                        Err(classify("recording the migration and COMMIT", error))
                    }
                };
            }
        };
        let committed = if in_one_trip {
            tx.done();
            answer
        } else {
            // Sent only once every statement succeeded, and only while the run goes on: a
            // future dropped before this point leaves the transaction to the guard's ROLLBACK.
            match tx.finish(&finish).await {
                Ok(committed) => committed,
                Err(error) if grouped && !is_connection_loss(&error) => return Ok(Step::Ungroup),
                Err(error) => return Err(classify("recording the migration and COMMIT", error)),
            }
        };
        let elapsed = started.elapsed();
        // Each migration's own time, as the server measured it in a group; the batch's time
        // for one on its own.
        let times: Vec<Duration> = match history::group_execution_ms(&committed, group.len()) {
            Some(ms) if grouped => ms
                .into_iter()
                .map(|ms| Duration::from_millis(ms.max(0).unsigned_abs()))
                .collect(),
            _ => vec![elapsed; group.len()],
        };
        if let Some(fingerprint) = history::fingerprint(&committed) {
            let mut status = current.status;
            status.initialized = true;
            status
                .pending
                .retain(|m| !group.iter().any(|g| g.revision() == m.revision()));
            for (migration, time) in group.iter().zip(&times) {
                status.applied.push(history::applied_row(
                    migration,
                    time.as_millis() as i64,
                    applied_by.clone(),
                ));
            }
            *known = Some(KnownHistory {
                status,
                fingerprint,
            });
        }
        let mode = if grouped {
            format!(", one of {} in one transaction", group.len())
        } else {
            String::new()
        };
        for (migration, time) in group.iter().zip(times) {
            record_applied(applied, migration, time, &mode);
        }
        Ok(Step::Applied)
    }

    async fn apply_no_transaction<S: Session>(
        &self,
        client: &mut S,
        next: &'static Migration,
        applied: &mut Vec<Applied>,
    ) -> Result<Step, StepError> {
        let key = self.lock_key();
        let granted = client
            .simple_query(&format!(
                "SELECT pg_try_advisory_lock({key}), current_setting('server_version_num')::int >= 140000"
            ))
            .await
            .map_err(|e| classify("taking the migration lock", e))?;
        let row = granted.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                Some((row.get(0) == Some("t"), row.get(1) == Some("t")))
            }
            _ => None,
        });
        let Some((true, idle_session_timeout)) = row else {
            return Ok(Step::Busy);
        };
        // Released on every path, a dropped future included; a lost connection releases it on
        // the server's side.
        let reset_idle = if idle_session_timeout {
            "RESET idle_session_timeout; "
        } else {
            ""
        };
        let session_lock = Guard::new(
            client,
            format!(
                "SELECT pg_advisory_unlock({key}); {reset_idle}RESET lock_timeout; RESET statement_timeout"
            ),
        );
        let result = self
            .apply_no_transaction_locked(
                &mut *session_lock.client,
                next,
                applied,
                idle_session_timeout,
            )
            .await;
        session_lock.release().await;
        result
    }

    async fn apply_no_transaction_locked<S: Session>(
        &self,
        client: &mut S,
        next: &'static Migration,
        applied: &mut Vec<Applied>,
        idle_session_timeout: bool,
    ) -> Result<Step, StepError> {
        let table = history::qualified(&self.settings);
        let revision = escape_literal(next.revision());
        let rows = history::read(client, &self.settings)
            .await
            .map_err(|e| classify("reading the history", e))?
            .unwrap_or_default();
        let row: Option<&HistoryRow> = rows.iter().find(|r| r.revision == next.revision());
        if row.is_some_and(|r| r.state == RowState::Applied) {
            // Another replica finished it between our transaction and the session lock.
            return Ok(Step::Applied);
        }
        if let Some(row) = row
            && row.checksum != next.checksum()
        {
            return Err(StepError::Fatal(Error::EditedWhileInterrupted {
                revision: next.revision().to_owned(),
                path: next.path().to_owned(),
                statements_done: row.statements_done,
                recorded_checksum: row.checksum.to_string(),
                file_checksum: next.checksum().to_owned(),
            }));
        }
        let resumed_at = row.map(|r| r.statements_done);
        // The server answered the statement after the last one done with an error.
        let failed_before = row.is_some_and(|r| r.failed_statement == Some(r.statements_done + 1));
        if resumed_at.is_none() {
            client
                .batch_execute(&history::insert_sql(
                    &self.settings,
                    next,
                    RowState::Running,
                    "0",
                    &history::applied_by(&self.settings),
                ))
                .await
                .map_err(|e| classify("recording the migration start", e))?;
        }
        let lock_timeout = next.lock_timeout().unwrap_or(self.settings.lock_timeout);
        let statement_timeout = next.statement_timeout().or(self.settings.statement_timeout);
        // A direct connection is ours alone, so session settings are safe; they are reset after.
        // idle_session_timeout (PostgreSQL 14+) ends the session, and its lock, when this client
        // goes silent between two statements.
        let idle = if idle_session_timeout {
            format!(
                "; SET idle_session_timeout = '{}ms'",
                pg_millis(self.settings.idle_timeout)
            )
        } else {
            String::new()
        };
        client
            .batch_execute(&format!(
                "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'{idle}",
                pg_millis(lock_timeout),
                millis(statement_timeout)
            ))
            .await
            .map_err(|e| classify("setting the timeouts", e))?;
        let started = Instant::now();
        let done = resumed_at.unwrap_or(0);
        for (index, statement) in next.statements().iter().enumerate().skip(done) {
            let sql = next.statement_sql(statement);
            let resuming = resumed_at == Some(index);
            if resuming && failed_before {
                // Cleared before the statement runs again: should this attempt be interrupted,
                // its outcome is unknown again.
                client
                    .batch_execute(&format!(
                        "UPDATE {table} SET failed_statement = NULL WHERE revision = {revision}"
                    ))
                    .await
                    .map_err(|e| classify("recording the retry", e))?;
            }
            if resuming
                && !self
                    .prepare_resume(client, next, statement, failed_before)
                    .await?
            {
                log::info!(
                    "{} statement {} ({}:{}) had completed before the interruption",
                    next.revision(),
                    index + 1,
                    next.path(),
                    statement.line
                );
            } else if let Err(e) = client.batch_execute(sql).await {
                let error = statement_error(next, statement, e);
                if !matches!(error, StepError::Connection(_)) {
                    // The server (or the client, before sending) refused it: it did not take
                    // effect, which the next attempt may rely on.
                    let _ = client
                        .batch_execute(&format!(
                            "UPDATE {table} SET failed_statement = {} WHERE revision = {revision}",
                            index + 1
                        ))
                        .await;
                }
                return Err(error);
            }
            client
                .batch_execute(&format!(
                    "UPDATE {table} SET statements_done = {} WHERE revision = {revision}",
                    index + 1
                ))
                .await
                .map_err(|e| classify("recording progress", e))?;
        }
        let elapsed = started.elapsed();
        client
            .batch_execute(&format!(
                "UPDATE {table} SET state = 'applied', applied_at = now(), execution_ms = {} WHERE revision = {revision}",
                elapsed.as_millis()
            ))
            .await
            .map_err(|e| classify("recording the migration", e))?;
        Ok(record_applied(applied, next, elapsed, ", no-transaction"))
    }

    /// Before re-running the statement an interruption stopped at: returns whether it must run.
    /// A `CREATE INDEX CONCURRENTLY` that left an INVALID index (a crash, or a failure after the
    /// index was entered in the catalog) gets it dropped first; one that finished is skipped. A
    /// statement the server answered with an error (`failed_before`) or written with
    /// `IF [NOT] EXISTS` just runs again. Anything else cannot be proven either way and stops
    /// with the exact remedy.
    async fn prepare_resume<S: Session>(
        &self,
        client: &mut S,
        next: &'static Migration,
        statement: &Statement,
        failed_before: bool,
    ) -> Result<bool, StepError> {
        if let Some(index) = statement.concurrent_index {
            let messages = client
                .simple_query(&format!(
                    "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass({})",
                    escape_literal(index)
                ))
                .await
                .map_err(|e| classify("checking the interrupted index build", e))?;
            return match first_value(&messages).as_deref() {
                Some("t") => Ok(false),
                Some(_) => {
                    log::warn!(
                        "dropping INVALID index {index} left by an interrupted CREATE INDEX CONCURRENTLY ({}:{})",
                        next.path(),
                        statement.line
                    );
                    client
                        .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                        .await
                        .map_err(|e| classify("dropping the INVALID index", e))?;
                    Ok(true)
                }
                None => Ok(true),
            };
        }
        if failed_before || statement.rerunnable {
            return Ok(true);
        }
        let table = history::qualified(&self.settings);
        let done = next
            .statements()
            .iter()
            .position(|s| s == statement)
            .unwrap_or(0);
        Err(StepError::Fatal(Error::Interrupted {
            revision: next.revision().to_owned(),
            path: next.path().to_owned(),
            line: statement.line,
            statement: one_line(next.statement_sql(statement)),
            remedy: format!(
                "check the schema; if the statement did not take effect, run it yourself; then mark it done with\n    UPDATE {table} SET statements_done = {} WHERE revision = '{}';\n  and start again: the runner continues with the statement after it\n  (a statement written with IF [NOT] EXISTS is retried by the runner itself)",
                done + 1,
                next.revision(),
            ),
        }))
    }

    async fn stamp_on<D: Driver>(
        &self,
        driver: &D,
        client: &mut D::Session,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error> {
        let target = self
            .migrations
            .get(revision)
            .ok_or_else(|| Error::UnknownRevision {
                revision: revision.to_owned(),
            })?;
        // Ancestors of the target, in application order.
        let mut wanted = std::collections::BTreeSet::from([target.revision()]);
        for migration in self.migrations.iter().rev() {
            if wanted.contains(migration.revision()) {
                wanted.extend(migration.parents().iter().copied());
            }
        }
        let started = Instant::now();
        let deadline = deadline_after(started, self.settings.wait_budget);
        let mut backoff = Backoff::new();
        loop {
            if let Some(stamped) = self.stamp_once(client, &wanted).await? {
                log::info!(
                    "stamped {} revision(s) up to {revision} as applied",
                    stamped.len()
                );
                return Ok(stamped);
            }
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Err(Error::WaitBudgetExhausted {
                    waited: started.elapsed(),
                    reason: self.busy_reason(client).await,
                });
            }
            let left = deadline.map_or(Duration::MAX, |deadline| deadline - now);
            driver
                .sleep(backoff.next_delay().min(LOCK_POLL_CAP).min(left))
                .await;
        }
    }

    /// One attempt: `None` when another process holds the migration lock.
    async fn stamp_once<S: Session>(
        &self,
        client: &mut S,
        wanted: &std::collections::BTreeSet<&str>,
    ) -> Result<Option<Vec<&'static str>>, Error> {
        let db = |action: &'static str| {
            move |e: postgres::Error| Error::Database {
                action: action.to_owned(),
                cause: Box::new(ServerError::from_postgres(&e)),
            }
        };
        let tx = Guard::new(client, "ROLLBACK");
        let granted = tx
            .client
            .simple_query(&self.lock_sql())
            .await
            .map_err(db("taking the migration lock"))?;
        if first_value(&granted).as_deref() != Some("t") {
            tx.release().await;
            return Ok(None);
        }
        let rows = history::rows(
            &tx.client
                .simple_query(&format!(
                    "{}; {}",
                    history::create_sql(&self.settings),
                    history::select_sql(&self.settings)
                ))
                .await
                .map_err(db("preparing the history table"))?,
        );
        let applied_by = format!("{} (stamp)", history::applied_by(&self.settings));
        let mut inserts = String::new();
        let mut stamped = Vec::new();
        for migration in self
            .migrations
            .iter()
            .filter(|m| wanted.contains(m.revision()))
            .filter(|m| !rows.iter().any(|r| r.revision == m.revision()))
        {
            inserts.push_str(&history::insert_sql(
                &self.settings,
                migration,
                RowState::Applied,
                "0",
                &applied_by,
            ));
            inserts.push_str("; ");
            stamped.push(migration.revision());
        }
        tx.finish(&format!("{inserts}COMMIT"))
            .await
            .map_err(db("stamping"))?;
        Ok(Some(stamped))
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;
    use crate::runtime::status::tests::SET;

    /// The guard's verdict on a live server: `ok`, or its refusal.
    fn verdict(client: &mut Client, migrator: &Migrator<'_>, next: &str, marker: &str) -> String {
        let next = SET.get(next).unwrap();
        let sql = migrator.guarded_begin_sql(&[next], marker);
        let verdict = match client.batch_execute(&sql) {
            Ok(()) => "ok".to_owned(),
            Err(e) => guard_refusal(&e).map_or_else(|| e.to_string(), str::to_owned),
        };
        client.batch_execute("ROLLBACK").unwrap();
        verdict
    }

    fn marker(client: &mut Client) -> String {
        let rows = client
            .simple_query("SELECT coalesce(max(applied_at)::text, '-') FROM migrate_history")
            .unwrap();
        first_value(&rows).unwrap()
    }

    /// Creates the history with `a` applied, and returns its marker.
    fn history_with_a(client: &mut Client, settings: &Settings) -> String {
        client
            .batch_execute(&format!(
                "{}; {}",
                history::create_sql(settings),
                history::insert_sql(settings, SET.get("a").unwrap(), RowState::Applied, "0", "t")
            ))
            .unwrap();
        marker(client)
    }

    #[test]
    fn the_guard_lets_through_only_the_history_it_was_given() {
        let db = pg_harness::test_database();
        let mut client = db.client();
        let migrator = Migrator::new(&SET);
        let settings = migrator.settings();
        let read = history_with_a(&mut client, settings);
        assert_eq!(verdict(&mut client, &migrator, "b", &read), "ok");
        assert_eq!(
            verdict(&mut client, &migrator, "b", "-"),
            GUARD_STALE,
            "marker moved"
        );
        assert_eq!(
            verdict(&mut client, &migrator, "a", &read),
            GUARD_STALE,
            "applied already"
        );
        assert_eq!(
            verdict(&mut client, &migrator, "c", &read),
            GUARD_STALE,
            "parent missing"
        );

        let mut holder = db.client();
        holder
            .batch_execute(&format!("SELECT pg_advisory_lock({})", migrator.lock_key()))
            .unwrap();
        assert_eq!(verdict(&mut client, &migrator, "b", &read), GUARD_BUSY);
        holder
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .unwrap();

        // Another runner applied `b` meanwhile: the marker moves, and `c` is judged stale until
        // the history is read again.
        client
            .batch_execute(&history::insert_sql(
                settings,
                SET.get("b").unwrap(),
                RowState::Applied,
                "0",
                "t",
            ))
            .unwrap();
        assert_eq!(verdict(&mut client, &migrator, "c", &read), GUARD_STALE);
        let reread = marker(&mut client);
        assert_ne!(reread, read);
        assert_eq!(verdict(&mut client, &migrator, "c", &reread), "ok");
        // The marker read back from the rows is the one the guard compares.
        let rows = history::rows(&client.simple_query(&history::select_sql(settings)).unwrap());
        assert_eq!(history::fingerprint_of(&rows), reread);
    }

    /// Another runner commits `b` and releases the lock while this one's guard is running: the
    /// guard must see that commit. Its checks run once it holds the lock, so a commit that
    /// lands between the start of its statement and the lock cannot slip past them. Each round,
    /// the holder takes the lock and records `b` before the racer starts asking, then commits
    /// at a varying moment; every answer the racer gets is BUSY until the commit, and STALE
    /// after it, never "ok".
    #[test]
    fn the_guard_sees_a_commit_that_lands_while_it_takes_the_lock() {
        let db = pg_harness::test_database();
        let mut holder = db.client();
        let migrator = Migrator::new(&SET);
        let settings = migrator.settings();
        let read = history_with_a(&mut holder, settings);
        let (start, started) = std::sync::mpsc::channel::<()>();
        let (answer, answers) = std::sync::mpsc::channel::<String>();
        let mut racer = db.client();
        let racing = std::thread::spawn(move || {
            let migrator = Migrator::new(&SET);
            while started.recv().is_ok() {
                let verdict = loop {
                    let verdict = verdict(&mut racer, &migrator, "b", &read);
                    if verdict != GUARD_BUSY {
                        break verdict;
                    }
                };
                if answer.send(verdict).is_err() {
                    break;
                }
            }
        });
        let record_b =
            history::insert_sql(settings, SET.get("b").unwrap(), RowState::Applied, "0", "t");
        let mut wrong = Vec::new();
        for round in 0..300u64 {
            holder
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({}); {record_b}",
                    migrator.lock_key()
                ))
                .unwrap();
            start.send(()).unwrap();
            std::thread::sleep(Duration::from_micros(round * 7 % 400));
            holder.batch_execute("COMMIT").unwrap();
            let verdict = answers.recv().unwrap();
            if verdict != GUARD_STALE {
                wrong.push(format!("round {round}: {verdict}"));
            }
            holder
                .batch_execute("DELETE FROM migrate_history WHERE revision = 'b'")
                .unwrap();
        }
        drop(start);
        racing.join().unwrap();
        assert_eq!(wrong, Vec::<String>::new());
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
