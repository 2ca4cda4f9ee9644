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
mod drift;
mod report;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::Migrations;
use crate::analysis::analyze_text;
use crate::analysis::statements::one_line;
use crate::lint::config::LintOverrides;
use crate::lint::{LintConfig, lock_plan};
use crate::runtime::{EnvConfig, Error, Health, Migrator, Status, connect};

/// The operator's commands. Database commands read `MIGRATION_DATABASE_URL` / `DATABASE_URL`
/// and the `MIGRATE_*` settings, like `startup`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then exit (non-zero on failure).
    #[command(visible_alias = "apply")]
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Applied, pending and ahead revisions (exit 0 up to date, 1 pending, 2 error).
    Status {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
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
    },
    /// Write <dir>/<revision>_baseline.sql, the root migration that creates the database's
    /// schema as it is, after checking that a database built from it has the same schema.
    Baseline {
        /// The migrations directory to write it in (empty or absent; default: ./migrations).
        #[arg(long = "into", value_name = "DIR")]
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

/// The database a command works on.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args)]
pub struct DatabaseArg {
    /// The database's URL (default: MIGRATION_DATABASE_URL, then DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

pub use report::LintFormat;

#[derive(Debug, Parser)]
#[command(about = "Apply, inspect and lint the migrations embedded in this binary")]
struct Standalone {
    #[command(subcommand)]
    command: Command,
}

/// Parses the process arguments as `<binary> <command>` and runs it.
pub fn run(migrations: &Migrations) -> ExitCode {
    execute(migrations, Standalone::parse().command)
}

/// Runs one command, printing to stdout (results) and stderr (errors).
pub fn execute(migrations: &Migrations, command: Command) -> ExitCode {
    if matches!(command, Command::Diff { .. } | Command::Baseline { .. }) {
        drop_shadows_on_ctrl_c();
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = execute_to(
        migrations,
        command,
        &EnvConfig::from_env(),
        &mut out,
        &mut err,
    );
    ExitCode::from(code)
}

/// [`execute`] with the configuration and outputs given, returning the exit code.
pub fn execute_to(
    migrations: &Migrations,
    command: Command,
    config: &Result<EnvConfig, Error>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if let Command::Lint {
        dir,
        json,
        format,
        target_postgres,
    } = command
    {
        let format = if json { LintFormat::Json } else { format };
        let dir = dir.unwrap_or_else(|| PathBuf::from("migrations"));
        let overrides = LintOverrides {
            target_version: target_postgres,
            levels: Vec::new(),
        };
        return report::lint(&dir, &overrides, format, out, err);
    }
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let mut config = config.clone();
    if let Some(url) = command.database_url() {
        config.url = Some(url.to_owned());
        // A URL given by hand is the one to use, whatever MIGRATE_POOLER says of DATABASE_URL.
        config.settings.pooler = crate::runtime::Pooler::None;
    }
    let config = &config;
    let Some(url) = config.url.as_deref() else {
        let _ = writeln!(
            err,
            "error: no database configured\n  help: set MIGRATION_DATABASE_URL (or DATABASE_URL) to the database's URL"
        );
        return 2;
    };
    let migrator = Migrator::with_settings(migrations, config.settings.clone());
    let status_of = |migrator: &Migrator<'_>| {
        connect(url, &config.settings.application_name).and_then(|mut c| migrator.status(&mut c))
    };
    let result = match command {
        Command::Migrate { .. } => migrator.run_url(url).map(|report| {
            for applied in &report.applied {
                let _ = writeln!(
                    out,
                    "applied {} in {} ms",
                    applied.revision,
                    applied.duration.as_millis()
                );
            }
            let _ = writeln!(
                out,
                "up to date at {} ({} applied now)",
                report.status.head.unwrap_or("-"),
                report.applied.len()
            );
            0
        }),
        Command::Status { json, .. } => status_of(&migrator).map(|status| {
            print_status(&status, json, out);
            match status.health() {
                Health::Pass | Health::Warn => 0,
                Health::Fail if status.check().is_err() => 2,
                Health::Fail => 1,
            }
        }),
        Command::Stamp { revision, .. } => connect(url, &config.settings.application_name)
            .and_then(|mut c| migrator.stamp(&mut c, &revision))
            .map(|stamped| {
                let _ = writeln!(
                    out,
                    "stamped {} revision(s) as applied: {}",
                    stamped.len(),
                    stamped.join(", ")
                );
                0
            }),
        Command::Plan { .. } => status_of(&migrator).map(|status| plan(migrations, &status, out)),
        Command::Diff {
            shadow_url,
            json,
            write,
            ..
        } => migrator
            .drift(url, shadow_url.as_deref())
            .and_then(|drift| drift::report(migrations, &drift, json, write.as_deref(), out)),
        Command::Baseline {
            dir,
            allow_partial,
            stamp,
            ..
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("migrations"));
            let request = drift::BaselineRequest {
                dir: &dir,
                allow_partial,
                stamp,
            };
            drift::baseline(&migrator, url, &request, out, err)
        }
        Command::Lint { .. } => Ok(0),
    };
    match result {
        Ok(code) => code,
        Err(_) if crate::runtime::drift::interrupted() => {
            // The Ctrl-C handler dropped the shadow under the check and exits the process.
            let _ = writeln!(err, "interrupted: the shadow database was dropped");
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            match e {
                Error::Migration { .. } => 1,
                _ => 2,
            }
        }
    }
}

fn print_status(status: &Status, json: bool, out: &mut dyn Write) {
    let health = match status.health() {
        Health::Pass => "pass",
        Health::Warn => "warn",
        Health::Fail => "fail",
    };
    if json {
        let value = json!({
            "status": health,
            "head": status.head,
            "applied": status.applied.iter().map(|r| json!({"revision": r.revision, "applied_at": r.applied_at, "execution_ms": r.execution_ms, "applied_by": r.applied_by})).collect::<Vec<_>>(),
            "pending": status.pending.iter().map(|m| json!({"revision": m.revision(), "path": m.path(), "message": m.message()})).collect::<Vec<_>>(),
            "ahead": status.ahead.iter().map(|a| json!({"revision": a.revision, "descends_from_head": a.descends_from_head})).collect::<Vec<_>>(),
            "checksum_mismatches": status.checksum_mismatches.iter().map(|(r, p)| json!({"revision": r, "path": p})).collect::<Vec<_>>(),
            "interrupted": status.interrupted.as_ref().map(|i| json!({"revision": i.revision, "statements_done": i.statements_done, "statements_total": i.statements_total})),
            "schema_drift": status.schema_drift.as_ref().map(|d| drift::differences_json(d)),
        });
        let _ = writeln!(out, "{value}");
        return;
    }
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:<32} message",
        "revision", "state", "applied at"
    );
    for row in &status.applied {
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} {}",
            row.revision,
            "applied",
            row.applied_at,
            row.message.as_deref().unwrap_or("")
        );
    }
    for migration in &status.pending {
        let state = if status
            .interrupted
            .as_ref()
            .is_some_and(|i| i.revision == migration.revision())
        {
            "partial"
        } else {
            "pending"
        };
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} {}",
            migration.revision(),
            state,
            "",
            migration.message().unwrap_or("")
        );
    }
    for ahead in &status.ahead {
        let relation = if ahead.descends_from_head {
            "builds on this binary's head"
        } else {
            "diverged: not built on this binary's head"
        };
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} unknown to this binary ({relation})",
            ahead.revision, "ahead", ""
        );
    }
    for (revision, path) in &status.checksum_mismatches {
        let _ = writeln!(
            out,
            "{revision:<14} {:<9} {:<32} {path} changed since it was applied",
            "edited", ""
        );
    }
    let drifted = status.schema_drift.as_deref().unwrap_or_default();
    for difference in drifted {
        let _ = writeln!(out, "drift: {}", drift::one_line_difference(difference));
    }
    let mut summary = format!(
        "{health}: {} applied, {} pending, {} ahead",
        status.applied.len(),
        status.pending.len(),
        status.ahead.len()
    );
    if !drifted.is_empty() {
        summary.push_str(&format!(
            ", the schema differs from the snapshot in {} place(s) (`migrate diff` reconciles it)",
            drifted.len()
        ));
    }
    let _ = writeln!(out, "{summary}");
}

