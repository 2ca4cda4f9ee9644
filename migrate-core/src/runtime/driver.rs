//! The drivers the runner's protocol runs on.
//!
//! The protocol (what to send, how to read the answer, when to retry, reconnect, wait or stop;
//! `migrator.rs`) is written once, as async code over [`Session`] and [`Driver`]. A driver only
//! moves queries and sleeps:
//! - [`Blocking`], on the `postgres` crate: every call has completed when it returns, so the
//!   protocol's future is ready at its first poll and [`block_on`] needs no executor;
//! - [`Tokio`] (feature `tokio`), on `tokio-postgres`: queries, connects and sleeps really await,
//!   and no executor thread ever blocks.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use postgres::SimpleQueryMessage;

use super::connect::{ConnectError, Connector};

/// One connection, as the protocol uses it: the simple query protocol only (no named
/// statements, which transaction-mode poolers break).
pub(crate) trait Session: Send {
    fn simple_query(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, postgres::Error>> + Send;

    /// Like `simple_query`, without collecting rows (a migration's own statements).
    fn batch_execute(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<(), postgres::Error>> + Send;

    fn is_closed(&self) -> bool;

    /// Sends `sql` and does not wait for its answer. For drop guards: a migration whose future
    /// is dropped half-way (a cancelled task) cannot await its ROLLBACK, but must still leave
    /// the connection outside any transaction and without the migration lock.
    fn send_without_waiting(&mut self, sql: &str);
}

/// Opens sessions and waits.
pub(crate) trait Driver: Sync {
    type Session: Session;

    fn connect(
        &self,
        connector: &Connector,
    ) -> impl Future<Output = Result<Self::Session, ConnectError>> + Send;

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The `postgres` crate: blocking calls, completed before the future is first polled to its end.
pub(crate) struct Blocking;

impl Session for postgres::Client {
    async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, postgres::Error> {
        postgres::Client::simple_query(self, sql)
    }

    async fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        postgres::Client::batch_execute(self, sql)
    }

    fn is_closed(&self) -> bool {
        postgres::Client::is_closed(self)
    }

    fn send_without_waiting(&mut self, sql: &str) {
        // A blocking client can simply wait; an error leaves a broken connection, which the
        // server cleans up when it closes.
        let _ = postgres::Client::batch_execute(self, sql);
    }
}

impl Driver for Blocking {
    type Session = postgres::Client;

    async fn connect(&self, connector: &Connector) -> Result<postgres::Client, ConnectError> {
        connector.connect()
    }

    async fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// Runs the protocol on the blocking driver. Its futures are ready at the first poll; the
/// thread-parking waker only matters should a future ever return pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// The `tokio-postgres` crate, on the caller's tokio runtime (which needs its time driver:
/// `#[tokio::main]` and `Builder::enable_all` have it).
#[cfg(feature = "tokio")]
pub(crate) struct Tokio;

#[cfg(feature = "tokio")]
impl Session for tokio_postgres::Client {
    fn simple_query(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, postgres::Error>> + Send {
        tokio_postgres::Client::simple_query(self, sql)
    }

    fn batch_execute(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<(), postgres::Error>> + Send {
        tokio_postgres::Client::batch_execute(self, sql)
    }

    fn is_closed(&self) -> bool {
        tokio_postgres::Client::is_closed(self)
    }

    fn send_without_waiting(&mut self, sql: &str) {
        // The first poll of a query hands it to the connection task and then waits for the
        // answer; dropping the future after that poll leaves the query queued, and the
        // connection task discards its answer. The cancellation tests pin this behaviour.
        let mut query = pin!(tokio_postgres::Client::batch_execute(self, sql));
        let _ = query.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    }
}

#[cfg(feature = "tokio")]
impl Driver for Tokio {
    type Session = tokio_postgres::Client;

    fn connect(
        &self,
        connector: &Connector,
    ) -> impl Future<Output = Result<tokio_postgres::Client, ConnectError>> + Send {
        connector.connect_async()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}
