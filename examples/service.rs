//! An example service: liveness and readiness endpoints, migrations at startup, and the operator
//! CLI mounted as subcommands.
//!
//! ```text
//! cargo run --example service            # serve (PORT, default 8080; HOST, default 127.0.0.1)
//! cargo run --example service -- status # applied / pending / ahead
//! ```
//!
//! The listener is bound before the database is touched, so the platform's liveness check passes
//! at once; migrations run as a task on the same runtime (the async API: no blocking thread)
//! while `/health/ready` says "migrating".
//!
//! With a schema per tenant, `MIGRATE_EACH_SCHEMA` holds the query that lists the tenants'
//! schemas: each is migrated with its own history, `MIGRATE_JOBS` at a time (default 4), and
//! readiness reports the tenants done while it runs, then each tenant's pending count.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("migrations");

/// How long readiness may spend asking the database before it answers "unreachable".
const DATABASE_CHECK_BUDGET: Duration = Duration::from_millis(1500);

#[derive(Parser)]
#[command(about = "Example service: serves HTTP, or runs one operator command")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    #[command(flatten)]
    Migrations(migrate::cli::Command),
}

/// Where startup migrations stand.
#[derive(Debug, Clone)]
enum Phase {
    Migrating,
    NotConfigured,
    Skipped,
    Done,
    Failed(String),
}

/// A schema per tenant: the query listing them, and how many are migrated at once.
#[derive(Debug, Clone)]
struct Fleet {
    query: String,
    jobs: usize,
}

impl Fleet {
    fn from_env() -> Result<Option<Fleet>, String> {
        let Some(query) = std::env::var("MIGRATE_EACH_SCHEMA")
            .ok()
            .filter(|q| !q.trim().is_empty())
        else {
            return Ok(None);
        };
        let jobs = match std::env::var("MIGRATE_JOBS") {
            Err(_) => 4,
            Ok(jobs) => match jobs.trim().parse::<usize>() {
                Ok(jobs) if jobs > 0 => jobs,
                _ => {
                    return Err(format!(
                        "invalid MIGRATE_JOBS `{jobs}`: expected a number of tenants at once, 1 or more"
                    ));
                }
            },
        };
        Ok(Some(Fleet { query, jobs }))
    }
}

/// How far the tenants' migrations got, while they run.
static FLEET_PROGRESS: Mutex<Option<migrate::fleet::FleetProgress>> = Mutex::new(None);

fn remember_fleet_progress(progress: &migrate::fleet::FleetProgress) {
    if let Ok(mut current) = FLEET_PROGRESS.lock() {
        *current = Some(progress.clone());
    }
}

struct AppState {
    phase: RwLock<Phase>,
    config: Option<migrate::EnvConfig>,
    fleet: Option<Fleet>,
    /// The database check in flight, or the last one. Probes join a check in flight instead of
    /// starting their own, so a hanging database holds one connection attempt, not one per probe.
    check: Mutex<Option<DatabaseCheck>>,
    /// The last fleet check that ended: what a probe answers with when the next one takes
    /// longer than it can wait.
    last_tenants: Mutex<Option<CheckResult>>,
}

/// What the database check found: the schema's status, or each tenant's.
#[derive(Debug, Clone)]
enum Checked {
    One(Box<migrate::Status>),
    Tenants(Vec<(String, Result<migrate::Status, String>)>),
    /// The database answered; the query listing the tenants failed.
    Unlisted(String),
    /// The database answered; the tenants are not read while startup migrates them.
    Connected,
}

/// How long a fleet's check (every tenant's history) serves the probes that follow it: reading
/// thousands of histories is no work for each probe.
const FLEET_CHECK_FRESH: Duration = Duration::from_secs(10);

type CheckResult = Result<Checked, String>;
/// `None` while the check runs; then when it ended, and what it found.
type DatabaseCheck = tokio::sync::watch::Receiver<Option<(Instant, CheckResult)>>;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        eprintln!("{} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let _ = log::set_logger(&StderrLogger);
    log::set_max_level(log::LevelFilter::Info);
    match Cli::parse().command {
        Some(Command::Migrations(command)) => migrate::cli::execute(&MIGRATIONS, command),
        Some(Command::Serve) | None => serve(),
    }
}

fn serve() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_server())
}

