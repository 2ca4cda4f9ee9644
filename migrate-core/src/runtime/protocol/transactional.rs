//! A transactional migration, or a group of self-contained ones, in one transaction with its
//! history rows: the guard that takes the lock and proves the history unchanged, the statements,
//! the rows and COMMIT, pipelined where the driver can.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use postgres_protocol::escape::escape_literal;

use super::errors::{StepError, classify, is_connection_loss, statement_error};
use super::lock::BEGIN_READ_COMMITTED;
use super::run::{KnownHistory, Step, record_applied};
use super::session::{Guard, millis, pg_millis};
use super::{Applied, Migrator};
use crate::Migration;
use crate::runtime::driver::{BatchError, Session};
use crate::runtime::error::ServerError;
use crate::runtime::history::{self, Position, RowState};
use crate::runtime::progress::{Backend, Watch, Watched, watched_statement};
use crate::runtime::status::Status;

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

impl Migrator<'_> {
    /// The pending migrations the next transaction applies: the first, and when it is
    /// self-contained, the self-contained ones right after it with the same timeouts (up to the
    /// group limit). A prefix of the pending list, in order, so every parent of one of them is
    /// applied already or comes before it in the group.
    pub(super) fn group_from(&self, status: &Status, grouping: bool) -> Vec<&'static Migration> {
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
    /// group is not, or the history's position moved away from `expected`.
    pub(super) fn guarded_begin_sql(
        &self,
        group: &[&'static Migration],
        expected: Position,
    ) -> String {
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
                 {search_path}CASE WHEN NOT pg_try_advisory_xact_lock({key}) THEN '{GUARD_BUSY}' END::integer; \
                 SELECT CASE WHEN EXISTS (SELECT 1 FROM {table} WHERE revision IN ({revisions})){parents_applied} OR {position_changed} \
                 THEN '{GUARD_STALE}' END::integer",
            idle = pg_millis(self.settings.idle_timeout),
            lock = pg_millis(lock_timeout),
            statement = millis(statement_timeout),
            search_path = self
                .settings
                .search_path
                .as_ref()
                .map_or_else(String::new, |path| {
                    format!(
                        "set_config('search_path', {}, true), ",
                        escape_literal(path)
                    )
                }),
            key = self.lock_key(),
            revisions = quoted(&members).join(", "),
            position_changed = history::position_changed_sql(&self.settings, expected),
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
    /// INSERT <history row> RETURNING <position>; COMMIT    -- the last step
    /// ```
    ///
    /// The guard takes the transaction's advisory lock, and proves under it that no migration
    /// of the transaction is applied, that their parents are, and that the history's position
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
    pub(super) async fn apply_transactional<S: Session>(
        &self,
        client: &mut S,
        current: KnownHistory,
        group: &[&'static Migration],
        applied: &mut Vec<Applied>,
        known: &mut Option<KnownHistory>,
    ) -> Result<Step, StepError> {
        let Some((last, earlier)) = group.split_last() else {
            return Ok(Step::Done(Box::new(current.status)));
        };
        let grouped = !earlier.is_empty();
        let open = self.guarded_begin_sql(group, current.position);
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
                history::returning_position_sql(&self.settings),
            )
        };
        let finish = format!("{record} {returning}; COMMIT");
        let tx = Guard::new(client, "ROLLBACK");
        let in_one_trip = tx.client.runs_to_completion();
        if in_one_trip {
            steps.push((finish.clone(), BatchStep::Finish));
        }
        let texts: Vec<&str> = steps.iter().map(|(sql, _)| sql.as_str()).collect();
        // A long statement's progress is read on a connection of its own, on the backend that
        // holds the migration lock.
        let _watch = self.watch_from.as_ref().and_then(|url| {
            Watch::start(Watched {
                url: url.clone(),
                application_name: self.settings.application_name.clone(),
                target: self.target().map(str::to_owned),
                backend: Backend::LockHolder(self.lock_key()),
                statements: group
                    .iter()
                    .flat_map(|migration| {
                        migration
                            .statements()
                            .iter()
                            .enumerate()
                            .map(|(i, statement)| watched_statement(migration, i, statement))
                    })
                    .collect(),
                after: self.settings.progress_after,
            })
        });
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
                        Some(statement) => Err(statement_error(migration, i, statement, error)),
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
        if let Some(position) = history::returned_position(&committed) {
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
            *known = Some(KnownHistory { status, position });
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
}

#[cfg(test)]
mod guard_tests {
    use super::*;
    use crate::runtime::config::Settings;
    use crate::runtime::status::tests::SET;
    use postgres::Client;

    /// The guard's verdict on a live server: `ok`, or its refusal.
    fn verdict(
        client: &mut Client,
        migrator: &Migrator<'_>,
        next: &str,
        position: Position,
    ) -> String {
        let next = SET.get(next).unwrap();
        let sql = migrator.guarded_begin_sql(&[next], position);
        let verdict = match client.batch_execute(&sql) {
            Ok(()) => "ok".to_owned(),
            Err(e) => guard_refusal(&e).map_or_else(|| e.to_string(), str::to_owned),
        };
        client.batch_execute("ROLLBACK").unwrap();
        verdict
    }

    /// The history's position as a read of the rows gives it.
    fn position(client: &mut Client) -> Position {
        let settings = Settings::default();
        let rows = history::rows(
            &client
                .simple_query(&history::select_sql(&settings))
                .unwrap(),
        );
        history::position_of(&rows)
    }

    /// Creates the history with `a` applied, and returns its position.
    fn history_with_a(client: &mut Client, settings: &Settings) -> Position {
        client
            .batch_execute(&format!(
                "{}; {}",
                history::create_sql(settings),
                history::insert_sql(settings, SET.get("a").unwrap(), RowState::Applied, "0", "t")
            ))
            .unwrap();
        position(client)
    }

    #[test]
    fn the_guard_lets_through_only_the_history_it_was_given() {
        let db = pg_harness::test_database();
        let mut client = db.client();
        let migrator = Migrator::new(&SET);
        let settings = migrator.settings();
        let read = history_with_a(&mut client, settings);
        assert_eq!(verdict(&mut client, &migrator, "b", read), "ok");
        assert_eq!(
            verdict(&mut client, &migrator, "b", Position(None)),
            GUARD_STALE,
            "position moved"
        );
        assert_eq!(
            verdict(&mut client, &migrator, "a", read),
            GUARD_STALE,
            "applied already"
        );
        assert_eq!(
            verdict(&mut client, &migrator, "c", read),
            GUARD_STALE,
            "parent missing"
        );

        let mut holder = db.client();
        holder
            .batch_execute(&format!("SELECT pg_advisory_lock({})", migrator.lock_key()))
            .unwrap();
        assert_eq!(verdict(&mut client, &migrator, "b", read), GUARD_BUSY);
        holder
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .unwrap();

        // Another runner applied `b` meanwhile: the position moves, and `c` is judged stale until
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
        assert_eq!(verdict(&mut client, &migrator, "c", read), GUARD_STALE);
        let reread = position(&mut client);
        assert_ne!(reread, read);
        assert_eq!(verdict(&mut client, &migrator, "c", reread), "ok");
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
                    let verdict = verdict(&mut racer, &migrator, "b", read);
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
