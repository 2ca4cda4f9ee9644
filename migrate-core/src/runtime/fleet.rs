//! Fleets: the same migrations on many targets, the tenant schemas of one database or the
//! databases of one server. Each target keeps its own history and gets the whole protocol (lock,
//! budget, retries, resume); at most `jobs` run at once; a failing target never stops the others,
//! except while the canaries run.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::SimpleQueryMessage;

use super::connect::connect;
use super::drift::{Drift, url_naming};
use super::error::{Error, ServerError};
use super::protocol::Migrator;
use super::status::Status;

/// The URL of the fleet's database `name`: `url` with its path naming `name` instead.
fn database_url(url: &str, name: &str) -> Result<String, Error> {
    url_naming(
        url,
        name,
        "a fleet of databases reaches each one through a postgres:// URL, the database's name in its path",
    )
}

/// The listing query, run read only: it lists, it changes nothing.
fn read_only(query: &str) -> String {
    format!(
        "BEGIN READ ONLY; {}; COMMIT",
        query.trim().trim_end_matches(';')
    )
}

fn listing_error(e: postgres::Error) -> Error {
    Error::Database {
        action: "listing the fleet's targets".to_owned(),
        cause: Box::new(ServerError::from_postgres(&e)),
    }
}

/// What a fleet is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Schemas of the database: each holds its history, and comes first in `search_path` while
    /// its migrations run.
    Schemas(Vec<String>),
    /// Databases of the server: each holds its history where the settings say.
    Databases(Vec<String>),
}

impl Targets {
    /// The targets a query lists: schema names run on the database at `url`, database names
    /// run on its server.
    pub fn listed(
        url: &str,
        application_name: &str,
        query: &str,
        schemas: bool,
    ) -> Result<Targets, Error> {
        let mut client = connect(url, application_name)?;
        let listed = client
            .simple_query(&read_only(query))
            .map_err(listing_error)?;
        Targets::from_rows(&listed, query, schemas)
    }

    /// [`Targets::listed`] on tokio.
    #[cfg(feature = "tokio")]
    pub async fn listed_async(
        url: &str,
        application_name: &str,
        query: &str,
        schemas: bool,
    ) -> Result<Targets, Error> {
        let client = super::connect::connect_async(url, application_name).await?;
        let listed = client
            .simple_query(&read_only(query))
            .await
            .map_err(listing_error)?;
        Targets::from_rows(&listed, query, schemas)
    }

    fn from_rows(
        listed: &[SimpleQueryMessage],
        query: &str,
        schemas: bool,
    ) -> Result<Targets, Error> {
        let mut names: Vec<String> = Vec::new();
        for (index, row) in listed
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .enumerate()
        {
            match row.get(0) {
                Some(name) if !name.is_empty() => {
                    // Each target once, in the order listed.
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
                _ => {
                    return Err(Error::InvalidConfig {
                        name: "fleet query".to_owned(),
                        value: query.to_owned(),
                        reason: format!("row {} names no target (NULL or empty)", index + 1),
                    });
                }
            }
        }
        Ok(if schemas {
            Targets::Schemas(names)
        } else {
            Targets::Databases(names)
        })
    }

    pub fn names(&self) -> &[String] {
        match self {
            Targets::Schemas(names) | Targets::Databases(names) => names,
        }
    }
}

/// How one target ended.
#[derive(Debug)]
pub enum TargetOutcome {
    /// These revisions were applied now (none when it was up to date).
    Applied(Vec<String>),
    Failed(Error),
    /// Not attempted: a canary failed.
    Skipped,
}

#[derive(Debug)]
pub struct TargetReport {
    pub target: String,
    pub outcome: TargetOutcome,
    pub elapsed: Duration,
}

/// Every target's outcome, in the order the targets were listed.
#[derive(Debug)]
pub struct FleetReport {
    pub targets: Vec<TargetReport>,
}

impl FleetReport {
    pub fn failed(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| matches!(t.outcome, TargetOutcome::Failed(_)))
            .map(|t| t.target.as_str())
            .collect()
    }
}

