//! The operator CLI, for any host binary to mount: `migrate`, `status`, `stamp`, `plan`, `lint`.
//! An operator never needs another tool (or a bypass flag) to see or change the schema state.
//!
//! ```ignore
//! // a binary of its own:
//! fn main() -> std::process::ExitCode { migrate::cli::run(&MIGRATIONS) }
//! // or inside the host's own clap parser:
//! #[derive(clap::Subcommand)]
//! enum Command { Serve, #[command(flatten)] Migrations(migrate::cli::Command) }
//! ```
//!
//! The same commands, with the authoring ones (`new`, `merge`, `graph`, `check`), are the
//! standalone `migrate` binary ([`run_standalone`]), which reads the migrations from `--dir` at
//! run time instead of from the binary.
//!
//! Exit codes: 0 success / up to date, 1 pending work or lint errors or a failed migration or a
//! refused authoring command, 2 the command could not run (configuration, connection, directory,
//! diverged or edited history).

pub mod authoring;
mod checked;
mod database;
mod drift;
mod fleet;
pub mod import;
mod plan;
mod progress;
mod report;
mod squash;
mod standalone;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use migrate_core::Migrations;
use migrate_core::runtime::EnvConfig;

pub use database::execute_to;
pub use report::LintFormat;
pub use standalone::run_standalone;