fn plan(migrations: &Migrations, status: &Status, out: &mut dyn Write) -> u8 {
    let analyzed: Vec<_> = migrations
        .iter()
        .filter_map(|m| analyze_text(m.path(), m.sql()).ok())
        .collect();
    // Judged for the PostgreSQL version the migrations were linted for (the macro's settings or
    // migrate.toml), so that plan and compile errors agree.
    let config = LintConfig {
        target_version: migrations.target_postgres(),
        ..LintConfig::default()
    };
    let plan = lock_plan(&analyzed, &config);
    if status.pending.is_empty() {
        let _ = writeln!(
            out,
            "nothing to apply: up to date at {}",
            status.head.unwrap_or("-")
        );
        return 0;
    }
    for (migration, statements) in analyzed.iter().zip(&plan) {
        if !status
            .pending
            .iter()
            .any(|p| p.revision() == migration.header.revision)
        {
            continue;
        }
        let mode = if migration.header.no_transaction {
            "no-transaction, statement by statement"
        } else {
            "one transaction"
        };
        let _ = writeln!(
            out,
            "{} {} ({mode})",
            migration.header.revision, migration.path
        );
        if statements.is_empty() {
            let _ = writeln!(out, "  (no statements)");
        }
        for statement in statements {
            let sql = one_line(statement.span.text(&migration.sql), 70);
            let locks: Vec<String> = statement
                .effects
                .iter()
                .flat_map(|e| {
                    let cost = format!("{:?}", e.row.cost).to_lowercase();
                    let main = e
                        .row
                        .table
                        .map(|m| format!("{} on {} ({cost})", m.sql_name(), e.effect.table));
                    let other = e
                        .row
                        .other
                        .zip(e.effect.other.as_ref())
                        .map(|(m, t)| format!("{} on {t}", m.sql_name()));
                    main.into_iter().chain(other)
                })
                .collect();
            let locks = if locks.is_empty() {
                "no table lock of note".to_owned()
            } else {
                locks.join(", ")
            };
            let _ = writeln!(
                out,
                "  line {:<4} {sql}\n             {locks}",
                statement.span.line
            );
        }
    }
    0
}