/// How far a fleet got, reported while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetProgress {
    pub done: usize,
    pub total: usize,
    /// The target in flight the longest, and for how long.
    pub slowest: Option<(String, Duration)>,
}

impl std::fmt::Display for FleetProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} done", self.done, self.total)?;
        if let Some((name, running)) = &self.slowest {
            write!(
                f,
                "; slowest in flight: {name} ({:.1} s)",
                running.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// How to run a fleet.
#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    /// The most targets in flight at once (at least 1).
    pub jobs: usize,
    /// Targets migrated first; when one of them fails, no other is attempted.
    pub canary: usize,
    /// Called as each target ends, and every [`FLEET_PROGRESS_EVERY`] while targets are in
    /// flight (which is logged too).
    pub on_progress: Option<fn(&FleetProgress)>,
}

/// How often a running fleet reports how far it got.
pub const FLEET_PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl Default for FleetOptions {
    fn default() -> FleetOptions {
        FleetOptions {
            jobs: 1,
            canary: 0,
            on_progress: None,
        }
    }
}

impl Migrator<'_> {
    /// This migrator for one target: the schema's history, with the schema first in
    /// `search_path`; or the database's URL.
    fn for_target(
        &self,
        url: &str,
        targets: &Targets,
        name: &str,
    ) -> Result<(Migrator<'_>, String), Error> {
        let mut settings = self.settings().clone();
        let url = match targets {
            Targets::Schemas(_) => {
                settings.schema = name.to_owned();
                settings.search_path = Some(format!("\"{}\", public", name.replace('"', "\"\"")));
                settings.tenant_schema = Some(name.to_owned());
                url.to_owned()
            }
            Targets::Databases(_) => database_url(url, name)?,
        };
        Ok((
            Migrator::with_settings(self.migrations(), settings).on_target(name),
            url,
        ))
    }

    /// Applies what is pending on every target, `options.jobs` at a time; the canaries first.
    pub fn run_each(&self, url: &str, targets: &Targets, options: FleetOptions) -> FleetReport {
        let run = |_: &mut (), name: &str| -> TargetOutcome {
            let _span = super::trace::target(name).entered();
            outcome(
                self.for_target(url, targets, name)
                    .and_then(|(migrator, url)| migrator.run_url(&url)),
            )
        };
        let names = targets.names();
        let canaries = options.canary.min(names.len());
        let mut reports = reports_of(in_parallel(
            &names[..canaries],
            options.jobs,
            &|| (),
            &run,
            options.on_progress,
        ));
        if any_failed(&reports) {
            reports.extend(skipped(&names[canaries..]));
        } else {
            reports.extend(reports_of(in_parallel(
                &names[canaries..],
                options.jobs,
                &|| (),
                &run,
                options.on_progress,
            )));
        }
        FleetReport { targets: reports }
    }

    /// Every target's status, `jobs` at a time, in the order the targets were listed. The
    /// schemas of one database are read on one connection per job, without the snapshot
    /// comparison (the database holds every tenant); each database on its own connection.
    pub fn status_each(
        &self,
        url: &str,
        targets: &Targets,
        jobs: usize,
    ) -> Vec<(String, Result<Status, Error>)> {
        let status = |held: &mut Option<postgres::Client>, name: &str| {
            let (migrator, url) = self.for_target(url, targets, name)?;
            let application_name = &migrator.settings().application_name;
            match targets {
                Targets::Schemas(_) => {
                    let client = match held {
                        Some(client) if !client.is_closed() => client,
                        _ => held.insert(connect(&url, application_name)?),
                    };
                    migrator.history_status(client)
                }
                Targets::Databases(_) => connect(&url, application_name)
                    .and_then(|mut client| migrator.status(&mut client)),
            }
        };
        in_parallel(targets.names(), jobs, &|| None, &status, None)
            .into_iter()
            .map(|(name, status, _)| (name, status))
            .collect()
    }

    /// Every target's drift ([`Migrator::drift`]), `jobs` at a time, in the order the targets
    /// were listed. A tenant schema is compared alone: its objects in the database against its
    /// migrations replayed into a schema of its name in the shadow. A `shadow_url` (one empty
    /// database) serves one target at a time.
    pub fn drift_each(
        &self,
        url: &str,
        targets: &Targets,
        shadow_url: Option<&str>,
        jobs: usize,
    ) -> Vec<(String, Result<Drift, Error>)> {
        let jobs = if shadow_url.is_some() { 1 } else { jobs };
        let drift = |_: &mut (), name: &str| {
            self.for_target(url, targets, name)
                .and_then(|(migrator, url)| migrator.drift(&url, shadow_url))
        };
        in_parallel(targets.names(), jobs, &|| (), &drift, None)
            .into_iter()
            .map(|(name, drift, _)| (name, drift))
            .collect()
    }

    /// [`Migrator::run_each`] on tokio: the targets in flight are futures awaited together on
    /// the caller's task (a long statement's progress is still read from a thread of its own).
    #[cfg(feature = "tokio")]
    pub async fn run_each_async(
        &self,
        url: &str,
        targets: &Targets,
        options: FleetOptions,
    ) -> FleetReport {
        let run = |(): (), name: String| async move {
            let run = async {
                let (migrator, url) = self.for_target(url, targets, &name)?;
                migrator.run_url_async(&url).await
            };
            let span = super::trace::target(&name);
            (
                outcome(super::trace::Instrument::instrument(run, span).await),
                (),
            )
        };
        let names = targets.names();
        let canaries = options.canary.min(names.len());
        let mut reports = reports_of(
            in_parallel_async(
                &names[..canaries],
                options.jobs,
                &|| (),
                &run,
                options.on_progress,
            )
            .await,
        );
        if any_failed(&reports) {
            reports.extend(skipped(&names[canaries..]));
        } else {
            reports.extend(reports_of(
                in_parallel_async(
                    &names[canaries..],
                    options.jobs,
                    &|| (),
                    &run,
                    options.on_progress,
                )
                .await,
            ));
        }
        FleetReport { targets: reports }
    }

    /// [`Migrator::status_each`] on tokio.
    #[cfg(feature = "tokio")]
    pub async fn status_each_async(
        &self,
        url: &str,
        targets: &Targets,
        jobs: usize,
    ) -> Vec<(String, Result<Status, Error>)> {
        // A schema's connection serves the job's next schema.
        let status = |held: Option<tokio_postgres::Client>, name: String| async move {
            let held = held.filter(|client| !client.is_closed());
            let (migrator, url) = match self.for_target(url, targets, &name) {
                Ok(target) => target,
                Err(e) => return (Err(e), held),
            };
            let mut client = match held {
                Some(client) => client,
                None => {
                    let application_name = &migrator.settings().application_name;
                    match super::connect::connect_async(&url, application_name).await {
                        Ok(client) => client,
                        Err(e) => return (Err(e), None),
                    }
                }
            };
            match targets {
                Targets::Schemas(_) => {
                    (migrator.history_status_on(&mut client).await, Some(client))
                }
                Targets::Databases(_) => (migrator.status_async(&mut client).await, None),
            }
        };
        in_parallel_async(targets.names(), jobs, &|| None, &status, None)
            .await
            .into_iter()
            .map(|(name, status, _)| (name, status))
            .collect()
    }
}