async fn run_server() -> ExitCode {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8080);
    let address = format!("{host}:{port}");
    // Bound before anything touches the database: liveness answers from the first second.
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {address}: {e}\n  help: set PORT (and HOST) to a free address"
            );
            return ExitCode::FAILURE;
        }
    };
    let local: SocketAddr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], port)));
    log::info!("listening on http://{local}");

    let (config, fleet) = match (migrate::EnvConfig::from_env(), Fleet::from_env()) {
        (Ok(config), Ok(fleet)) => (Some(config), fleet),
        (Err(e), _) => {
            log::error!("{e}");
            (None, None)
        }
        (_, Err(e)) => {
            log::error!("{e}");
            (None, None)
        }
    };
    let initial = match &config {
        None => Phase::Failed("invalid configuration".to_owned()),
        Some(c) if c.url.is_none() => Phase::NotConfigured,
        // Nothing will migrate: readiness must never say "migrating".
        Some(c) if c.skip => Phase::Skipped,
        Some(_) => Phase::Migrating,
    };
    let state = Arc::new(AppState {
        phase: RwLock::new(initial),
        config: config.clone(),
        fleet: fleet.clone(),
        check: Mutex::new(None),
        last_tenants: Mutex::new(None),
    });
    if let Some(config) = config.filter(|c| c.url.is_some()) {
        let state = state.clone();
        tokio::spawn(async move {
            let phase = match &fleet {
                Some(fleet) => migrate_tenants(&config, fleet).await,
                None => match migrate::startup_with_async(&MIGRATIONS, &config).await {
                    migrate::Outcome::NotConfigured => Phase::NotConfigured,
                    migrate::Outcome::Skipped { .. } => Phase::Skipped,
                    migrate::Outcome::Migrated(_) => Phase::Done,
                    migrate::Outcome::Failed(e) => Phase::Failed(e.to_string()),
                },
            };
            if let Ok(mut current) = state.phase.write() {
                *current = phase;
            }
        });
    }

    let app = Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("error: the server stopped: {e}");
        return ExitCode::FAILURE;
    }
    log::info!("stopped");
    ExitCode::SUCCESS
}

