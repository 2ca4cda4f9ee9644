//! The standalone `migrate` binary: the authoring commands and every database command, on the
//! migrations directory given by `--dir` and read at run time.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use migrate_core::Migrations;
use migrate_core::lint::config::LintOverrides;
use migrate_core::runtime::{EnvConfig, Error, Migrator};

use crate::checked::{Use, checked_for_each_schema, checked_migrations};
use crate::report::{self, LintFormat};
use crate::{Command, DatabaseArg, DirArg, authoring, drop_shadows_on_signals, execute_to};

#[derive(Debug, Parser)]
#[command(
    name = "migrate",
    version,
    about = "Author, check and apply PostgreSQL migrations from a directory",
    after_help = "Exit codes: 0 done or up to date; 1 pending work, lint errors, a failed migration or a refused command (several heads, a name clash, an unknown revision); 2 the command could not run (directory, configuration, connection, diverged or edited history)."
)]
struct Tool {
    #[command(flatten)]
    dir: DirArg,
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
    /// Convert another tool's migrations directory into --dir (empty or new), frozen in its
    /// migrate.toml; with --stamp, record as applied what that tool's history table says ran.
    Import {
        /// The tool that wrote the directory.
        #[arg(long, value_enum)]
        from: crate::import::Tool,
        /// The tool's migrations directory.
        source: PathBuf,
        /// Also adopt the database: read the tool's history table (left as it is) and record the
        /// same revisions as applied.
        #[arg(long)]
        stamp: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Replace the history through REV with one migration that creates the schema it builds
    /// (proven on shadow databases like a baseline); databases that ran it stay up to date.
    Squash {
        /// The last revision to squash: it and its ancestors.
        #[arg(long, value_name = "REV")]
        through: String,
        /// An empty database to replay into, for a role without CREATEDB (default: databases
        /// created on the server of --database-url / DATABASE_URL, then dropped).
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
            | ToolCommand::Squash { .. }
            | ToolCommand::Database(Command::Diff { .. } | Command::Baseline { .. })
    ) {
        drop_shadows_on_signals();
    }
    let mut out = std::io::stdout().lock();
    // Not locked for the whole command: progress lines come from other threads.
    let mut err = std::io::stderr();
    ExitCode::from(standalone(tool, &EnvConfig::from_env(), &mut out, &mut err))
}

fn standalone(
    tool: Tool,
    config: &Result<EnvConfig, Error>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let dir = tool.dir.dir;
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
                ..LintOverrides::default()
            };
            return report::lint(&dir, &overrides, LintFormat::Text, out, err);
        }
        ToolCommand::Snapshot {
            shadow_url,
            database,
        } => return snapshot(&dir, shadow_url.as_deref(), &database, config, out, err),
        ToolCommand::Squash {
            through,
            shadow_url,
            database,
        } => {
            let (config, url) =
                match shadow_server(&database, config, err, "shadow databases can be created") {
                    Ok(found) => found,
                    Err(code) => return code,
                };
            let request = crate::squash::SquashRequest {
                dir: &dir,
                through: &through,
                url,
                shadow_url: shadow_url.as_deref(),
            };
            return crate::squash::squash(&request, config, out, err);
        }
        ToolCommand::Import {
            from,
            source,
            stamp,
            database,
        } => {
            let config = match crate::loaded(config, err) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let stamp_url = database.database_url.as_deref().or(config.url.as_deref());
            if stamp && stamp_url.is_none() {
                let _ = writeln!(
                    err,
                    "error: no database configured\n  help: set MIGRATION_DATABASE_URL (or DATABASE_URL) to the database's URL, or pass --database-url"
                );
                return 2;
            }
            let request = crate::import::ImportRequest {
                tool: from,
                source: &source,
                out: &dir,
                stamp_url: stamp_url.filter(|_| stamp),
            };
            return crate::import::import(&request, config, out, err);
        }
        // Adoption starts from an empty directory: there is nothing to analyse yet.
        ToolCommand::Database(command @ (Command::Lint { .. } | Command::Baseline { .. })) => {
            let command = command.in_dir(dir);
            return execute_to(&Migrations::default(), command, config, out, err);
        }
        ToolCommand::Database(command) => {
            // What the compiler would reject is not applied either.
            let use_ = match command {
                Command::Migrate { .. } => Use::Apply,
                _ => Use::Read,
            };
            let each_schema = matches!(
                &command,
                Command::Migrate { fleet, .. }
                | Command::Status { fleet, .. }
                | Command::Plan { fleet, .. }
                | Command::Diff { fleet, .. }
                    if fleet.each_schema.is_some()
            );
            let check = if each_schema {
                checked_for_each_schema
            } else {
                checked_migrations
            };
            let migrations = match check(
                &dir,
                use_,
                err,
                "nothing was done",
                "fix the findings above (`migrate check` lists them)",
            ) {
                Ok(migrations) => migrations,
                Err(code) => return code,
            };
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

/// The configuration, and the URL of the server shadow databases are made on (`--database-url`,
/// else the environment's); or exit code 2 with why there is none. `where_` ends the help: on a
/// server where …
fn shadow_server<'a>(
    database: &'a DatabaseArg,
    config: &'a Result<EnvConfig, Error>,
    err: &mut dyn Write,
    where_: &str,
) -> Result<(&'a EnvConfig, &'a str), u8> {
    let config = crate::loaded(config, err)?;
    match database.database_url.as_deref().or(config.url.as_deref()) {
        Some(url) => Ok((config, url)),
        None => {
            let _ = writeln!(
                err,
                "error: no database server configured\n  help: set DATABASE_URL (or pass --database-url) to a database on a server where {where_}"
            );
            Err(2)
        }
    }
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
    let (config, url) = match shadow_server(
        database,
        config,
        err,
        "a shadow database can be created, or pass --shadow-url",
    ) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let migrations = match checked_migrations(
        dir,
        Use::Read,
        err,
        "no snapshot was taken",
        "fix the findings above (`migrate check` lists them)",
    ) {
        Ok(migrations) => migrations,
        Err(code) => return code,
    };
    let migrator = Migrator::with_settings(&migrations, config.settings.clone());
    let path = dir.join(migrate_core::snapshot::SNAPSHOT_FILE);
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