/// A target's run, as its report says it.
fn outcome(run: Result<super::protocol::Report, Error>) -> TargetOutcome {
    match run {
        Ok(report) => TargetOutcome::Applied(
            report
                .applied
                .iter()
                .map(|a| a.revision.to_owned())
                .collect(),
        ),
        Err(e) => TargetOutcome::Failed(e),
    }
}

fn reports_of(done: Vec<Done<TargetOutcome>>) -> Vec<TargetReport> {
    done.into_iter()
        .map(|(target, outcome, elapsed)| TargetReport {
            target,
            outcome,
            elapsed,
        })
        .collect()
}

fn any_failed(reports: &[TargetReport]) -> bool {
    reports
        .iter()
        .any(|r| matches!(r.outcome, TargetOutcome::Failed(_)))
}

/// The targets not attempted after a canary failed.
fn skipped(names: &[String]) -> impl Iterator<Item = TargetReport> + '_ {
    names.iter().map(|name| TargetReport {
        target: name.clone(),
        outcome: TargetOutcome::Skipped,
        elapsed: Duration::ZERO,
    })
}

/// A target's result: its name, what running it returned, and how long it took.
type Done<T> = (String, T, Duration);

/// Which targets are taken, in flight and done, shared by whatever runs them.
struct Tally<'a, T> {
    names: &'a [String],
    next: Mutex<usize>,
    in_flight: Mutex<BTreeMap<usize, Instant>>,
    done: Mutex<Vec<(usize, Done<T>)>>,
}

