//! A no-transaction migration: statement by statement under a session lock (direct
//! connections only), its progress recorded after each statement so that a crash resumes where
//! it stopped, and what an interrupted statement left proven or cleaned up before it runs again.

use std::time::Instant;

use postgres::SimpleQueryMessage;
use postgres_protocol::escape::escape_literal;

use super::errors::{StepError, classify, one_line, statement_error};
use super::run::{Step, record_applied};
use super::session::{Guard, first_value, millis, pg_millis};
use super::{Applied, Migrator};
use crate::runtime::driver::Session;
use crate::runtime::error::Error;
use crate::runtime::history::{self, HistoryRow, RowState};
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
            } else {
                let before = match statement.concurrent_table {
                    Some(on) => Some(index_oids(client, on).await?),
                    None => None,
                };
                if let Err(e) = client.batch_execute(sql).await {
                    let error = statement_error(next, index, statement, e);
                    if !matches!(error, StepError::Connection(_)) {
                        // The server (or the client, before sending) refused it: it did not
                        // take effect, which the next attempt may rely on.
                        let _ = client
                            .batch_execute(&format!(
                                "UPDATE {table} SET failed_statement = {} WHERE revision = {revision}",
                                index + 1
                            ))
                            .await;
                    }
                    return Err(error);
                }
                if let (Some(on), Some(before)) = (statement.concurrent_table, before) {
                    drop_leftover_builds(client, next, statement, on, &before).await;
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

/// The indexes on `table` (as the migration wrote it, resolved like the statement is), as an
/// SQL `oid[]` literal.
async fn index_oids<S: Session>(client: &mut S, table: &str) -> Result<String, StepError> {
    let messages = client
        .simple_query(&format!(
            "SELECT coalesce(array_agg(indexrelid)::text, '{{}}') FROM pg_index WHERE indrelid = to_regclass({})",
            escape_literal(table)
        ))
        .await
        .map_err(|e| classify("listing the table's indexes before a concurrent build", e))?;
    Ok(first_value(&messages).unwrap_or_else(|| "{}".to_owned()))
}

/// An index's definition without its name (` ON public.t USING btree (c)`), from `pg_index` as
/// `i` and its `pg_class` row as `c`: two builds of the same statement compare equal.
const UNNAMED_DEFINITION: &str = "substr(pg_get_indexdef(i.indexrelid), length(CASE WHEN i.indisunique THEN 'CREATE UNIQUE INDEX ' ELSE 'CREATE INDEX ' END) + length(quote_ident(c.relname)) + 1)";

/// After a `CREATE INDEX CONCURRENTLY` succeeded: drops, concurrently, every INVALID index on
/// its table with the definition of the index it just built (not in `before`), which earlier
/// attempts of the statement left when they failed (a lock timeout) or were interrupted. A build
/// still in progress in another session is left alone. So a retried build, named or not, ends
/// with exactly one index. The statement succeeded whatever happens here: a drop that fails (a
/// lock timeout under heavy traffic) is logged with the command that finishes the job.
async fn drop_leftover_builds<S: Session>(
    client: &mut S,
    migration: &Migration,
    statement: &Statement,
    table: &str,
    before: &str,
) {
    let table = escape_literal(table);
    let before = escape_literal(before);
    let messages = client
        .simple_query(&format!(
            "WITH built AS (SELECT {UNNAMED_DEFINITION} AS definition FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
               WHERE i.indrelid = to_regclass({table}) AND i.indisvalid AND i.indexrelid <> ALL ({before}::oid[])) \
             SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = to_regclass({table}) AND NOT i.indisvalid \
               AND {UNNAMED_DEFINITION} IN (SELECT definition FROM built) \
               AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index WHERE index_relid IS NOT NULL) \
             ORDER BY 1"
        ))
        .await;
    let messages = match messages {
        Ok(messages) => messages,
        Err(e) => {
            log::warn!(
                "INVALID indexes left by earlier attempts of {} ({}:{}) were not looked for: {}",
                migration.revision(),
                migration.path(),
                statement.line,
                crate::runtime::error::ServerError::from_postgres(&e)
            );
            return;
        }
    };
    let leftovers: Vec<(&str, &str)> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((row.get(0)?, row.get(1)?)),
            _ => None,
        })
        .collect();
    for &(leftover, _) in &leftovers {
        log::warn!(
            "dropping INVALID index {leftover} left by an earlier attempt of {} ({}:{})",
            migration.revision(),
            migration.path(),
            statement.line
        );
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {leftover}");
        if let Err(e) = client.batch_execute(&drop).await {
            log::warn!(
                "INVALID index {leftover} was not dropped: {}; drop it with `{drop}`",
                crate::runtime::error::ServerError::from_postgres(&e)
            );
            return;
        }
    }
    // An unnamed index takes the name its first attempt got, which is the one a clean build
    // gives it: PostgreSQL numbers each next attempt's name (`t_c_idx`, `t_c_idx1`, ...), so the
    // shortest, then smallest, of the leftovers' names is the first.
    let first = leftovers
        .iter()
        .map(|&(_, name)| name)
        .min_by_key(|name| (name.len(), *name));
    if statement.concurrent_index.is_none()
        && let Some(first) = first
    {
        let rename = format!(
            "DO $migrate$ DECLARE built regclass; BEGIN \
               SELECT i.indexrelid::regclass INTO built FROM pg_index i \
               WHERE i.indrelid = to_regclass({table}) AND i.indisvalid AND i.indexrelid <> ALL ({before}::oid[]) LIMIT 1; \
               IF built IS NOT NULL THEN EXECUTE format('ALTER INDEX %s RENAME TO %I', built, {}); END IF; \
             END $migrate$",
            escape_literal(first)
        );
        if let Err(e) = client.batch_execute(&rename).await {
            log::warn!(
                "the index built by {} ({}:{}) keeps its name instead of {first}: {}",
                migration.revision(),
                migration.path(),
                statement.line,
                crate::runtime::error::ServerError::from_postgres(&e)
            );
        }
    }
}