impl Command {
    /// The `--database-url` given to a database command.
    pub fn database_url(&self) -> Option<&str> {
        match self {
            Command::Migrate { database }
            | Command::Status { database, .. }
            | Command::Stamp { database, .. }
            | Command::Plan { database }
            | Command::Diff { database, .. }
            | Command::Baseline { database, .. } => database.database_url.as_deref(),
            Command::Lint { .. } => None,
        }
    }
}

/// On Ctrl-C (SIGINT), drops the shadow databases of a `diff` or `baseline` under way, then
/// exits with 130 as the signal would have.
fn drop_shadows_on_ctrl_c() {
    let watcher = std::thread::Builder::new().name("ctrl-c".to_owned());
    let _ = watcher.spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            let config = EnvConfig::from_env();
            let name = config
                .as_ref()
                .map_or("migrate", |c| c.settings.application_name.as_str());
            // No message from here: the command's thread holds stderr, and says it.
            crate::runtime::drift::drop_active_shadows(name);
            std::process::exit(130);
        }
    });
}

#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version,
    about = "Author, check and apply PostgreSQL migrations from a directory",
    after_help = "Exit codes: 0 done or up to date; 1 pending work, lint errors, a failed migration or a refused command (several heads, a name clash, an unknown revision); 2 the command could not run (directory, configuration, connection, diverged or edited history)."
)]
struct Tool {
    /// The migrations directory.
    #[arg(long, global = true, default_value = "migrations", value_name = "DIR")]
    dir: PathBuf,
    #[command(subcommand)]
    command: ToolCommand,
}