impl<'a, T> Tally<'a, T> {
    fn new(names: &'a [String]) -> Tally<'a, T> {
        Tally {
            names,
            next: Mutex::new(0),
            in_flight: Mutex::new(BTreeMap::new()),
            done: Mutex::new(Vec::with_capacity(names.len())),
        }
    }

    /// The next target to run, marked in flight; `None` when every one is taken.
    fn take(&self) -> Option<(usize, &'a String, Instant)> {
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let index = *next;
            *next += 1;
            index
        };
        let name = self.names.get(index)?;
        let started = Instant::now();
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, started);
        Some((index, name, started))
    }

    /// Records a target's result, and tells `on_progress` (not the log: a fleet of hundreds
    /// would flood it).
    fn finish(
        &self,
        index: usize,
        started: Instant,
        result: T,
        on_progress: Option<fn(&FleetProgress)>,
    ) {
        let elapsed = started.elapsed();
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index);
        if let Some(name) = self.names.get(index) {
            self.done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((index, (name.clone(), result, elapsed)));
        }
        if let Some(report) = on_progress {
            report(&self.progress());
        }
    }

    fn progress(&self) -> FleetProgress {
        FleetProgress {
            done: self.done.lock().unwrap_or_else(|e| e.into_inner()).len(),
            total: self.names.len(),
            slowest: self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .min_by_key(|(_, started)| **started)
                .map(|(index, started)| (self.names[*index].clone(), started.elapsed())),
        }
    }

    /// Logs targets done of the total and the slowest in flight, and tells `on_progress`.
    fn report(&self, on_progress: Option<fn(&FleetProgress)>) {
        let progress = self.progress();
        log::info!("fleet: {progress}");
        if let Some(report) = on_progress {
            report(&progress);
        }
    }

    /// The results, in the names' order.
    fn results(self) -> Vec<Done<T>> {
        let mut done = self.done.into_inner().unwrap_or_else(|e| e.into_inner());
        done.sort_by_key(|(index, _)| *index);
        done.into_iter().map(|(_, result)| result).collect()
    }
}

/// [`in_parallel`] on tokio: `jobs` loops taking the next target, awaited together with a
/// progress reporter that ends with them. Each loop's state goes into each run and comes back.
#[cfg(feature = "tokio")]
async fn in_parallel_async<W, T, F>(
    names: &[String],
    jobs: usize,
    open: &(dyn Fn() -> W + Sync),
    run: &(dyn Fn(W, String) -> F + Sync),
    on_progress: Option<fn(&FleetProgress)>,
) -> Vec<Done<T>>
where
    F: std::future::Future<Output = (T, W)>,
{
    let tally = Tally::new(names);
    let workers = (0..jobs.clamp(1, names.len().max(1))).map(|_| async {
        let mut state = open();
        while let Some((index, name, started)) = tally.take() {
            let (result, next) = run(state, name.clone()).await;
            state = next;
            tally.finish(index, started, result, on_progress);
        }
    });
    {
        let all = std::pin::pin!(futures_util::future::join_all(workers));
        let monitor = std::pin::pin!(async {
            loop {
                tokio::time::sleep(FLEET_PROGRESS_EVERY).await;
                tally.report(on_progress);
            }
        });
        futures_util::future::select(all, monitor).await;
    }
    tally.results()
}

