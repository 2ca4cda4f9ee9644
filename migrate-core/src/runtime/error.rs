//! Errors of the runtime: one variant per situation a caller may want to handle, each rendered
//! with what happened, where, and what to do next. No variant ever carries a password.

use std::fmt;
use std::time::Duration;

/// A server error, reduced to what an operator needs (SQLSTATE, message, detail, hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// The server's error behind `error`, also when the client wrapped it (login failures).
pub(crate) fn db_error(error: &postgres::Error) -> Option<&postgres::error::DbError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(db) = e.downcast_ref::<postgres::error::DbError>() {
            return Some(db);
        }
        current = e.source();
    }
    None
}

/// `Error::Database` for a query of the runtime's own that failed while doing `action`.
pub(crate) fn database_error(action: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |e| Error::Database {
        action: action.to_owned(),
        cause: Box::new(ServerError::from_postgres(&e)),
    }
}

impl ServerError {
    pub(crate) fn from_postgres(error: &postgres::Error) -> ServerError {
        match db_error(error) {
            Some(db) => ServerError {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
            },
            None => ServerError {
                code: error
                    .code()
                    .map_or_else(String::new, |c| c.code().to_owned()),
                // The client's text ("error connecting to server") and its cause ("Connection
                // refused"), which the top-level Display leaves out.
                message: {
                    let mut text = error.to_string();
                    let mut source = std::error::Error::source(error);
                    while let Some(cause) = source {
                        text.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    text
                },
                detail: None,
                hint: None,
            },
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "SQLSTATE {}: {}", self.code, self.message)?;
        }
        if let Some(detail) = &self.detail {
            write!(f, "\n  detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A setting (environment variable or URL parameter) has a value we cannot use.
    InvalidConfig {
        name: String,
        value: String,
        reason: String,
    },
    /// The database could not be reached within the wait budget.
    Connect {
        target: String,
        waited: Duration,
        cause: String,
    },
    /// A statement of a migration failed with a non-retryable error.
    Migration {
        revision: String,
        path: String,
        line: usize,
        statement: String,
        cause: Box<ServerError>,
        /// For a no-transaction migration, how many of its statements took effect before the
        /// failed one (they stay, and are recorded); `None` for a transactional one, of which
        /// nothing was kept.
        statements_done: Option<usize>,
    },
    /// A query of the runner itself (history table, lock) failed.
    Database {
        action: String,
        cause: Box<ServerError>,
    },
    /// The wait budget ran out while waiting for the migration lock or retrying lock timeouts.
    WaitBudgetExhausted { waited: Duration, reason: String },
    /// Migrations that were applied differ from the embedded files.
    ChecksumMismatch { revisions: Vec<(String, String)> },
    /// The database has applied revisions that the binary does not know and that do not descend
    /// from the binary's head.
    Diverged { unknown: Vec<String>, head: String },
    /// A no-transaction migration stopped part-way and the runner cannot prove what took effect.
    Interrupted {
        revision: String,
        path: String,
        line: usize,
        statement: String,
        remedy: String,
    },
    /// A no-transaction migration needs a session lock, which a transaction-mode pooler cannot hold.
    NoTransactionThroughPooler { revision: String, path: String },
    /// `stamp` was given a revision the binary does not contain.
    UnknownRevision { revision: String },
    /// An interrupted no-transaction migration's file changed since it started: resuming would
    /// run the rest of a different migration.
    EditedWhileInterrupted {
        revision: String,
        path: String,
        statements_done: usize,
        recorded_checksum: String,
        file_checksum: String,
    },
    /// A drift check cannot use the database given as its shadow.
    ShadowRefused { shadow: String, reason: String },
    /// An applied revision failed when replayed into the shadow database of a drift check.
    Replay {
        revision: String,
        path: String,
        cause: Box<ServerError>,
        /// For a tenant's schema, what the database has beside it that the shadow refused to
        /// create before the replay (an extension the role may not create…), each with the
        /// server's reason.
        left_out: Vec<String>,
    },
    /// The database has applied revisions the binary does not contain, so a drift check cannot
    /// replay what built it.
    CannotReplay { unknown: Vec<String> },
    /// The database ran some of the revisions a squash replaces, and not the squash's own.
    PartlySquashed { revision: String, ran: Vec<String> },
    /// A baseline written from a live database failed when replayed into an empty one, on the
    /// same server: its order or its rendering of an object is wrong.
    BaselineReplay { cause: Box<ServerError> },
    /// A test database was asked for, and no server is configured for tests.
    NoTestServer,
    /// A blocking client of a test database, asked for on a tokio runtime (an async test).
    BlockingClientInAsyncTest,
}

impl Error {
    /// The server's SQLSTATE, when the error came from the server.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Migration { cause, .. } | Error::Database { cause, .. }
                if !cause.code.is_empty() =>
            {
                Some(&cause.code)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                name,
                value,
                reason,
            } => {
                write!(f, "invalid {name} `{value}`: {reason}")
            }
            Error::Connect {
                target,
                waited,
                cause,
            } => write!(
                f,
                "cannot connect to {target} (tried for {:.1}s): {cause}\n  help: check that the server runs and accepts connections from this host, and the URL's host, port, user and password",
                waited.as_secs_f64()
            ),
            Error::Migration {
                revision,
                path,
                line,
                statement,
                cause,
                statements_done,
            } => {
                write!(
                    f,
                    "migration {revision} failed at {path}:{line}: {cause}\n  statement: {statement}\n  help: "
                )?;
                match statements_done {
                    None => write!(
                        f,
                        "nothing of this migration was kept (it ran in one transaction with its history row); fix the migration in a new build, or fix the data it trips on, then start again"
                    ),
                    Some(done) => write!(
                        f,
                        "this migration is marked no-transaction: its first {done} statement(s) took effect and are recorded, the failed statement did not; fix the migration in a new build, or fix the data it trips on, then start again: the next run resumes at statement {}",
                        done + 1
                    ),
                }
            }
            Error::Database { action, cause } => write!(f, "{action} failed: {cause}"),
            Error::WaitBudgetExhausted { waited, reason } => write!(
                f,
                "gave up after {:.1}s (the wait budget): {reason}\n  help: raise MIGRATE_WAIT_BUDGET, or find what holds the lock (pg_stat_activity) and let it finish",
                waited.as_secs_f64()
            ),
            Error::ChecksumMismatch { revisions } => {
                let list: Vec<String> = revisions
                    .iter()
                    .map(|(r, p)| format!("{r} ({p})"))
                    .collect();
                write!(
                    f,
                    "applied migrations were edited since they ran: {}\n  help: an applied migration must not change; restore the file as it was applied and put the change in a new migration",
                    list.join(", ")
                )
            }
            Error::Diverged { unknown, head } => write!(
                f,
                "the database has applied revisions this binary does not know and that do not build on its head {head}: {}\n  help: the database was migrated by a build from another branch; deploy a build that contains these revisions (merge the branches), or undo them by hand and delete their rows from the history table",
                unknown.join(", ")
            ),
            Error::Interrupted {
                revision,
                path,
                line,
                statement,
                remedy,
            } => write!(
                f,
                "no-transaction migration {revision} was interrupted at {path}:{line} and the runner cannot tell whether that statement took effect\n  statement: {statement}\n  help: {remedy}"
            ),
            Error::NoTransactionThroughPooler { revision, path } => write!(
                f,
                "migration {revision} ({path}) is marked no-transaction and needs a session lock, which a transaction-mode pooler cannot hold\n  help: set MIGRATION_DATABASE_URL to a direct connection to the server (not through the pooler); migrations use it, the service keeps using DATABASE_URL"
            ),
            Error::EditedWhileInterrupted {
                revision,
                path,
                statements_done,
                recorded_checksum,
                file_checksum,
            } => write!(
                f,
                "no-transaction migration {revision} ({path}) was interrupted after {statements_done} statement(s) and its file changed since it started: checksum {recorded_checksum} when it started, {file_checksum} now\n  help: deploy a build with the file as it was when it started so that it can finish, and put the change in a new migration"
            ),
            Error::ShadowRefused { shadow, reason } => write!(
                f,
                "refusing {shadow} as the shadow database: {reason}\n  help: give --shadow-url an empty database of its own on a server like the target's (same major version and extensions), or leave it out to let the drift check create one (the role needs CREATEDB)"
            ),
            Error::Replay {
                revision,
                path,
                cause,
                left_out,
            } if !left_out.is_empty() => write!(
                f,
                "replaying applied revision {revision} ({path}) into the shadow database failed: {cause}\n  the shadow was given what the database has beside the tenant's schema but for: {}\n  help: the migrations no longer build what they built when they were applied, or they need one of those (an extension that is not trusted needs a superuser to run the check); fix that, then diff again",
                left_out.join("; ")
            ),
            Error::Replay {
                revision,
                path,
                cause,
                ..
            } => write!(
                f,
                "replaying applied revision {revision} ({path}) into the shadow database failed: {cause}\n  help: the migrations no longer build what they built when they were applied (an extension or a role they need is missing on this server?); fix that, then diff again"
            ),
            Error::BaselineReplay { cause } => write!(
                f,
                "a database built from the baseline failed on one of its statements: {cause}; nothing was written\n  help: this is a gap in the baseline's order or rendering; report it with the line above"
            ),
            Error::BlockingClientInAsyncTest => write!(
                f,
                "TestDatabase::client() is a blocking connection, and this test runs on a tokio runtime, where its first query would abort the test binary\n  help: use `db.connect_async().await` in an async test"
            ),
            Error::NoTestServer => write!(
                f,
                "no server for test databases: neither MIGRATE_TEST_DATABASE_URL nor DATABASE_URL is set\n  help: set MIGRATE_TEST_DATABASE_URL to a server kept for tests, as a role that may create databases (postgres://user:password@localhost:5432/postgres)"
            ),
            Error::PartlySquashed { revision, ran } => write!(
                f,
                "the database ran {} of the revisions the squash `{revision}` replaces ({}), and not `{revision}` itself; the squash would create what they created again\n  help: bring the database to `{revision}` with a build from before the squash (or `migrate apply --dir` on that history), then deploy this one",
                ran.len(),
                ran.join(", ")
            ),
            Error::CannotReplay { unknown } => write!(
                f,
                "the database has applied revisions this binary does not contain: {}\n  help: diff with a build (or a --dir) that contains them",
                unknown.join(", ")
            ),
            Error::UnknownRevision { revision } => write!(
                f,
                "revision {revision} is not one of this binary's migrations\n  help: run `status` to list the revisions this binary contains"
            ),
        }
    }
}

impl std::error::Error for ServerError {}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Migration { cause, .. }
            | Error::Database { cause, .. }
            | Error::Replay { cause, .. }
            | Error::BaselineReplay { cause } => Some(&**cause),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_that_does_not_replay_is_not_blamed_on_the_server() {
        let error = Error::BaselineReplay {
            cause: Box::new(ServerError {
                code: "42883".to_owned(),
                message: "function public.next_code() does not exist".to_owned(),
                detail: None,
                hint: None,
            }),
        };
        assert_eq!(
            error.to_string(),
            "a database built from the baseline failed on one of its statements: SQLSTATE 42883: function public.next_code() does not exist; nothing was written\n  help: this is a gap in the baseline's order or rendering; report it with the line above"
        );
    }
}