/// Every tenant schema the fleet's query lists, migrated `jobs` at a time; a failing tenant
/// does not stop the others.
async fn migrate_tenants(config: &migrate::EnvConfig, fleet: &Fleet) -> Phase {
    let url = config.url.clone().unwrap_or_default();
    if config.skip {
        log::warn!("MIGRATE_SKIP is set: the tenants' migrations are skipped");
        return Phase::Skipped;
    }
    let targets = match migrate::fleet::Targets::listed_async(
        &url,
        &config.settings.application_name,
        &fleet.query,
        true,
    )
    .await
    {
        Ok(targets) => targets,
        Err(e) => return Phase::Failed(e.to_string()),
    };
    let options = migrate::fleet::FleetOptions {
        jobs: fleet.jobs,
        canary: 0,
        on_progress: Some(remember_fleet_progress),
    };
    let report = migrate::Migrator::with_settings(&MIGRATIONS, config.settings.clone())
        .run_each_async(&url, &targets, options)
        .await;
    let failed = report.failed();
    for target in &report.targets {
        if let migrate::fleet::TargetOutcome::Failed(e) = &target.outcome {
            log::error!("tenant {}: {e}", target.target);
        }
    }
    log::info!(
        "{} tenant(s) migrated, {} failed",
        report.targets.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        Phase::Done
    } else {
        Phase::Failed(format!(
            "{} of {} tenant(s) failed: {}",
            failed.len(),
            report.targets.len(),
            failed.join(", ")
        ))
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn health_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/health+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Liveness: the process serves. Never touches the database.
async fn live() -> Response {
    health_json(StatusCode::OK, json!({"status": "pass"}))
}

fn check(status: &str, output: impl Into<String>) -> Value {
    json!([{"status": status, "output": output.into()}])
}

/// The schema's status from the one database check in flight, started now when none is. The
/// check runs as its own task; a probe waits for it at most `DATABASE_CHECK_BUDGET`, and a check
/// that hangs longer is joined by the next probes instead of being started again. A fleet's
/// check serves for `FLEET_CHECK_FRESH`, and a probe that cannot wait for the next one gets the
/// last; while startup migrates the tenants, only the connection is checked.
async fn database_status(
    state: &AppState,
    config: migrate::EnvConfig,
    migrating: bool,
) -> CheckResult {
    let fleet = state.fleet.clone();
    let mut check = {
        let Ok(mut slot) = state.check.lock() else {
            return Err("state unavailable".to_owned());
        };
        let finished = slot.as_ref().and_then(|check| {
            check
                .borrow()
                .as_ref()
                .map(|(at, found)| (*at, found.clone()))
        });
        match (slot.as_ref(), finished) {
            (Some(running), None) => running.clone(),
            (Some(done), Some((at, Ok(Checked::Tenants(_)))))
                if !migrating && at.elapsed() < FLEET_CHECK_FRESH =>
            {
                done.clone()
            }
            _ => {
                let (done, check) = tokio::sync::watch::channel(None);
                *slot = Some(check.clone());
                tokio::spawn(async move {
                    let checked = check_database(&config, fleet.as_ref(), migrating).await;
                    let _ = done.send(Some((Instant::now(), checked)));
                });
                check
            }
        }
    };
    let answer = tokio::time::timeout(DATABASE_CHECK_BUDGET, check.wait_for(Option::is_some)).await;
    let found = match answer {
        Ok(Ok(result)) => result
            .as_ref()
            .map(|(_, found)| found.clone())
            .unwrap_or_else(|| Err("the check failed".to_owned())),
        Ok(Err(_)) => Err("the check failed".to_owned()),
        Err(_) => {
            // A fleet's check outlasting the probe: the last one that ended answers.
            let last = state.last_tenants.lock().ok().and_then(|last| last.clone());
            return last.unwrap_or_else(|| {
                Err(format!(
                    "no answer within {} ms",
                    DATABASE_CHECK_BUDGET.as_millis()
                ))
            });
        }
    };
    if matches!(found, Ok(Checked::Tenants(_)))
        && let Ok(mut last) = state.last_tenants.lock()
    {
        *last = Some(found.clone());
    }
    found
}

/// One database check: the schema's status, or each tenant's (only the connection while the
/// tenants are being migrated).
async fn check_database(
    config: &migrate::EnvConfig,
    fleet: Option<&Fleet>,
    migrating: bool,
) -> CheckResult {
    let url = config.url.clone().unwrap_or_default();
    let migrator = migrate::Migrator::with_settings(&MIGRATIONS, config.settings.clone());
    let Some(fleet) = fleet else {
        let mut client = migrate::connect_async(&url, "readiness")
            .await
            .map_err(|e| e.to_string())?;
        return migrator
            .status_async(&mut client)
            .await
            .map(|status| Checked::One(Box::new(status)))
            .map_err(|e| e.to_string());
    };
    if migrating {
        return migrate::connect_async(&url, "readiness")
            .await
            .map(|_| Checked::Connected)
            .map_err(|e| e.to_string());
    }
    let targets = match migrate::fleet::Targets::listed_async(&url, "readiness", &fleet.query, true)
        .await
    {
        Ok(targets) => targets,
        Err(e @ migrate::Error::Database { .. }) => return Ok(Checked::Unlisted(e.to_string())),
        Err(e) => return Err(e.to_string()),
    };
    Ok(Checked::Tenants(
        migrator
            .status_each_async(&url, &targets, fleet.jobs)
            .await
            .into_iter()
            .map(|(tenant, status)| (tenant, status.map_err(|e| e.to_string())))
            .collect(),
    ))
}

/// Readiness: the database answers and the schema is what this binary expects.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let phase = state
        .phase
        .read()
        .map(|p| p.clone())
        .unwrap_or(Phase::Failed("state unavailable".to_owned()));
    let Some(config) = state.config.clone().filter(|c| c.url.is_some()) else {
        let output = match phase {
            Phase::Failed(e) => format!("invalid configuration: {e}"),
            _ => "not configured: set DATABASE_URL".to_owned(),
        };
        return health_json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "fail", "output": output, "checks": {"database:connection": check("fail", "not configured"), "migrations:pending": check("fail", "not configured")}}),
        );
    };

    let started = Instant::now();
    let status = database_status(&state, config, matches!(phase, Phase::Migrating)).await;
    let elapsed = started.elapsed().as_millis() as u64;
    let database = match &status {
        Ok(_) => {
            json!([{"status": "pass", "componentType": "datastore", "observedValue": elapsed, "observedUnit": "ms"}])
        }
        Err(e) => {
            json!([{"status": "fail", "componentType": "datastore", "output": format!("unreachable: {e}")}])
        }
    };
    let (code, overall, migrations) = match (&phase, &status) {
        (Phase::Migrating, _) if state.fleet.is_some() => {
            let progress = FLEET_PROGRESS.lock().ok().and_then(|p| p.clone());
            let (output, done) = match progress {
                Some(progress) => (format!("migrating: tenants {progress}"), progress.done),
                None => ("migrating".to_owned(), 0),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "fail",
                json!([{"status": "fail", "output": output, "observedValue": done, "observedUnit": "tenants done"}]),
            )
        }
        (Phase::Migrating, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            check("fail", "migrating"),
        ),
        (Phase::Failed(e), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            check("fail", format!("migrations failed: {e}")),
        ),
        (_, Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            check("fail", "unknown: database unreachable"),
        ),
        (_, Ok(Checked::Tenants(tenants))) => tenants_pending(tenants, &phase),
        (_, Ok(Checked::Unlisted(e))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            check("fail", format!("the query listing the tenants failed: {e}")),
        ),
        (_, Ok(Checked::Connected)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            check("fail", "the tenants' migrations are not read yet"),
        ),
        (_, Ok(Checked::One(status))) => match status.health() {
            migrate::Health::Pass => (
                StatusCode::OK,
                "pass",
                json!([{"status": "pass", "observedValue": 0}]),
            ),
            migrate::Health::Warn if status.ahead.is_empty() => (
                StatusCode::OK,
                "warn",
                json!([{"status": "pass", "observedValue": 0}]),
            ),
            migrate::Health::Warn => {
                let ahead: Vec<&str> = status.ahead.iter().map(|a| a.revision.as_str()).collect();
                (
                    StatusCode::OK,
                    "warn",
                    check(
                        "warn",
                        format!("database ahead of this binary: {}", ahead.join(", ")),
                    ),
                )
            }
            migrate::Health::Fail => {
                let output = match status.check() {
                    Err(e) => e.to_string(),
                    Ok(()) => {
                        let pending: Vec<&str> =
                            status.pending.iter().map(|m| m.revision()).collect();
                        let skipped = if matches!(phase, Phase::Skipped) {
                            " (MIGRATE_SKIP is set)"
                        } else {
                            ""
                        };
                        format!("pending: {}{skipped}", pending.join(", "))
                    }
                };
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "fail",
                    check("fail", output),
                )
            }
        },
    };
    let mut checks = json!({"database:connection": database, "migrations:pending": migrations});
    // Compared only when a schema snapshot is embedded and the database is at the head.
    if let Ok(Checked::One(one)) = &status
        && let Some(differences) = &one.schema_drift
    {
        checks["schema:drift"] = if differences.is_empty() {
            json!([{"status": "pass", "observedValue": 0}])
        } else {
            let objects: Vec<&str> = differences.iter().map(|d| d.object.as_str()).collect();
            json!([{"status": "warn", "observedValue": differences.len(), "output": format!("differs from the migrations' snapshot: {}", objects.join(", "))}])
        };
    }
    // While a long statement runs: what it is doing, and how far it got.
    let running = migrate::progress();
    if matches!(phase, Phase::Migrating) && !running.is_empty() {
        checks["migrations:progress"] = running
            .iter()
            .map(|p| {
                let mut reading = json!({"status": "warn", "output": p.to_string()});
                if let Some(share) = p.fraction {
                    reading["observedValue"] = json!((share * 1000.0).round() / 10.0);
                    reading["observedUnit"] = json!("%");
                }
                // A tenant's statement: the tenant is the component.
                if let Some(target) = &p.target {
                    reading["componentId"] = json!(target);
                }
                reading
            })
            .collect();
    }
    health_json(code, json!({"status": overall, "checks": checks}))
}

