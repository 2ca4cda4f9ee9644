//! A no-transaction migration: statement by statement under a session lock (direct
//! connections only), its progress recorded after each statement so that a crash resumes where
//! it stopped, and what an interrupted statement left proven or cleaned up before it runs again.

use std::time::Instant;

use postgres::SimpleQueryMessage;
use postgres_protocol::escape::escape_literal;

use super::errors::{StepError, classify, edited_while_interrupted, one_line, statement_error};
use super::run::{Step, record_applied};
use super::session::{Guard, first_value, millis, pg_millis};
use super::{Applied, Migrator};
use crate::runtime::driver::Session;
use crate::runtime::error::Error;
use crate::runtime::history::{self, HistoryRow, RowState};
use crate::runtime::progress::{Backend, Watch, Watched, watched_statement};
use crate::runtime::trace::{self, Instrument};
use crate::{Migration, Statement};

impl Migrator<'_> {
    pub(super) async fn apply_no_transaction<S: Session>(
        &self,
        client: &mut S,
        next: &'static Migration,
        applied: &mut Vec<Applied>,
    ) -> Result<Step, StepError> {
        let key = self.lock_key();
        // The guard owns the lock from before the request is sent: a future dropped while the
        // answer is in flight still queues the unlock behind it (an unlock of a lock not granted
        // only makes the server warn). A lost connection releases it on the server's side.
        let mut session_lock = Guard::new(client, format!("SELECT pg_advisory_unlock({key})"));
        let granted = session_lock
            .client
            .simple_query(&format!(
                "SELECT pg_try_advisory_lock({key}), current_setting('server_version_num')::int >= 140000, \
                 current_setting('lock_timeout'), current_setting('statement_timeout'), \
                 current_setting('idle_session_timeout', true)"
            ))
            .await
            .map_err(|e| classify("taking the migration lock", e))?;
        let Some(row) = granted.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        }) else {
            return Err(StepError::Retry(
                "taking the migration lock: no answer".to_owned(),
            ));
        };
        if row.get(0) != Some("t") {
            session_lock.done();
            return Ok(Step::Busy);
        }
        let idle_session_timeout = row.get(1) == Some("t");
        // The caller's own values come back with the unlock, on every path: a borrowed client
        // keeps its session settings.
        let mut restore = format!("SELECT pg_advisory_unlock({key})");
        for (column, name) in [
            (2, "lock_timeout"),
            (3, "statement_timeout"),
            (4, "idle_session_timeout"),
        ] {
            if let Some(value) = row.get(column) {
                restore.push_str(&format!(
                    ", set_config('{name}', {}, false)",
                    escape_literal(value)
                ));
            }
        }
        session_lock.rearm(restore);
        // Whatever else the migration's statements set on the session (`SET search_path`,
        // `SET maintenance_work_mem`, ...) is put back too once it ends.
        let before = session_settings(session_lock.client).await;
        if let Some(path) = &self.settings.search_path {
            let set = format!(
                "SELECT set_config('search_path', {}, false)",
                escape_literal(path)
            );
            if let Err(e) = session_lock.client.batch_execute(&set).await {
                return Err(StepError::Retry(format!(
                    "setting the search_path: {}",
                    crate::runtime::error::ServerError::from_postgres(&e)
                )));
            }
        }
        let result = self
            .apply_no_transaction_locked(
                &mut *session_lock.client,
                next,
                applied,
                idle_session_timeout,
            )
            .await;
        if let Some(before) = before
            && !matches!(result, Err(StepError::Connection(_)))
        {
            restore_session_settings(session_lock.client, &before).await;
        }
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
            return Err(edited_while_interrupted(next, row));
        }
        let resumed_at = row.map(|r| r.statements_done);
        // The session's backend, whose statements a watcher reads the progress of.
        let backend = match &self.watch_from {
            Some(_) => client
                .simple_query("SELECT pg_backend_pid()")
                .await
                .ok()
                .and_then(|messages| first_value(&messages))
                .and_then(|pid| pid.parse::<i32>().ok()),
            None => None,
        };
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
        // A direct connection is ours alone, so session settings are safe; the caller's values
        // are restored after.
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
            if let Some(on) = statement.concurrent_table {
                drop_failed_builds(client, on, &failed_build_marker(next, index)).await?;
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
            } else {
                if resuming && failed_before {
                    // Cleared right before the statement runs again: should this attempt be
                    // interrupted, its outcome is unknown again.
                    client
                        .batch_execute(&format!(
                            "UPDATE {table} SET failed_statement = NULL WHERE revision = {revision}"
                        ))
                        .await
                        .map_err(|e| classify("recording the retry", e))?;
                }
                // The indexes of a concurrent build's table before this attempt: what a failed
                // attempt adds to them is what it left behind.
                let before = match statement.concurrent_table {
                    Some(on) => index_oids(client, on).await,
                    None => None,
                };
                // A long statement's progress is read on a connection of its own.
                let _watch = match (&self.watch_from, backend) {
                    (Some(url), Some(pid)) => Watch::start(Watched {
                        url: url.clone(),
                        application_name: self.settings.application_name.clone(),
                        target: self.target().map(str::to_owned),
                        backend: Backend::Pid(pid),
                        statements: vec![watched_statement(next, index, statement)],
                        after: self.settings.progress_after,
                    }),
                    _ => None,
                };
                let span = trace::statement(next.revision(), index + 1, statement.line);
                if let Err(e) = client.batch_execute(sql).instrument(span).await {
                    let error = statement_error(next, index, statement, e);
                    if !matches!(error, StepError::Connection(_)) {
                        // The server (or the client, before sending) refused it: it did not
                        // take effect, which the next attempt may rely on.
                        if let (Some(on), Some(before)) = (statement.concurrent_table, &before) {
                            mark_failed_build(client, next, index, statement, on, before).await;
                        }
                        let _ = client
                            .batch_execute(&format!(
                                "UPDATE {table} SET failed_statement = {} WHERE revision = {revision}",
                                index + 1
                            ))
                            .await;
                    }
                    return Err(error);
                }
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
}

