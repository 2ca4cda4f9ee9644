//! How the protocol reads a failure: retry (lock timeout, deadlock, serialization), reconnect
//! (the connection is gone, so what was sent may have committed), or stop with an error that
//! names the revision, the file's line and the server's answer.

use super::super::error::{Error, ServerError};
use crate::{Migration, Statement};

pub(super) enum StepError {
    /// Lock timeout, deadlock, serialization failure: roll back and retry the migration.
    Retry(String),
    /// The connection is gone: reconnect and re-read the history (what was sent may have
    /// committed).
    Connection(String),
    Fatal(Error),
}

pub(super) fn is_retryable(e: &postgres::Error) -> bool {
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
pub(super) fn is_connection_loss(e: &postgres::Error) -> bool {
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

pub(super) fn classify(action: &str, e: postgres::Error) -> StepError {
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

/// The failure of `migration`'s statement number `index` (0-based).
pub(super) fn statement_error(
    migration: &Migration,
    index: usize,
    statement: &Statement,
    e: postgres::Error,
) -> StepError {
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
        statements_done: migration.no_transaction().then_some(index),
    })
}

/// A statement on one line for an error message.
pub(super) fn one_line(sql: &str) -> String {
    crate::analysis::source::one_line(sql, 200)
}

/// The error of a status read.
pub(super) fn reading_the_history(e: postgres::Error) -> Error {
    Error::Database {
        action: "reading the history".to_owned(),
        cause: Box::new(ServerError::from_postgres(&e)),
    }
}

/// An interrupted no-transaction migration (its `running` row) whose file is no longer the one
/// it started with.
pub(super) fn edited_while_interrupted(
    migration: &Migration,
    row: &crate::runtime::history::HistoryRow,
) -> StepError {
    StepError::Fatal(Error::EditedWhileInterrupted {
        revision: migration.revision().to_owned(),
        path: migration.path().to_owned(),
        statements_done: row.statements_done,
        recorded_checksum: row.checksum.to_string(),
        file_checksum: migration.checksum().to_owned(),
    })
}
