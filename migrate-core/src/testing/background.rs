//! What a process does beside its tests, so that a test waits for neither: dropping the
//! databases of tests that passed, and copying the template ahead of the next test (a spare,
//! renamed to the test's name when a test takes it).
//!
//! Nothing runs in the background until a process has asked twice for the same template: a
//! process that runs one test (one process per test, as nextest runs them) copies once and drops
//! inline. Everything still queued is finished before the process exits (an `atexit` hook):
//! spares are dropped and pending drops done. A spare's name carries the server process id and
//! start time of the session that made it, so the spares of a process that was killed are
//! removed by the next one, whose clean-up finds that session gone.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;
use postgres_protocol::escape::escape_identifier;

use super::{APPLICATION_NAME, locked, rows, template, value};
use crate::runtime::Error;
use crate::runtime::connect::connect;
use crate::runtime::error::database_error;

/// Spares: `migrate_spare_<maker's server process id>_<its session's start, unix seconds>_<n>`.
pub const SPARE_PREFIX: &str = "migrate_spare_";

/// Spares kept ready (or being made) per template: enough that a test thread finds one while the
/// next are made.
const SPARES: usize = 2;

/// Threads making spares, each on a connection of its own: two copies at once keep up with a
/// test thread where one does not (a copy costs the server more than a short test does).
const FILLERS: usize = 2;

/// How long the exit hook waits for what is still queued before it gives up on it.
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// Drops queued at most: a test that finds the queue full drops its database itself, so that
/// fast tests on many threads cannot pile up copies on the server.
const QUEUED_DROPS: usize = 4;

/// The background work for one server.
struct Server {
    drops: Option<SyncSender<String>>,
    dropper: Option<JoinHandle<()>>,
    spares: Arc<Spares>,
    fillers: Vec<JoinHandle<()>>,
}

/// The spares of one server, shared with the thread that makes them.
struct Spares {
    state: Mutex<SpareState>,
    changed: Condvar,
}

#[derive(Default)]
struct SpareState {
    /// Ready spares, as (template, spare).
    ready: Vec<(String, String)>,
    /// Spares of the wanted template being made.
    making: usize,
    /// The template to keep spares of: the last one asked for twice.
    wanted: Option<String>,
    /// The process is exiting: make no more, drop what is ready.
    stopping: bool,
}

static SERVERS: Mutex<BTreeMap<String, Server>> = Mutex::new(BTreeMap::new());

/// How many times this process asked for each (server, template).
static ASKED: Mutex<BTreeMap<(String, String), u32>> = Mutex::new(BTreeMap::new());

/// Takes a ready spare of `template` for the test database `name`, and asks for the next ones
/// once this process has asked for the template twice. `None` when none is ready: the caller
/// copies the template itself.
pub(super) fn take_spare(
    admin: &mut Client,
    server_url: &str,
    template: &str,
    name: &str,
) -> Option<()> {
    let asked = {
        let mut asked = locked(&ASKED);
        let count = asked
            .entry((server_url.to_owned(), template.to_owned()))
            .or_default();
        *count += 1;
        *count
    };
    if asked < 2 {
        return None;
    }
    let spare = with_server(server_url, true, |server| {
        let mut state = locked(&server.spares.state);
        state.wanted = Some(template.to_owned());
        let at = state.ready.iter().position(|(t, _)| t == template);
        let spare = at.map(|at| state.ready.swap_remove(at).1);
        server.spares.changed.notify_all();
        spare
    })
    .flatten()?;
    let renamed = admin.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}",
        escape_identifier(&spare),
        escape_identifier(name)
    ));
    match renamed {
        Ok(()) => Some(()),
        Err(e) => {
            // Gone (another process's clean-up), or someone connected to it: the caller copies
            // instead, and the spare, no longer anyone's, is dropped.
            // The server's reason on one line (a driver error alone says only "db error").
            let server = crate::runtime::ServerError::from_postgres(&e);
            let reason = match server.code.as_str() {
                "" => server.message,
                code => format!("SQLSTATE {code}: {}", server.message),
            };
            report(&format!(
                "a spare copy of the template could not be taken ({reason}); the test copies it itself"
            ));
            if let Err(spare) = drop_later(server_url, spare) {
                let _ = template::drop_database(admin, &spare);
            }
            None
        }
    }
}