/// The indexes on `table` (as the migration names it, resolved as the statement resolves it),
/// as an SQL `oid[]` literal; `None` when they cannot be listed, which only means that a failed
/// attempt's leftover is not looked for.
async fn index_oids<S: Session>(client: &mut S, table: &str) -> Option<String> {
    let listed = client
        .simple_query(&format!(
            "SELECT coalesce(array_agg(indexrelid)::text, '{{}}') FROM pg_index WHERE indrelid = to_regclass({})",
            escape_literal(table)
        ))
        .await;
    match listed {
        Ok(messages) => first_value(&messages),
        Err(e) => {
            log::debug!(
                "the indexes of {table} were not listed before a concurrent build: {}",
                crate::runtime::error::ServerError::from_postgres(&e)
            );
            None
        }
    }
}

/// The comment that marks an index a failed attempt of `migration`'s statement `index` (0-based)
/// left INVALID: what the next attempt, in this run or a later one, drops first.
fn failed_build_marker(migration: &Migration, index: usize) -> String {
    format!(
        "migrate: left INVALID by a failed attempt of {} statement {}",
        migration.revision(),
        index + 1
    )
}

/// After a `CREATE INDEX CONCURRENTLY` the server refused (a lock timeout while it waited for
/// writers, a deadlock, a duplicate key): marks, with a comment, the INVALID index that this
/// very attempt entered in the catalog: an index of its table that was not there before it and
/// is not being built by another session. Anything that existed before the attempt is never
/// marked, so no other index is ever dropped for it. (`COMMENT` takes no lock that writers hold
/// up: the writers that made the build fail do not block it.)
async fn mark_failed_build<S: Session>(
    client: &mut S,
    migration: &Migration,
    index: usize,
    statement: &Statement,
    table: &str,
    before: &str,
) {
    let found = invalid_indexes(
        client,
        table,
        &format!(
            "i.indexrelid <> ALL ({}::oid[]) \
             AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid IS NOT NULL)",
            escape_literal(before)
        ),
    )
    .await;
    let leftovers = match found {
        Ok(leftovers) => leftovers,
        Err(e) => {
            log::warn!(
                "the INVALID index a failed attempt of {} ({}:{}) may have left was not looked for: {}",
                migration.revision(),
                migration.path(),
                statement.line,
                crate::runtime::error::ServerError::from_postgres(&e)
            );
            return;
        }
    };
    let marker = escape_literal(&failed_build_marker(migration, index));
    for leftover in leftovers {
        log::warn!(
            "INVALID index {leftover} was left by the failed attempt of {} ({}:{}); the next attempt drops it first",
            migration.revision(),
            migration.path(),
            statement.line
        );
        if let Err(e) = client
            .batch_execute(&format!("COMMENT ON INDEX {leftover} IS {marker}"))
            .await
        {
            log::warn!(
                "INVALID index {leftover} could not be marked: {}; drop it with `DROP INDEX CONCURRENTLY IF EXISTS {leftover}`",
                crate::runtime::error::ServerError::from_postgres(&e)
            );
        }
    }
}

