//! The drivers the runner's protocol runs on.
//!
//! The protocol (what to send, how to read the answer, when to retry, reconnect, wait or stop;
//! `migrator.rs`) is written once, as async code over [`Session`] and [`Driver`]. A driver only
//! moves queries and sleeps:
//! - [`Blocking`], for a borrowed `postgres::Client`, and [`BlockingOwned`], for the blocking
//!   API's own connections (tokio-postgres on a runtime of their own, so that a whole migration
//!   goes in one round trip): every call has completed when it returns, so the protocol's future
//!   is ready at its first poll and [`block_on`] needs no executor;
//! - [`Tokio`] (feature `tokio`), on `tokio-postgres`: queries, connects and sleeps really await,
//!   and no executor thread ever blocks.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use postgres::SimpleQueryMessage;

use super::connect::{ConnectError, Connector};

/// The error of a batch, and the step it happened in.
#[derive(Debug)]
pub(crate) struct BatchError {
    pub step: usize,
    pub error: postgres::Error,
}

/// One connection, as the protocol uses it: the simple query protocol only (no named
/// statements, which transaction-mode poolers break).
pub(crate) trait Session: Send {
    /// Runs `steps` in order, each as its own query (one or more statements), and returns the
    /// last step's answer, or names the step of the first error. A driver that pipelines sends
    /// them all in one round trip; the `postgres` crate cannot, and sends one round trip per
    /// step, stopping at the first error.
    fn run_batch(
        &mut self,
        steps: &[&str],
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, BatchError>> + Send;

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

    /// Whether a call, once made, always runs to its end: true for the blocking drivers, whose
    /// calls return only when the server has answered. An async call can be abandoned half-way
    /// (its future dropped), and then what it has already sent must not include a COMMIT.
    fn runs_to_completion(&self) -> bool;

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

    /// [`Driver::connect`], running `meanwhile` once the login is under way: work the caller
    /// will probably need next, done while the server starts a backend rather than after. A
    /// driver that cannot overlap them runs `meanwhile` first. `None` when `meanwhile` did not
    /// run to its end.
    fn connect_while<T: Send>(
        &self,
        connector: &Connector,
        meanwhile: impl FnOnce() -> T + Send,
    ) -> impl Future<Output = (Result<Self::Session, ConnectError>, Option<T>)> + Send {
        async move {
            let done = meanwhile();
            (self.connect(connector).await, Some(done))
        }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The `postgres` crate: blocking calls, completed before the future is first polled to its end.
pub(crate) struct Blocking;

impl Session for postgres::Client {
    async fn run_batch(&mut self, steps: &[&str]) -> Result<Vec<SimpleQueryMessage>, BatchError> {
        let mut last = Vec::new();
        for (step, part) in steps.iter().enumerate() {
            match postgres::Client::simple_query(self, part) {
                Ok(answer) => last = answer,
                Err(error) => return Err(BatchError { step, error }),
            }
        }
        Ok(last)
    }

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

    fn runs_to_completion(&self) -> bool {
        true
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

/// The blocking API's own connections: tokio-postgres on a current-thread runtime of their own,
/// which only runs inside their calls (as the `postgres` crate does), for one round trip per
/// migration.
pub(crate) struct BlockingOwned;

/// A tokio-postgres client and the runtime that drives its connection.
pub(crate) struct OwnRuntime {
    // Dropped first (fields drop in their order): its connection's task then sends Terminate,
    // which the runtime's drop waits for.
    client: tokio_postgres::Client,
    runtime: ClosingRuntime,
}

/// How long dropping a session waits for its connection to say goodbye to the server. Sending
/// Terminate takes one write to a socket; a longer wait means the peer is gone anyway.
const CLOSE_WAIT: Duration = Duration::from_millis(100);

/// A runtime that, when dropped, first lets its connection's task end the session the way the
/// protocol asks (Terminate, then the socket closes): dropped with the task still in it, the
/// socket would close unannounced, which a pooler logs as an unexpected EOF.
struct ClosingRuntime {
    runtime: tokio::runtime::Runtime,
    connection: Option<tokio::task::JoinHandle<()>>,
}

impl ClosingRuntime {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

impl Drop for ClosingRuntime {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            // The timer is made inside the runtime: it needs its context.
            let closed = async { tokio::time::timeout(CLOSE_WAIT, connection).await };
            let _ = self.runtime.block_on(closed);
        }
    }
}

impl Session for OwnRuntime {
    async fn run_batch(&mut self, steps: &[&str]) -> Result<Vec<SimpleQueryMessage>, BatchError> {
        self.runtime.block_on(run_pipelined(&self.client, steps))
    }

    async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, postgres::Error> {
        self.runtime.block_on(self.client.simple_query(sql))
    }

    async fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn runs_to_completion(&self) -> bool {
        true
    }

    fn send_without_waiting(&mut self, sql: &str) {
        let _ = self.runtime.block_on(self.client.batch_execute(sql));
    }
}

impl Driver for BlockingOwned {
    type Session = OwnRuntime;

    async fn connect(&self, connector: &Connector) -> Result<OwnRuntime, ConnectError> {
        self.connect_while(connector, || ()).await.0
    }

    async fn connect_while<T: Send>(
        &self,
        connector: &Connector,
        meanwhile: impl FnOnce() -> T + Send,
    ) -> (Result<OwnRuntime, ConnectError>, Option<T>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let error = format!("cannot start the connection's runtime: {e}");
                return (Err(ConnectError::Other(error)), Some(meanwhile()));
            }
        };
        let connecting = while_waiting(connector.connect_async_task(), meanwhile);
        let (connected, done) = runtime.block_on(connecting);
        let session = connected.map(|(client, connection)| OwnRuntime {
            client,
            runtime: ClosingRuntime {
                runtime,
                connection: Some(connection),
            },
        });
        (session, done)
    }

    async fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// Sends every step at once, each as its own query (tokio-postgres pipelines requests that are
/// in flight together), and reads the answers in order: one round trip for all of them, and
/// each step's error is its own. A step after a failed one fails too inside a transaction
/// (`current transaction is aborted`); the first error is the one reported.
///
/// A step that fails before it leaves the client (a query the driver cannot encode) stops the
/// steps after it from being sent at all: the server never saw it fail, so it would run them,
/// and a later step may be the COMMIT.
async fn run_pipelined(
    client: &tokio_postgres::Client,
    steps: &[&str],
) -> Result<Vec<SimpleQueryMessage>, BatchError> {
    type Answer<'a> =
        Pin<Box<dyn Future<Output = Result<Vec<SimpleQueryMessage>, postgres::Error>> + Send + 'a>>;
    let mut in_flight: Vec<Answer<'_>> = steps
        .iter()
        .map(|step| Box::pin(client.simple_query(step)) as Answer<'_>)
        .collect();
    let mut answers: Vec<Option<Result<Vec<SimpleQueryMessage>, postgres::Error>>> =
        steps.iter().map(|_| None).collect();
    let mut sent = vec![false; steps.len()];
    let mut failed = false;
    // Each query is sent at its first poll, so polling them in order sends them in order.
    std::future::poll_fn(|cx| {
        let mut all = true;
        let steps = in_flight
            .iter_mut()
            .zip(answers.iter_mut())
            .zip(sent.iter_mut());
        for ((query, answer), sent) in steps {
            // Answered, or held back after an error.
            if answer.is_some() || (!*sent && failed) {
                continue;
            }
            *sent = true;
            match query.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    failed |= result.is_err();
                    *answer = Some(result);
                }
                Poll::Pending => all = false,
            }
        }
        if all { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    let mut last = Vec::new();
    // Every step sent is answered: the poll above ends only then. The steps held back come
    // after the error, which is returned first.
    let answers = answers
        .into_iter()
        .enumerate()
        .filter_map(|(step, answer)| answer.map(|answer| (step, answer)));
    for (step, answer) in answers {
        match answer {
            Ok(answer) => last = answer,
            Err(error) => return Err(BatchError { step, error }),
        }
    }
    Ok(last)
}

/// How many times a login returns pending before it waits for the server: once for the TCP
/// handshake (or a host name's lookup), then for the server's answer to the startup message,
/// while the server starts a backend, which takes milliseconds.
const PENDING_BEFORE_SERVER_WORK: usize = 2;

/// Awaits `future` (a login), and runs `meanwhile` while it waits for the server: once it has
/// returned pending [`PENDING_BEFORE_SERVER_WORK`] times, or when it ends sooner.
pub(crate) async fn while_waiting<F: Future, T>(
    future: F,
    meanwhile: impl FnOnce() -> T,
) -> (F::Output, Option<T>) {
    let mut future = pin!(future);
    let mut meanwhile = Some(meanwhile);
    let mut done = None;
    let mut pending = 0;
    let output = std::future::poll_fn(|cx| {
        let polled = future.as_mut().poll(cx);
        if polled.is_pending() {
            pending += 1;
        }
        if (polled.is_ready() || pending >= PENDING_BEFORE_SERVER_WORK)
            && let Some(work) = meanwhile.take()
        {
            done = Some(work());
        }
        polled
    })
    .await;
    (output, done)
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
    fn run_batch(
        &mut self,
        steps: &[&str],
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, BatchError>> + Send {
        run_pipelined(self, steps)
    }

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

    fn runs_to_completion(&self) -> bool {
        false
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

    async fn connect_while<T: Send>(
        &self,
        connector: &Connector,
        meanwhile: impl FnOnce() -> T + Send,
    ) -> (Result<tokio_postgres::Client, ConnectError>, Option<T>) {
        while_waiting(connector.connect_async(), meanwhile).await
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that is pending `times` times, then ready, counting its polls in `polls`.
    fn pending_times(times: usize, polls: &std::cell::Cell<usize>) -> impl Future<Output = ()> {
        std::future::poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            if polls.get() > times {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    #[test]
    fn the_work_runs_once_the_login_waits_for_the_server_or_at_its_end() {
        for (times, polls_before_work) in [(0, 1), (1, 2), (2, 2), (5, 2)] {
            let polls = std::cell::Cell::new(0);
            let (_, seen) = block_on(while_waiting(pending_times(times, &polls), || polls.get()));
            assert_eq!(seen, Some(polls_before_work), "pending {times} times");
            assert_eq!(polls.get(), times + 1);
        }
    }
}