/// Drops the database `name` in the background, once the background runs (a process that asked
/// for a template twice) and while its queue has room; the process waits for it before exiting.
/// Gives the name back otherwise: the caller drops it itself.
pub(super) fn drop_later(server_url: &str, name: String) -> Result<(), String> {
    match with_server(server_url, false, |server| server.drops.clone()).flatten() {
        Some(drops) => drops.try_send(name).map_err(|e| match e {
            TrySendError::Full(name) | TrySendError::Disconnected(name) => name,
        }),
        None => Err(name),
    }
}

/// A line on the process's stderr, past the test harness's capture: background threads inherit
/// the capture of the test that started them, which is thrown away when that test passes.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "migrate::testing: {line}");
}

/// Set when the process starts exiting: nothing new is started in the background then.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Runs `work` on the background of `server_url`, started first when `start_it`. `None` when it
/// does not run (not started, the process is exiting, or its threads could not start).
fn with_server<T>(
    server_url: &str,
    start_it: bool,
    work: impl FnOnce(&mut Server) -> T,
) -> Option<T> {
    let mut servers = locked(&SERVERS);
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    if !servers.contains_key(server_url) {
        if !start_it || !*HOOKED.get_or_init(register_exit_hook) {
            return None;
        }
        servers.insert(server_url.to_owned(), start(server_url)?);
    }
    servers.get_mut(server_url).map(work)
}

/// Whether the exit hook is in place (a background is only started once it is).
static HOOKED: OnceLock<bool> = OnceLock::new();

/// The process that registered the exit hook: a child made by `fork` inherits the hook, but not
/// the threads it would wait for.
static HOOKED_BY: AtomicU32 = AtomicU32::new(0);

fn start(server_url: &str) -> Option<Server> {
    let (drops, queue) = sync_channel(QUEUED_DROPS);
    let url = server_url.to_owned();
    let dropper = std::thread::Builder::new()
        .name("migrate-testing-drops".to_owned())
        .spawn(move || drop_each(&url, queue))
        .ok()?;
    let spares = Arc::new(Spares {
        state: Mutex::new(SpareState::default()),
        changed: Condvar::new(),
    });
    let fillers = (0..FILLERS)
        .filter_map(|_| {
            let url = server_url.to_owned();
            let shared = Arc::clone(&spares);
            std::thread::Builder::new()
                .name("migrate-testing-spares".to_owned())
                .spawn(move || fill(&url, &shared))
                .ok()
        })
        .collect();
    Some(Server {
        drops: Some(drops),
        dropper: Some(dropper),
        spares,
        fillers,
    })
}

/// A background thread's connection, made (again) when it is needed and gone: its statements
/// are bounded, so that the exit never hangs on a lock.
#[derive(Default)]
struct Session {
    client: Option<Client>,
    /// `<server process id>_<start, unix seconds>` of the session: a spare's name carries its
    /// maker's, which no other session has while the maker lives.
    id: String,
}

impl Session {
    /// The connection, and the session's id.
    fn client(&mut self, server_url: &str) -> Result<(&mut Client, &str), Error> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => {
                let mut fresh = connect(server_url, APPLICATION_NAME)?;
                fresh
                    .batch_execute("SET lock_timeout = '30s'; SET statement_timeout = '5min'")
                    .map_err(database_error(
                        "setting the background connection's timeouts",
                    ))?;
                self.id = value(
                    &mut fresh,
                    "SELECT pid || '_' || extract(epoch FROM backend_start)::bigint \
                     FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                    "reading the connection's process id",
                )?
                .unwrap_or_default();
                fresh
            }
        };
        Ok((self.client.insert(client), &self.id))
    }

    fn drop_database(&mut self, server_url: &str, name: &str, what: &str) {
        let dropped = self
            .client(server_url)
            .and_then(|(client, _)| template::drop_database(client, name));
        if let Err(e) = dropped {
            report(&format!("could not drop the {what} {name}: {e}"));
        }
    }
}

fn drop_each(server_url: &str, queue: Receiver<String>) {
    let mut session = Session::default();
    for name in queue {
        session.drop_database(server_url, &name, "test database");
    }
}