/// The operator's commands. Database commands read `MIGRATION_DATABASE_URL` / `DATABASE_URL`
/// and the `MIGRATE_*` settings, like `startup`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then exit (non-zero on failure).
    #[command(visible_alias = "apply")]
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Applied, pending and ahead revisions (exit 0 up to date, 1 pending, 2 error).
    Status {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Record REVISION and its ancestors as applied without running them (adopting a database).
    Stamp {
        revision: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// What would run, in order, with the locks each statement takes.
    Plan {
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Compare the database with what its applied migrations build, replayed into a shadow
    /// database (exit 0 no drift, 1 drift, 2 could not compare).
    Diff {
        /// An empty database to replay into, for a role without CREATEDB (default: a database
        /// created on the target's server for the check, then dropped).
        #[arg(long, value_name = "URL")]
        shadow_url: Option<String>,
        /// One JSON object instead of the report.
        #[arg(long)]
        json: bool,
        /// Write the SQL that reconciles the database as a new migration, for review: FILE, or a
        /// new file in DIR when it is a directory.
        #[arg(long, value_name = "FILE|DIR")]
        write: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Write <dir>/<revision>_baseline.sql, the root migration that creates the database's
    /// schema as it is, after checking that a database built from it has the same schema.
    Baseline {
        /// The migrations directory to write it in (empty or absent), as `--dir` says it
        /// (default: ./migrations).
        #[arg(id = "into", long = "into", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Write it even when some objects cannot be recreated (they are listed in the file).
        #[arg(long)]
        allow_partial: bool,
        /// Record it as applied in the database once written.
        #[arg(long)]
        stamp: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Lint a migrations directory (default: ./migrations), as the compiler would.
    Lint {
        /// The directory, as `--dir` says it (default: ./migrations).
        #[arg(id = "lint_dir", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
        /// text, json (an array of findings), github (workflow annotations) or sarif (2.1.0).
        #[arg(long, value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// The PostgreSQL major version to lint for (default: the directory's migrate.toml,
        /// else 15).
        #[arg(long)]
        target_postgres: Option<u32>,
    },
}

/// A fleet: the same migrations on every tenant schema or database a query lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args)]
pub struct FleetArgs {
    /// Every schema this query lists (run on the database): one history per schema, the schema
    /// first in `search_path` while its migrations run.
    #[arg(long, value_name = "SQL", conflicts_with = "each_database")]
    pub each_schema: Option<String>,
    /// Every database this query lists (run on the database's server): one history per
    /// database.
    #[arg(long, value_name = "SQL")]
    pub each_database: Option<String>,
    /// The most targets in flight at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Migrate this many targets first, and stop everything if one of them fails.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub canary: u16,
}

/// The database a command works on.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args)]
pub struct DatabaseArg {
    /// The database's URL (default: MIGRATION_DATABASE_URL, then DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// The migrations directory, for the commands that read or write one: all of them in the
/// standalone `migrate`; `lint` and `baseline` in a host binary, which embeds its migrations.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DirArg {
    /// The migrations directory.
    #[arg(long, global = true, default_value = "migrations", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Parser)]
#[command(about = "Apply, inspect and lint the migrations embedded in this binary")]
struct Hosted {
    #[command(flatten)]
    dir: DirArg,
    #[command(subcommand)]
    command: Command,
}

/// Parses the process arguments as `<binary> <command>` and runs it.
pub fn run(migrations: &Migrations) -> ExitCode {
    let hosted = Hosted::parse();
    execute(migrations, hosted.command.in_dir(hosted.dir.dir))
}

/// Runs one command, printing to stdout (results) and stderr (errors).
pub fn execute(migrations: &Migrations, command: Command) -> ExitCode {
    if matches!(command, Command::Diff { .. } | Command::Baseline { .. }) {
        drop_shadows_on_signals();
    }
    let mut out = std::io::stdout().lock();
    // Not locked for the whole command: progress lines come from other threads.
    let mut err = std::io::stderr();
    let code = execute_to(
        migrations,
        command,
        &EnvConfig::from_env(),
        &mut out,
        &mut err,
    );
    ExitCode::from(code)
}

/// The configuration read from the environment, or exit code 2 with why it could not be read.
fn loaded<'a>(
    config: &'a Result<EnvConfig, migrate_core::runtime::Error>,
    err: &mut dyn std::io::Write,
) -> Result<&'a EnvConfig, u8> {
    config.as_ref().map_err(|e| {
        let _ = writeln!(err, "error: {e}");
        2
    })
}

impl Command {
    /// The command with `dir` as its directory where it takes one and names none itself (a
    /// `lint` argument or `baseline --into` wins).
    pub fn in_dir(self, dir: PathBuf) -> Command {
        match self {
            Command::Lint {
                dir: None,
                json,
                format,
                target_postgres,
            } => Command::Lint {
                dir: Some(dir),
                json,
                format,
                target_postgres,
            },
            Command::Baseline {
                dir: None,
                allow_partial,
                stamp,
                database,
            } => Command::Baseline {
                dir: Some(dir),
                allow_partial,
                stamp,
                database,
            },
            command => command,
        }
    }

    /// The `--database-url` given to a database command.
    pub fn database_url(&self) -> Option<&str> {
        match self {
            Command::Migrate { database, .. }
            | Command::Status { database, .. }
            | Command::Stamp { database, .. }
            | Command::Plan { database, .. }
            | Command::Diff { database, .. }
            | Command::Baseline { database, .. } => database.database_url.as_deref(),
            Command::Lint { .. } => None,
        }
    }
}

/// On Ctrl-C (SIGINT), or SIGTERM (what `timeout`, systemd and Kubernetes send), drops the
/// shadow databases of a `diff` or `baseline` under way, then exits with the status the signal
/// would have given (130, 143).
fn drop_shadows_on_signals() {
    watch_signal("ctrl-c", 130, || async {
        tokio::signal::ctrl_c().await.is_ok()
    });
    #[cfg(unix)]
    watch_signal("sigterm", 143, || async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await.is_some(),
            Err(_) => false,
        }
    });
}

/// Waits on a thread of its own for the signal `received` resolves on (its handler is set up
/// there, inside the thread's runtime), then drops the shadows and exits with `status`.
fn watch_signal<F: std::future::Future<Output = bool>>(
    name: &str,
    status: i32,
    received: impl FnOnce() -> F + Send + 'static,
) {
    let watcher = std::thread::Builder::new().name(name.to_owned());
    let _ = watcher.spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        if runtime.block_on(async { received().await }) {
            let config = EnvConfig::from_env();
            let name = config
                .as_ref()
                .map_or("migrate", |c| c.settings.application_name.as_str());
            // No message from here: the command's thread holds stderr, and says it.
            migrate_core::runtime::drift::drop_active_shadows(name);
            std::process::exit(status);
        }
    });
}
