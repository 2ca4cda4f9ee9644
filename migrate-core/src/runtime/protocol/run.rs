//! The run: read the history, apply what is next, and go round again through the budget gate
//! until nothing is pending or the gate refuses.

use std::time::Duration;

use super::errors::{StepError, classify, edited_while_interrupted};
use super::gate::{Gate, Round};
use super::lock::LOCK_BUSY;
use super::session::{Conn, Guard, first_value};
use super::{Applied, Migrator, Report};
use crate::Migration;
use crate::runtime::config::Pooler;
use crate::runtime::driver::{Driver, Session};
use crate::runtime::error::{Error, ServerError};
use crate::runtime::history::{self, HistoryDigest, HistoryRow, Position, RowState};
use crate::runtime::status::Status;
use crate::runtime::trace::{self, Instrument};

/// A status and the history position it was computed from (read with the history, or right
/// after the run's own insert).
#[derive(Debug)]
pub(super) struct KnownHistory {
    pub status: Status,
    pub position: Position,
}

pub(super) enum Step {
    Done(Box<Status>),
    Applied,
    Busy,
    /// The history changed after it was read: read it again.
    Stale,
    /// Migrations committed together failed, and were rolled back: apply them (and the rest
    /// of the run) one transaction each, which reports or retries the failure as usual.
    Ungroup,
}

/// Logs one applied migration and adds it to the run's report.
pub(super) fn record_applied(
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

impl Migrator<'_> {
    /// Steps until nothing is pending. Every round that does not end the run passes the budget
    /// gate, which decides the pause and refuses once the wait budget is spent.
    pub(super) async fn run_on<D: Driver>(
        &self,
        driver: &D,
        conn: &mut Conn<'_, D::Session>,
    ) -> Result<Report, Error> {
        let head = self.migrations.head().map_or("", |m| m.revision());
        let span = trace::run(&self.settings.schema, self.migrations.len(), head);
        self.run_rounds(driver, conn).instrument(span).await
    }

    async fn run_rounds<D: Driver>(
        &self,
        driver: &D,
        conn: &mut Conn<'_, D::Session>,
    ) -> Result<Report, Error> {
        let mut gate = Gate::new(self.settings.wait_budget);
        let mut applied = Vec::new();
        let mut known = None;
        let mut grouping = self.settings.group_limit > 1;
        loop {
            let outcome = self
                .step(driver, conn, &mut applied, &mut known, grouping)
                .await;
            let (round, reason) = match outcome {
                Ok(Step::Done(status)) => {
                    return Ok(Report {
                        applied,
                        status: *status,
                    });
                }
                Ok(Step::Applied) => (Round::Progress, String::new()),
                Ok(Step::Stale) => (
                    Round::Stale,
                    "the history kept changing while this run read it".to_owned(),
                ),
                Ok(Step::Ungroup) => {
                    grouping = false;
                    (Round::Ungroup, String::new())
                }
                Ok(Step::Busy) => (Round::Busy, LOCK_BUSY.to_owned()),
                Err(StepError::Retry(reason)) => {
                    log::warn!("{reason}; rolled back, retrying");
                    trace::retry(&reason);
                    (Round::Retry, reason)
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
                    trace::reconnect(&reason);
                    (Round::Reconnect, reason)
                }
                Err(StepError::Fatal(error)) => return Err(error),
            };
            if let Err(spent) = gate.pass(driver, round).await {
                trace::give_up(&reason);
                if let Conn::Owned {
                    connector,
                    client: None,
                    last_error,
                    ..
                } = conn
                    && applied.is_empty()
                    && !last_error.is_empty()
                {
                    return Err(connector.failed(spent.waited, &last_error));
                }
                let reason = match conn.get(driver).await {
                    Ok(client) if round == Round::Busy => self.busy_reason(client).await,
                    _ => reason,
                };
                return Err(Error::WaitBudgetExhausted {
                    waited: spent.waited,
                    reason,
                });
            }
        }
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
    pub(super) async fn step<D: Driver>(
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
                    return Ok(Step::Done(Box::new(status)));
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
                self.check_interrupted(&rows)?;
                KnownHistory {
                    position: history::position_of(&rows),
                    status,
                }
            }
        };
        let Some(next) = current.status.next() else {
            if current.status.is_exactly_applied() {
                self.record_digest(client).await;
            }
            return Ok(Step::Done(Box::new(current.status)));
        };
        if !next.no_transaction() {
            let group = self.group_from(&current.status, grouping);
            let span = trace::migration(next.revision(), next.path(), true, group.len());
            return self
                .apply_transactional(client, current, &group, applied, known)
                .instrument(span)
                .await;
        }
        if self.settings.pooler == Pooler::Transaction {
            return Err(StepError::Fatal(Error::NoTransactionThroughPooler {
                revision: next.revision().to_owned(),
                path: next.path().to_owned(),
            }));
        }
        let span = trace::migration(next.revision(), next.path(), false, 1);
        self.apply_no_transaction(client, next, applied)
            .instrument(span)
            .await
    }

    /// A no-transaction migration that was interrupted can only resume from the very file it
    /// started with: a file changed in any way since, its transaction mode included, stops the
    /// run at once naming both checksums (a transactional file would otherwise meet its own
    /// `running` row in the guard forever).
    fn check_interrupted(&self, rows: &[HistoryRow]) -> Result<(), StepError> {
        for row in rows.iter().filter(|r| r.state == RowState::Running) {
            let Some(migration) = self.migrations.get(row.revision.as_ref()) else {
                continue;
            };
            if row.checksum != migration.checksum() || !migration.no_transaction() {
                return Err(edited_while_interrupted(migration, row));
            }
        }
        Ok(())
    }

    /// Whether the history's digest is this binary's: the history is exactly its migrations,
    /// all applied, and nothing needs reading ([`HistoryDigest`]). A digest that cannot be read
    /// (not created yet, not readable by this role) only means the history must be read.
    pub(super) async fn digest_is_current<S: Session>(
        &self,
        client: &mut S,
    ) -> Result<bool, StepError> {
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
    pub(super) async fn record_digest<S: Session>(&self, client: &mut S) {
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
    pub(super) async fn create_history_table<S: Session>(
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
}