/// Each tenant's pending migrations (its `componentId` the schema): ready when every tenant is
/// up to date.
fn tenants_pending(
    tenants: &[(String, Result<migrate::Status, String>)],
    phase: &Phase,
) -> (StatusCode, &'static str, Value) {
    let skipped = if matches!(phase, Phase::Skipped) {
        " (MIGRATE_SKIP is set)"
    } else {
        ""
    };
    if tenants.is_empty() {
        return (
            StatusCode::OK,
            "warn",
            check("warn", "the query lists no tenant schema"),
        );
    }
    let mut ready = true;
    let mut ahead = false;
    let checks: Vec<Value> = tenants
        .iter()
        .map(|(tenant, status)| match status {
            Ok(status) if status.health() == migrate::Health::Pass || (status.health() == migrate::Health::Warn && status.ahead.is_empty()) => {
                json!({"componentId": tenant, "status": "pass", "observedValue": 0, "observedUnit": "pending migrations"})
            }
            Ok(status) if status.health() == migrate::Health::Warn => {
                ahead = true;
                let revisions: Vec<&str> = status.ahead.iter().map(|a| a.revision.as_str()).collect();
                json!({"componentId": tenant, "status": "warn", "observedValue": 0, "observedUnit": "pending migrations", "output": format!("ahead of this binary: {}", revisions.join(", "))})
            }
            Ok(status) => {
                ready = false;
                let output = match status.check() {
                    Err(e) => e.to_string(),
                    Ok(()) => {
                        let pending: Vec<&str> = status.pending.iter().map(|m| m.revision()).collect();
                        format!("pending: {}{skipped}", pending.join(", "))
                    }
                };
                json!({"componentId": tenant, "status": "fail", "observedValue": status.pending.len(), "observedUnit": "pending migrations", "output": output})
            }
            Err(e) => {
                ready = false;
                json!({"componentId": tenant, "status": "fail", "output": format!("unknown: {e}")})
            }
        })
        .collect();
    if ready {
        let overall = if ahead { "warn" } else { "pass" };
        (StatusCode::OK, overall, Value::Array(checks))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "fail",
            Value::Array(checks),
        )
    }
}