/// Keeps [`SPARES`] copies of the wanted template ready until the process exits, then drops
/// the ones no test took.
fn fill(server_url: &str, spares: &Spares) {
    let mut session = Session::default();
    let mut counter = 0u64;
    while let Some(template) = next_to_make(spares) {
        counter += 1;
        let made = make_spare(&mut session, server_url, &template, counter);
        let mut state = locked(&spares.state);
        state.making -= 1;
        match made {
            // Made while the process began to exit: nobody takes it.
            Ok(spare) if state.stopping => {
                drop(state);
                session.drop_database(server_url, &spare, "spare copy");
            }
            Ok(spare) => state.ready.push((template, spare)),
            Err(e) => {
                log::debug!("migrate::testing: no spare copy of {template}: {e}");
                // No connection, or the template is gone or being rebuilt: tests copy for
                // themselves until the next one asks again.
                if state.wanted.as_deref() == Some(template.as_str()) {
                    state.wanted = None;
                }
            }
        }
    }
    let ready = std::mem::take(&mut locked(&spares.state).ready);
    for (_, spare) in ready {
        session.drop_database(server_url, &spare, "spare copy");
    }
}

/// Copies `template` to a new spare, on the filler's connection.
fn make_spare(
    session: &mut Session,
    server_url: &str,
    template: &str,
    counter: u64,
) -> Result<String, Error> {
    let (admin, maker) = session.client(server_url)?;
    let spare = format!("{SPARE_PREFIX}{maker}_{counter}");
    super::copy_template(admin, server_url, &spare, template)?;
    Ok(spare)
}

/// Waits until a spare of the wanted template is short, and counts it as being made; `None`
/// once the process is exiting.
fn next_to_make(spares: &Spares) -> Option<String> {
    let mut state = locked(&spares.state);
    loop {
        if state.stopping {
            return None;
        }
        if let Some(wanted) = state.wanted.clone() {
            let ready = state.ready.iter().filter(|(t, _)| *t == wanted).count();
            if ready + state.making < SPARES {
                state.making += 1;
                return Some(wanted);
            }
        }
        state = spares
            .changed
            .wait(state)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Removes the spares whose maker's connection is gone: a process that was killed left them.
pub(super) fn remove_orphaned_spares(admin: &mut Client) -> Result<(), Error> {
    let orphans = rows(
        admin,
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, '{SPARE_PREFIX}') \
             AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE starts_with(substr(datname, {start}), \
             pid || '_' || extract(epoch FROM backend_start)::bigint || '_'))",
            start = SPARE_PREFIX.len() + 1
        ),
        "listing the spare copies left",
    )?;
    for name in orphans
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
    {
        // One another process is renaming refuses: it is not an orphan.
        let _ = template::drop_database(admin, &name);
    }
    Ok(())
}

unsafe extern "C" {
    /// The C library's exit hook: libtest returns from `main` (or calls `exit`) when the tests
    /// are done, and Rust runs no destructor of a static then.
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

fn register_exit_hook() -> bool {
    HOOKED_BY.store(std::process::id(), Ordering::SeqCst);
    // SAFETY: `finish_at_exit` is a plain function that lives as long as the process.
    unsafe { atexit(finish_at_exit) == 0 }
}

extern "C" fn finish_at_exit() {
    // A panic must not cross into C: whatever goes wrong here is reported and ignored.
    let _ = std::panic::catch_unwind(finish);
}

/// Stops making spares, drops them and finishes the queued drops, within [`EXIT_BOUND`].
fn finish() {
    if HOOKED_BY.load(Ordering::SeqCst) != std::process::id() {
        return;
    }
    let mut servers = {
        let mut servers = locked(&SERVERS);
        EXITING.store(true, Ordering::SeqCst);
        std::mem::take(&mut *servers)
    };
    // Every server stops first, then the process waits for them all.
    for server in servers.values_mut() {
        locked(&server.spares.state).stopping = true;
        server.spares.changed.notify_all();
        // Closing the queue ends the dropper once it has dropped everything in it.
        server.drops = None;
    }
    let (done, finished) = channel();
    let waiter = std::thread::spawn(move || {
        for server in servers.values_mut() {
            for thread in server.fillers.drain(..).chain(server.dropper.take()) {
                let _ = thread.join();
            }
        }
        let _ = done.send(());
    });
    if finished.recv_timeout(EXIT_BOUND).is_err() {
        report(&format!(
            "test databases were still being dropped after {} s; a later run removes them after a day",
            EXIT_BOUND.as_secs()
        ));
    }
    drop(waiter);
}