#[derive(Debug, Subcommand)]
enum ToolCommand {
    /// Write <dir>/<revision>_<slug>.sql with a complete header (parents: the current head).
    New {
        /// The file name's end: a-z, 0-9, `_` and `-`.
        slug: String,
        /// The migration's message (default: the slug in words).
        #[arg(short, long)]
        message: Option<String>,
        /// Build on this revision instead of the head (repeat for a merge).
        #[arg(long = "parent", value_name = "REV")]
        parents: Vec<String>,
        /// Mark it `-- migrate:no-transaction` (for CREATE INDEX CONCURRENTLY and the like).
        #[arg(long)]
        no_transaction: bool,
    },
    /// Write the merge migration joining every head (the file the multiple-heads error proposes).
    Merge {
        #[arg(short, long)]
        message: Option<String>,
    },
    /// The revision graph, newest at the top; heads, roots and merges marked.
    Graph {
        #[arg(long, value_enum, default_value_t = authoring::GraphFormat::Text)]
        format: authoring::GraphFormat,
        /// Shorthand for `--format json`.
        #[arg(long)]
        json: bool,
    },
    /// What the compiler checks (headers, graph, lint), as one CI gate.
    Check {
        /// The PostgreSQL major version to lint for (default: the directory's migrate.toml,
        /// else 15).
        #[arg(long)]
        target_postgres: Option<u32>,
    },
    /// Write <dir>/schema.snapshot: the catalog these migrations build (replayed into a shadow
    /// database), which `embed_migrations!` embeds for drift checks at startup and in `status`.
    Snapshot {
        /// An empty database to replay into (default: one created on the server of
        /// --database-url / DATABASE_URL, then dropped).
        #[arg(long, value_name = "URL")]
        shadow_url: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    #[command(flatten)]
    Database(Command),
}

/// The standalone `migrate` binary: parses the process arguments and runs the command on the
/// `--dir` directory.
pub fn run_standalone() -> ExitCode {
    let tool = Tool::parse();
    if matches!(
        tool.command,
        ToolCommand::Snapshot { .. }
            | ToolCommand::Database(Command::Diff { .. } | Command::Baseline { .. })
    ) {
        drop_shadows_on_ctrl_c();
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    ExitCode::from(standalone(tool, &EnvConfig::from_env(), &mut out, &mut err))
}

fn standalone(
    tool: Tool,
    config: &Result<EnvConfig, Error>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let dir = tool.dir;
    let authoring_result = match tool.command {
        ToolCommand::New {
            slug,
            message,
            parents,
            no_transaction,
        } => authoring::new_migration(
            &dir,
            &authoring::NewMigration {
                slug,
                message,
                parents,
                no_transaction,
            },
        )
        .map(|path| {
            let _ = writeln!(out, "{}", path.display());
        }),
        ToolCommand::Merge { message } => {
            authoring::merge(&dir, message.as_deref()).map(|written| match written {
                Some(path) => {
                    let _ = writeln!(out, "{}", path.display());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "nothing to merge: the migrations have one head at most"
                    );
                }
            })
        }
        ToolCommand::Graph { format, json } => authoring::read_headers(&dir).map(|nodes| {
            let format = if json {
                authoring::GraphFormat::Json
            } else {
                format
            };
            let _ = write!(out, "{}", authoring::render_graph(&nodes, format));
        }),
        ToolCommand::Check { target_postgres } => {
            let overrides = LintOverrides {
                target_version: target_postgres,
                levels: Vec::new(),
            };
            return report::lint(&dir, &overrides, LintFormat::Text, out, err);
        }
        ToolCommand::Database(Command::Lint {
            dir: lint_dir,
            json,
            format,
            target_postgres,
        }) => {
            let command = Command::Lint {
                dir: Some(lint_dir.unwrap_or(dir)),
                json,
                format,
                target_postgres,
            };
            return execute_to(&Migrations::default(), command, config, out, err);
        }
        ToolCommand::Snapshot {
            shadow_url,
            database,
        } => return snapshot(&dir, shadow_url.as_deref(), &database, config, out, err),
        ToolCommand::Database(Command::Baseline {
            dir: into,
            allow_partial,
            stamp,
            database,
        }) => {
            // Adoption starts from an empty directory: there is nothing to analyse yet.
            let command = Command::Baseline {
                dir: Some(into.unwrap_or(dir)),
                allow_partial,
                stamp,
                database,
            };
            return execute_to(&Migrations::default(), command, config, out, err);
        }
        ToolCommand::Database(command) => {
            // What the compiler would reject is not applied either.
            let (analysis, passed) = checked_analysis(
                &dir,
                err,
                "nothing was done",
                "fix the findings above (`migrate check` lists them)",
            );
            if !passed {
                return if analysis
                    .diagnostics
                    .iter()
                    .any(|d| d.check == "missing-directory")
                {
                    2
                } else {
                    1
                };
            }
            let migrations = Migrations::from_analysis(&analysis);
            return execute_to(&migrations, command, config, out, err);
        }
    };
    match authoring_result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            e.exit_code()
        }
    }
}