/// Drops, concurrently, the INVALID indexes on `table` that failed attempts of the statement
/// marked (`marker`), before the statement runs again: so that it builds the one index, under
/// the name a clean build gives it. A drop waits for the same writers the build waited for; one
/// that times out is retried like the build, through the budget gate, and the mark stays until
/// a drop succeeds, in this run or a later one.
async fn drop_failed_builds<S: Session>(
    client: &mut S,
    table: &str,
    marker: &str,
) -> Result<(), StepError> {
    let condition = format!(
        "obj_description(i.indexrelid, 'pg_class') = {}",
        escape_literal(marker)
    );
    let Ok(leftovers) = invalid_indexes(client, table, &condition).await else {
        // The table's name does not resolve here: the statement itself reports it.
        return Ok(());
    };
    for leftover in leftovers {
        log::warn!("dropping INVALID index {leftover}, left by a failed attempt of this statement");
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {leftover}"))
            .await
            .map_err(|e| {
                classify(
                    &format!("dropping INVALID index {leftover}, left by a failed attempt"),
                    e,
                )
            })?;
    }
    Ok(())
}

/// The INVALID indexes of `table` (as the migration names it) that also meet `condition` (on
/// `pg_index i`), schema-qualified and quoted, oldest first.
async fn invalid_indexes<S: Session>(
    client: &mut S,
    table: &str,
    condition: &str,
) -> Result<Vec<String>, postgres::Error> {
    let messages = client
        .simple_query(&format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = to_regclass({}) AND NOT i.indisvalid AND {condition} ORDER BY i.indexrelid",
            escape_literal(table)
        ))
        .await?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect())
}

/// The settings a session may change with `SET` (all but the transaction's own and the role;
/// no backslash in the pattern, which `standard_conforming_strings = off` would read),
/// with their current values: a snapshot to restore.
const SESSION_SETTINGS_SQL: &str = "SELECT name, current_setting(name) FROM pg_settings \
     WHERE context IN ('user', 'superuser') AND name NOT LIKE 'transaction%' \
       AND name NOT IN ('role', 'session_authorization') ORDER BY name";

async fn session_settings<S: Session>(client: &mut S) -> Option<Vec<(String, String)>> {
    let messages = client.simple_query(SESSION_SETTINGS_SQL).await.ok()?;
    Some(
        messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => {
                    Some((row.get(0)?.to_owned(), row.get(1)?.to_owned()))
                }
                _ => None,
            })
            .collect(),
    )
}

/// Sets back, one by one, each setting whose value differs from `before`'s. A value that cannot
/// be set back is logged, and the others are still restored.
async fn restore_session_settings<S: Session>(client: &mut S, before: &[(String, String)]) {
    let Some(now) = session_settings(client).await else {
        return;
    };
    for ((name, was), (_, is)) in before
        .iter()
        .zip(&now)
        .filter(|((a, was), (b, is))| a == b && was != is)
    {
        let _ = is;
        if let Err(e) = client
            .batch_execute(&format!(
                "SELECT set_config({}, {}, false)",
                escape_literal(name),
                escape_literal(was)
            ))
            .await
        {
            log::warn!(
                "the session setting {name} was not restored to {was}: {}",
                crate::runtime::error::ServerError::from_postgres(&e)
            );
        }
    }
}
