//! What the protocol holds on a connection: the connection itself (borrowed, or owned and
//! reopened when lost) and the guard that sends a ROLLBACK or an unlock on every path.

use std::time::{Duration, Instant};

use postgres::SimpleQueryMessage;

use super::errors::StepError;
use crate::runtime::connect::Connector;
use crate::runtime::driver::{Driver, Session};
use crate::runtime::error::{Error, ServerError};

/// A timeout as PostgreSQL takes it: whole milliseconds, at most `i32::MAX` (about 24.8 days);
/// longer settings saturate instead of being refused by the server.
pub(super) fn pg_millis(d: Duration) -> u128 {
    d.as_millis().min(i32::MAX as u128)
}

/// `None` is no limit (0 for PostgreSQL).
pub(super) fn millis(d: Option<Duration>) -> u128 {
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

pub(super) fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    })
}

/// SQL that must reach the server on every path once it is needed (a ROLLBACK, the release of
/// the session lock): sent by the normal path and awaited there, or, when the protocol's future
/// is dropped half-way (an error before it, a cancelled task), sent without waiting on drop.
pub(super) struct Guard<'a, S: Session> {
    pub client: &'a mut S,
    on_drop: Option<String>,
}

impl<'a, S: Session> Guard<'a, S> {
    pub fn new(client: &'a mut S, on_drop: impl Into<String>) -> Guard<'a, S> {
        Guard {
            client,
            on_drop: Some(on_drop.into()),
        }
    }

    /// Sends the final statements (ending with COMMIT or ROLLBACK). When they fail (the server
    /// stops a batch at its first error, so the COMMIT never ran), the guard still sends its SQL.
    pub async fn finish(mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, postgres::Error> {
        let messages = self.client.simple_query(sql).await?;
        self.on_drop = None;
        Ok(messages)
    }

    /// Replaces what the guard sends on every path from now on.
    pub fn rearm(&mut self, on_drop: impl Into<String>) {
        self.on_drop = Some(on_drop.into());
    }

    /// The statements that end the guard's need ran already (a batch that ended in COMMIT).
    pub fn done(mut self) {
        self.on_drop = None;
    }

    /// Sends the guard's own SQL now and waits for it; its outcome does not matter (a lost
    /// connection releases everything on the server's side).
    pub async fn release(mut self) {
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
pub(super) enum Conn<'a, S> {
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
    pub async fn get_while<D: Driver<Session = S>, T: Send>(
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

    pub async fn get<D: Driver<Session = S>>(&mut self, driver: &D) -> Result<&mut S, StepError> {
        Ok(self.get_while(driver, || ()).await?.0)
    }

    pub fn lost(&mut self) -> bool {
        match self {
            Conn::Borrowed(_) => false,
            Conn::Owned { client, .. } => {
                *client = None;
                true
            }
        }
    }
}
