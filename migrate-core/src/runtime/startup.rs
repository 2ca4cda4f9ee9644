//! `migrate::startup`: the one call a service makes at boot. Reads the environment, applies what
//! is pending (or skips on request) and returns what happened; never panics, never exits.

use super::config::EnvConfig;
use super::connect::Connector;
#[cfg(feature = "tokio")]
use super::driver::Tokio;
use super::driver::{BlockingOwned, Driver, block_on};
use super::error::Error;
use super::protocol::{Migrator, Report, outside_async_runtime};
use super::status::{Health, Status};
use crate::Migrations;

/// What `startup` did.
#[derive(Debug)]
#[must_use = "the outcome tells whether the schema is ready; report it on the readiness endpoint"]
pub enum Outcome {
    /// Neither `MIGRATION_DATABASE_URL` nor `DATABASE_URL` is set: nothing was touched.
    NotConfigured,
    /// `MIGRATE_SKIP` is set: the schema was not touched. The status, when a URL is set.
    Skipped {
        status: Option<Result<Status, Error>>,
    },
    /// Migrations ran (the report lists what was applied, possibly nothing).
    Migrated(Report),
    /// Migrating failed; the service should report not ready rather than crash-loop.
    Failed(Error),
}

impl Outcome {
    /// Whether the schema is usable by this binary (up to date, or ahead by a descendant):
    /// after migrating, or when skipped and the status read shows nothing pending.
    pub fn is_ready(&self) -> bool {
        match self {
            Outcome::Migrated(report) => report.status.health() != Health::Fail,
            Outcome::Skipped {
                status: Some(Ok(status)),
            } => status.health() != Health::Fail,
            Outcome::NotConfigured | Outcome::Skipped { .. } | Outcome::Failed(_) => false,
        }
    }
}

/// Applies the embedded migrations according to the environment:
///
/// | variable | meaning |
/// |---|---|
/// | `MIGRATE_SKIP` | `1/true/yes/on`: do not touch the schema (status is still read) |
/// | `MIGRATION_DATABASE_URL` | direct connection used for migrations; else `DATABASE_URL` |
/// | `MIGRATE_LOCK_TIMEOUT` | per statement lock wait before a retry (default `1s`) |
/// | `MIGRATE_STATEMENT_TIMEOUT` | per statement limit (default none) |
/// | `MIGRATE_WAIT_BUDGET` | total time for waiting and retries (default `10min`) |
/// | `MIGRATE_SCHEMA` | schema of the history table (default `public`) |
/// | `MIGRATE_POOLER` | `transaction` when the URL goes through a transaction-mode pooler |
pub fn startup(migrations: &Migrations) -> Outcome {
    match config_from_env() {
        Ok(config) => startup_with(migrations, &config),
        Err(error) => Outcome::Failed(error),
    }
}

/// [`startup`] with an explicit configuration instead of the process environment. Runs on the
/// blocking API's own connections, which send a whole migration in one round trip.
pub fn startup_with(migrations: &Migrations, config: &EnvConfig) -> Outcome {
    outside_async_runtime(|| block_on(startup_on(&BlockingOwned, migrations, config)))
        .unwrap_or_else(Outcome::Failed)
}

/// [`startup`] for an async service, on tokio-postgres: reads the same environment and gives the
/// same outcome, awaiting instead of blocking.
///
/// ```ignore
/// #[tokio::main]
/// async fn main() {
///     let outcome = migrate::startup_async(&MIGRATIONS).await;
///     // serve, reporting `outcome` on the readiness endpoint
/// }
/// ```
#[cfg(feature = "tokio")]
pub async fn startup_async(migrations: &Migrations) -> Outcome {
    match config_from_env() {
        Ok(config) => startup_with_async(migrations, &config).await,
        Err(error) => Outcome::Failed(error),
    }
}

/// [`startup_async`] with an explicit configuration instead of the process environment.
#[cfg(feature = "tokio")]
pub async fn startup_with_async(migrations: &Migrations, config: &EnvConfig) -> Outcome {
    startup_on(&Tokio, migrations, config).await
}

fn config_from_env() -> Result<EnvConfig, Error> {
    EnvConfig::from_env().inspect_err(|error| log::error!("migrations not applied: {error}"))
}

