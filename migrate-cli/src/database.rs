//! The database commands (`migrate`, `status`, `stamp`, `plan`, `diff`, `baseline`) and `lint`,
//! on a set of migrations: the embedded ones, or a directory's.

use std::io::Write;
use std::path::PathBuf;

use migrate_core::Migrations;
use migrate_core::lint::config::LintOverrides;
use migrate_core::runtime::{EnvConfig, Error, Health, Migrator, connect};

use crate::report::{self, LintFormat};
use crate::{Command, drift, plan, status};

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
            ..LintOverrides::default()
        };
        return report::lint(&dir, &overrides, format, out, err);
    }
    let config = match crate::loaded(config, err) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut config = config.clone();
    if let Some(url) = command.database_url() {
        config.url = Some(url.to_owned());
        // A URL given by hand is the one to use, whatever MIGRATE_POOLER says of DATABASE_URL.
        config.settings.pooler = migrate_core::runtime::Pooler::None;
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
    let fleet = match &command {
        Command::Migrate { fleet, .. }
        | Command::Status { fleet, .. }
        | Command::Plan { fleet, .. }
        | Command::Diff { fleet, .. } => Some(fleet),
        _ => None,
    };
    let fan_out = fleet.is_some_and(|f| f.each_schema.is_some() || f.each_database.is_some());
    if let Some(fleet) = fleet
        && !fan_out
        && (fleet.jobs != 1 || fleet.canary != 0)
    {
        let _ = writeln!(
            err,
            "error: --jobs and --canary go with --each-schema or --each-database\n  help: name the fleet's targets with one of them"
        );
        return 2;
    }
    if let Some(fleet) = fleet
        && fleet.canary != 0
        && !matches!(command, Command::Migrate { .. })
    {
        let _ = writeln!(
            err,
            "error: --canary goes with apply: the other commands change nothing\n  help: leave --canary out"
        );
        return 2;
    }
    if let Command::Diff { write: Some(_), .. } = &command
        && fan_out
    {
        let _ = writeln!(
            err,
            "error: --write takes one database's drift: with --each-schema or --each-database each target may differ in its own way\n  help: for a database of the fleet, run `migrate diff --write` with --database-url naming it; a tenant schema's drift is mended by a migration all tenants run"
        );
        return 2;
    }
    // What a long statement is doing, while it runs.
    let _progress =
        matches!(command, Command::Migrate { .. }).then(crate::progress::Printer::start);
    if let Some(fleet) = fleet.filter(|_| fan_out) {
        let what = match &command {
            Command::Migrate { .. } => crate::fleet::FleetCommand::Apply,
            Command::Plan { .. } => crate::fleet::FleetCommand::Plan,
            Command::Diff {
                shadow_url, json, ..
            } => crate::fleet::FleetCommand::Diff {
                shadow_url: shadow_url.as_deref(),
                json: *json,
            },
            _ => crate::fleet::FleetCommand::Status,
        };
        return crate::fleet::run(&migrator, url, fleet, what, out, err);
    }
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
            status::print(&status, json, out);
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
        Command::Plan { .. } => {
            status_of(&migrator).map(|status| plan::print(migrations, &status, out))
        }
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
        Err(_) if migrate_core::runtime::drift::interrupted() => {
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