/// Runs `run` on each name, at most `jobs` at once, each job with its own state from `open`:
/// each result with its name and how long it took, in the names' order.
fn in_parallel<W, T: Send>(
    names: &[String],
    jobs: usize,
    open: &(dyn Fn() -> W + Sync),
    run: &(dyn Fn(&mut W, &str) -> T + Sync),
    on_progress: Option<fn(&FleetProgress)>,
) -> Vec<Done<T>> {
    let tally = Tally::new(names);
    let finished = (Mutex::new(false), Condvar::new());
    std::thread::scope(|scope| {
        // Every few seconds: targets done of the total, and the slowest in flight.
        let monitor = scope.spawn(|| {
            let (over, wake) = &finished;
            loop {
                // The lock is released before reporting: the reporter may take its time.
                {
                    let guard = over.lock().unwrap_or_else(|e| e.into_inner());
                    let (guard, _) = wake
                        .wait_timeout_while(guard, FLEET_PROGRESS_EVERY, |over| !*over)
                        .unwrap_or_else(|e| e.into_inner());
                    if *guard {
                        return;
                    }
                }
                tally.report(on_progress);
            }
        });
        let workers: Vec<_> = (0..jobs.clamp(1, names.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut state = open();
                    while let Some((index, name, started)) = tally.take() {
                        let result = run(&mut state, name);
                        tally.finish(index, started, result, on_progress);
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
        let (over, wake) = &finished;
        *over.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        let _ = monitor.join();
    });
    tally.results()
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEEN: Mutex<Vec<FleetProgress>> = Mutex::new(Vec::new());

    /// A database of the fleet is reached through the URL with its name as the path; a
    /// key=value connection string has no path to change, and says so without its password.
    #[test]
    fn a_fleet_database_is_reached_through_a_url() {
        assert_eq!(
            database_url(
                "postgres://u:p%C3%A9@db:5433/app?sslmode=require",
                "kunde ü"
            )
            .unwrap(),
            "postgres://u:p%C3%A9@db:5433/kunde%20%C3%BC?sslmode=require"
        );
        let refused = database_url("host=db dbname=app password=geheim", "kunde")
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            "invalid database URL `host='db' dbname='app'`: relative URL without a base; a fleet of databases reaches each one through a postgres:// URL, the database's name in its path"
        );
    }

    fn remember(progress: &FleetProgress) {
        SEEN.lock().unwrap().push(progress.clone());
    }

    /// The callback hears each target finish, and every few seconds how many are done and
    /// which one is slowest; the results keep the targets' order whatever order they finished
    /// in; each job keeps its own state from one target to the next.
    #[test]
    fn a_running_fleet_reports_targets_done_and_the_slowest_in_flight() {
        let names: Vec<String> = ["slow", "a", "b"].iter().map(|n| (*n).to_owned()).collect();
        let run = |runs: &mut usize, name: &str| {
            *runs += 1;
            if name == "slow" {
                // Long enough past the first periodic report that a loaded machine still
                // delivers it before this target ends, short of the second.
                std::thread::sleep(FLEET_PROGRESS_EVERY + Duration::from_secs(2));
            }
            (name.len(), *runs)
        };
        let results = in_parallel(&names, 2, &|| 0, &run, Some(remember));
        let order: Vec<(&str, usize)> = results.iter().map(|(n, r, _)| (n.as_str(), r.0)).collect();
        assert_eq!(order, [("slow", 4), ("a", 1), ("b", 1)]);
        // One job ran "slow"; the other ran "a" then "b", counting its own runs.
        let runs: Vec<usize> = results.iter().map(|(_, r, _)| r.1).collect();
        assert_eq!(runs, [1, 1, 2]);
        let seen = SEEN.lock().unwrap().clone();
        let counts: Vec<(usize, usize)> = seen.iter().map(|p| (p.done, p.total)).collect();
        assert_eq!(counts, [(1, 3), (2, 3), (2, 3), (3, 3)], "{seen:?}");
        let (slowest, running) = seen[2].slowest.clone().unwrap();
        assert_eq!(slowest, "slow");
        assert!(running >= FLEET_PROGRESS_EVERY, "{running:?}");
        assert_eq!(seen[3].slowest, None);
    }
}