async fn startup_on<D: Driver>(driver: &D, migrations: &Migrations, config: &EnvConfig) -> Outcome {
    let Some(url) = &config.url else {
        log::warn!("DATABASE_URL is not set: migrations skipped");
        return Outcome::NotConfigured;
    };
    let migrator = Migrator::with_settings(migrations, config.settings.clone());
    if let Err(error) = migrator.validate() {
        log::error!("migrations not applied: {error}");
        return Outcome::Failed(error);
    }
    let connector = match Connector::new(url, &config.settings.application_name) {
        Ok(connector) => connector,
        Err(error) => {
            log::error!("migrations not applied: {error}");
            return Outcome::Failed(error);
        }
    };
    if config.skip {
        log::warn!("MIGRATE_SKIP is set: the schema is not touched");
        let started = std::time::Instant::now();
        let status = match driver.connect(&connector).await {
            Ok(mut client) => migrator.status_on(&mut client).await,
            Err(e) => Err(connector.failed(started.elapsed(), e)),
        };
        if let Ok(status) = &status
            && !status.pending.is_empty()
        {
            log::warn!(
                "{} migration(s) pending while skipped",
                status.pending.len()
            );
        }
        return Outcome::Skipped {
            status: Some(status),
        };
    }
    log::info!(
        "migrating {} through {}",
        connector.display(),
        config.url_source
    );
    let migrator = migrator.watched_from(url);
    match migrator.run_connector(driver, &connector).await {
        Ok(mut report) => {
            if migrations.snapshot().is_some() {
                check_schema_drift(driver, &connector, &migrator, &mut report.status).await;
            }
            for ahead in &report.status.ahead {
                log::warn!(
                    "the database is ahead of this binary: revision {} is applied and unknown here (it builds on this binary's head)",
                    ahead.revision
                );
            }
            log::info!(
                "migrations up to date ({} applied now)",
                report.applied.len()
            );
            Outcome::Migrated(report)
        }
        Err(error) => {
            log::error!("migrations failed: {error}");
            Outcome::Failed(error)
        }
    }
}

/// Compares the live schema with the embedded snapshot once the migrations ran, and logs what
/// differs: a warning, never a reason to stop (the readiness endpoint reports it too).
async fn check_schema_drift<D: Driver>(
    driver: &D,
    connector: &Connector,
    migrator: &Migrator<'_>,
    status: &mut Status,
) {
    let started = std::time::Instant::now();
    let compared = match driver.connect(connector).await {
        Ok(mut client) => migrator.compare_with_snapshot(&mut client, status).await,
        Err(e) => Err(connector.failed(started.elapsed(), e)),
    };
    match (compared, &status.schema_drift) {
        (Err(error), _) => log::warn!("schema drift not checked: {error}"),
        (Ok(()), Some(differences)) if !differences.is_empty() => {
            log::warn!(
                "the schema differs from what the migrations build in {} place(s); `migrate diff` writes the migration that reconciles it",
                differences.len()
            );
            for difference in differences {
                log::warn!("schema drift: {difference}");
            }
        }
        (Ok(()), _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::status::tests::{SET, row};

    fn skipped(rows: &[crate::runtime::HistoryRow]) -> Outcome {
        Outcome::Skipped {
            status: Some(Ok(Status::compute(&SET, Some(rows)))),
        }
    }

    #[test]
    fn skipped_is_ready_only_when_nothing_is_pending() {
        let all = [row("a", &[]), row("b", &["a"]), row("c", &["b"])];
        assert!(skipped(&all).is_ready(), "up to date and skipped: ready");
        assert!(!skipped(&all[..2]).is_ready(), "one pending: not ready");
        assert!(!skipped(&[]).is_ready(), "nothing applied: not ready");
        let unreadable = Outcome::Skipped {
            status: Some(Err(Error::UnknownRevision {
                revision: "x".to_owned(),
            })),
        };
        assert!(!unreadable.is_ready(), "status unknown: not ready");
        assert!(!Outcome::Skipped { status: None }.is_ready());
        assert!(!Outcome::NotConfigured.is_ready());
    }
}