/// The directory's analysis, and whether it passes the checks `embed_migrations!` makes; when it
/// does not, its errors are printed with what was not done because of them.
pub(crate) fn checked_analysis(
    dir: &std::path::Path,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
) -> (crate::analysis::check::Analysis, bool) {
    let display = dir.display().to_string();
    let analysis =
        crate::analysis::check::analyze_dir_configured(dir, &display, &LintOverrides::default());
    if !analysis.has_errors() {
        return (analysis, true);
    }
    for finding in analysis.diagnostics.iter().filter(|d| d.is_error()) {
        let _ = writeln!(err, "error: {finding}");
    }
    let _ = writeln!(
        err,
        "error: {display} does not pass the checks `embed_migrations!` makes; {not_done}\n  help: {help}"
    );
    (analysis, false)
}

/// `migrate snapshot`: replays the directory into a shadow database and writes its catalog
/// beside the migrations.
fn snapshot(
    dir: &std::path::Path,
    shadow_url: Option<&str>,
    database: &DatabaseArg,
    config: &Result<EnvConfig, Error>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let Some(url) = database.database_url.as_deref().or(config.url.as_deref()) else {
        let _ = writeln!(
            err,
            "error: no database server configured\n  help: set DATABASE_URL (or pass --database-url) to a database on a server where a shadow database can be created, or pass --shadow-url"
        );
        return 2;
    };
    let (analysis, passed) = checked_analysis(
        dir,
        err,
        "no snapshot was taken",
        "fix the findings above (`migrate check` lists them)",
    );
    if !passed {
        return 1;
    }
    let migrations = Migrations::from_analysis(&analysis);
    let migrator = Migrator::with_settings(&migrations, config.settings.clone());
    let path = dir.join(crate::snapshot::SNAPSHOT_FILE);
    match migrator.snapshot(url, shadow_url) {
        Ok(text) => match std::fs::write(&path, text) {
            Ok(()) => {
                let _ = writeln!(
                    out,
                    "wrote {}: the schema of {} migration(s)",
                    path.display(),
                    migrations.len()
                );
                0
            }
            Err(e) => {
                let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
                2
            }
        },
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table created, then a column added with a constant default: instant since
    /// PostgreSQL 11, a rewrite before.
    fn plan_for(config: Option<&str>) -> String {
        let dir = std::env::temp_dir().join(format!(
            "migrate-plan-{}-{}",
            std::process::id(),
            config.map_or(0, str::len)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("0001_t.sql"),
            "-- revision: 0001\n-- parents: none\nCREATE TABLE t (id int);\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("0002_c.sql"),
            "-- revision: 0002\n-- parents: 0001\nALTER TABLE t ADD COLUMN c int DEFAULT 0;\n",
        )
        .unwrap();
        if let Some(config) = config {
            std::fs::write(dir.join("migrate.toml"), config).unwrap();
        }
        let analysis =
            crate::analysis::check::analyze_dir_configured(&dir, "m", &Default::default());
        let migrations = Migrations::from_analysis(&analysis);
        let status = Status::compute(&migrations, Some(&[]));
        let mut out = Vec::new();
        assert_eq!(plan(&migrations, &status, &mut out), 0);
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plan_judges_statements_for_the_configured_postgres_version() {
        let default = plan_for(None);
        let old = plan_for(Some("target_postgres = 10\n"));
        let line = |plan: &str| {
            plan.lines()
                .skip_while(|l| !l.contains("ADD COLUMN"))
                .nth(1)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        assert_ne!(line(&default), line(&old), "{default}\n{old}");
        assert!(line(&old).contains("rewrite"), "{old}");
    }
}
