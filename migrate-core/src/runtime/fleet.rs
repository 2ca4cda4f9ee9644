//! Fleets: the same migrations on many targets, the tenant schemas of one database or the
//! databases of one server. Each target keeps its own history and gets the whole protocol (lock,
//! budget, retries, resume); at most `jobs` run at once; a failing target never stops the others,
//! except while the canaries run.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::SimpleQueryMessage;

use super::connect::connect;
use super::drift::with_database;
use super::error::{Error, ServerError};
use super::protocol::Migrator;
use super::status::Status;

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
        // Read only: the query lists, it changes nothing.
        let listed = client
            .simple_query(&format!(
                "BEGIN READ ONLY; {}; COMMIT",
                query.trim().trim_end_matches(';')
            ))
            .map_err(|e| Error::Database {
                action: "listing the fleet's targets".to_owned(),
                cause: Box::new(ServerError::from_postgres(&e)),
            })?;
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
    /// Called every [`FLEET_PROGRESS_EVERY`] while targets are in flight (it is logged too).
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
                url.to_owned()
            }
            Targets::Databases(_) => with_database(url, name)?,
        };
        Ok((Migrator::with_settings(self.migrations(), settings), url))
    }

    /// Applies what is pending on every target, `options.jobs` at a time; the canaries first.
    pub fn run_each(&self, url: &str, targets: &Targets, options: FleetOptions) -> FleetReport {
        let run = |name: &str| -> TargetOutcome {
            let _span = super::trace::target(name).entered();
            match self
                .for_target(url, targets, name)
                .and_then(|(migrator, url)| migrator.run_url(&url))
            {
                Ok(report) => TargetOutcome::Applied(
                    report
                        .applied
                        .iter()
                        .map(|a| a.revision.to_owned())
                        .collect(),
                ),
                Err(e) => TargetOutcome::Failed(e),
            }
        };
        let names = targets.names();
        let canaries = options.canary.min(names.len());
        let reports_of = |names: &[String]| {
            in_parallel(names, options.jobs, &run, options.on_progress)
                .into_iter()
                .map(|(target, outcome, elapsed)| TargetReport {
                    target,
                    outcome,
                    elapsed,
                })
                .collect::<Vec<_>>()
        };
        let mut reports = reports_of(&names[..canaries]);
        let canary_failed = reports
            .iter()
            .any(|r| matches!(r.outcome, TargetOutcome::Failed(_)));
        if canary_failed {
            reports.extend(names[canaries..].iter().map(|name| TargetReport {
                target: name.clone(),
                outcome: TargetOutcome::Skipped,
                elapsed: Duration::ZERO,
            }));
        } else {
            reports.extend(reports_of(&names[canaries..]));
        }
        FleetReport { targets: reports }
    }

    /// Every target's status, `jobs` at a time, in the order the targets were listed.
    pub fn status_each(
        &self,
        url: &str,
        targets: &Targets,
        jobs: usize,
    ) -> Vec<(String, Result<Status, Error>)> {
        let status = |name: &str| {
            self.for_target(url, targets, name)
                .and_then(|(migrator, url)| {
                    connect(&url, &migrator.settings().application_name)
                        .and_then(|mut client| migrator.status(&mut client))
                })
        };
        in_parallel(targets.names(), jobs, &status, None)
            .into_iter()
            .map(|(name, status, _)| (name, status))
            .collect()
    }
}

/// Runs `run` on each name, at most `jobs` at once: each result with its name and how long it
/// took, in the names' order.
fn in_parallel<T: Send>(
    names: &[String],
    jobs: usize,
    run: &(dyn Fn(&str) -> T + Sync),
    on_progress: Option<fn(&FleetProgress)>,
) -> Vec<(String, T, Duration)> {
    let next = Mutex::new(0usize);
    let done = Mutex::new(Vec::with_capacity(names.len()));
    let in_flight: Mutex<BTreeMap<usize, Instant>> = Mutex::new(BTreeMap::new());
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
                let progress = FleetProgress {
                    done: done.lock().unwrap_or_else(|e| e.into_inner()).len(),
                    total: names.len(),
                    slowest: in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .min_by_key(|(_, started)| **started)
                        .map(|(index, started)| (names[*index].clone(), started.elapsed())),
                };
                log::info!("fleet: {progress}");
                if let Some(report) = on_progress {
                    report(&progress);
                }
            }
        });
        let workers: Vec<_> = (0..jobs.clamp(1, names.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let index = {
                            let mut next = next.lock().unwrap_or_else(|e| e.into_inner());
                            let index = *next;
                            *next += 1;
                            index
                        };
                        let Some(name) = names.get(index) else { break };
                        let started = Instant::now();
                        in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(index, started);
                        let result = run(name);
                        let elapsed = started.elapsed();
                        in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&index);
                        done.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((index, (name.clone(), result, elapsed)));
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
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEEN: Mutex<Vec<FleetProgress>> = Mutex::new(Vec::new());

    fn remember(progress: &FleetProgress) {
        SEEN.lock().unwrap().push(progress.clone());
    }

    /// While targets run, the callback hears how many are done and which one is slowest; the
    /// results keep the targets' order whatever order they finished in.
    #[test]
    fn a_running_fleet_reports_targets_done_and_the_slowest_in_flight() {
        let names: Vec<String> = ["slow", "a", "b"].iter().map(|n| (*n).to_owned()).collect();
        let run = |name: &str| {
            if name == "slow" {
                std::thread::sleep(FLEET_PROGRESS_EVERY + Duration::from_millis(400));
            }
            name.len()
        };
        let results = in_parallel(&names, 2, &run, Some(remember));
        let order: Vec<(&str, usize)> = results.iter().map(|(n, r, _)| (n.as_str(), *r)).collect();
        assert_eq!(order, [("slow", 4), ("a", 1), ("b", 1)]);
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!((seen[0].done, seen[0].total), (2, 3));
        let (slowest, running) = seen[0].slowest.clone().unwrap();
        assert_eq!(slowest, "slow");
        assert!(running >= FLEET_PROGRESS_EVERY, "{running:?}");
    }
}
