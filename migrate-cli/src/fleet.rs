//! `migrate --each-schema SQL | --each-database SQL [--jobs N] [--canary K]` and the same for
//! `status`: one table, a line per target, and an exit code for the whole fleet.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use migrate_core::runtime::fleet::{
    FLEET_PROGRESS_EVERY, FleetOptions, FleetProgress, TargetOutcome, Targets,
};
use migrate_core::runtime::{Error, Health, Migrator, Status};

use crate::FleetArgs;

/// The first line of an error, for a table cell.
fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// When the last progress line was printed (or the fleet started).
static PRINTED: Mutex<Option<Instant>> = Mutex::new(None);

/// While the fleet runs, every few seconds on stderr: targets done, and the slowest in flight.
/// (The fleet reports each target's end too; one line per interval is enough for a terminal.)
fn print_progress(progress: &FleetProgress) {
    let mut printed = PRINTED.lock().unwrap_or_else(|e| e.into_inner());
    let due =
        printed.is_none_or(|at| at.elapsed() + Duration::from_millis(100) >= FLEET_PROGRESS_EVERY);
    if due {
        *printed = Some(Instant::now());
        eprintln!("{progress}");
    }
}

/// What a fleet command does on each target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FleetCommand<'a> {
    Apply,
    Status,
    Plan,
    Diff {
        shadow_url: Option<&'a str>,
        json: bool,
    },
}

pub(crate) fn run(
    migrator: &Migrator<'_>,
    url: &str,
    fleet: &FleetArgs,
    command: FleetCommand<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let (query, schemas) = match (&fleet.each_schema, &fleet.each_database) {
        (Some(query), _) => (query, true),
        (None, Some(query)) => (query, false),
        (None, None) => return 2,
    };
    let a_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !schemas && !a_url {
        let _ = writeln!(
            err,
            "error: --each-database reaches each database through a postgres:// URL, with the database's name in its path\n  help: write the database URL as postgres://user@host:port/database"
        );
        return 2;
    }
    let targets = match Targets::listed(url, &migrator.settings().application_name, query, schemas)
    {
        Ok(targets) => targets,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    let kind = kind_of(&targets);
    if targets.names().is_empty() {
        let _ = writeln!(
            err,
            "error: the query lists no {kind}\n  help: check it lists one {kind} name per row, in its first column"
        );
        return 2;
    }
    let jobs = usize::from(fleet.jobs);
    let started = Instant::now();
    let width = targets
        .names()
        .iter()
        .map(|n| n.chars().count())
        .chain([kind.len()])
        .max()
        .unwrap_or_default();
    match command {
        FleetCommand::Apply => {}
        FleetCommand::Status => return status(migrator, url, &targets, jobs, width, out, err),
        FleetCommand::Plan => return plan(migrator, url, &targets, jobs, width, out, err),
        FleetCommand::Diff { shadow_url, json } => {
            let shown = Shown { width, json };
            return diff(migrator, url, &targets, shadow_url, jobs, shown, out, err);
        }
    }
    let options = FleetOptions {
        jobs,
        canary: usize::from(fleet.canary),
        on_progress: Some(print_progress),
    };
    *PRINTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    let report = migrator.run_each(url, &targets, options);
    let _ = writeln!(
        out,
        "{:<width$}  {:<12} {:>9}  error",
        kind, "result", "time"
    );
    let (mut applied, mut current, mut skipped) = (0, 0, 0);
    for target in &report.targets {
        let (result, error) = match &target.outcome {
            TargetOutcome::Applied(revisions) if revisions.is_empty() => {
                current += 1;
                ("up to date".to_owned(), String::new())
            }
            TargetOutcome::Applied(revisions) => {
                applied += 1;
                (format!("applied {}", revisions.len()), String::new())
            }
            TargetOutcome::Failed(e) => ("failed".to_owned(), first_line(e)),
            TargetOutcome::Skipped => {
                skipped += 1;
                ("skipped".to_owned(), "a canary failed".to_owned())
            }
        };
        let _ = writeln!(
            out,
            "{:<width$}  {result:<12} {:>6} ms  {error}",
            target.target,
            target.elapsed.as_millis()
        );
    }
    let failed = report.failed();
    let _ = writeln!(
        out,
        "{applied} migrated, {current} up to date, {} failed, {skipped} skipped, of {} {kind}(s) in {} ms, {} at a time",
        failed.len(),
        report.targets.len(),
        started.elapsed().as_millis(),
        jobs.min(report.targets.len())
    );
    if failed.is_empty() && skipped == 0 {
        return 0;
    }
    if !failed.is_empty() {
        let help = if skipped > 0 {
            "a canary failed, so no other target was attempted; fix its migration, then run the command again"
        } else {
            "the others are done; run the command again to resume the failed ones"
        };
        let _ = writeln!(
            err,
            "error: {} {kind}(s) failed: {}\n  help: {help}",
            failed.len(),
            failed.join(", ")
        );
    }
    1
}

fn status(
    migrator: &Migrator<'_>,
    url: &str,
    targets: &Targets,
    jobs: usize,
    width: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let kind = kind_of(targets);
    let _ = writeln!(out, "{:<width$}  state", kind);
    let (mut pending, mut failed) = (Vec::new(), Vec::new());
    for (name, status) in migrator.status_each(url, targets, jobs) {
        let state = match status {
            Ok(status) if status.health() == Health::Fail && status.check().is_err() => {
                failed.push(name.clone());
                status
                    .check()
                    .err()
                    .map(|e| first_line(&e))
                    .unwrap_or_default()
            }
            Ok(status) if status.pending.is_empty() => {
                format!("up to date at {}", status.head.unwrap_or("-"))
            }
            Ok(status) => {
                pending.push(name.clone());
                format!("{} pending", status.pending.len())
            }
            Err(e) => {
                failed.push(name.clone());
                format!("error: {}", first_line(&e))
            }
        };
        let _ = writeln!(out, "{name:<width$}  {state}");
    }
    let _ = writeln!(
        out,
        "{} up to date, {} pending, {} failed, of {} {kind}(s)",
        targets.names().len() - pending.len() - failed.len(),
        pending.len(),
        failed.len(),
        targets.names().len()
    );
    if !failed.is_empty() {
        unread(err, kind, &failed);
        return 2;
    }
    u8::from(!pending.is_empty())
}

/// `plan` on a fleet: each target's pending count, then the plan of each distinct set of pending
/// migrations once, with the targets it is for.
fn plan(
    migrator: &Migrator<'_>,
    url: &str,
    targets: &Targets,
    jobs: usize,
    width: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let kind = kind_of(targets);
    let _ = writeln!(out, "{:<width$}  would run", kind);
    // Targets with the same pending migrations share one plan, in the order first listed.
    let mut groups: Vec<(Vec<&str>, Vec<String>, Status)> = Vec::new();
    let mut failed = Vec::new();
    let statuses = migrator.status_each(url, targets, jobs);
    for (name, status) in &statuses {
        let state = match status {
            Ok(status) if status.check().is_err() => {
                failed.push(name.clone());
                status
                    .check()
                    .err()
                    .map(|e| format!("error: {}", first_line(&e)))
                    .unwrap_or_default()
            }
            Ok(status) if status.pending.is_empty() && !status.ahead.is_empty() => {
                let ahead: Vec<&str> = status.ahead.iter().map(|a| a.revision.as_str()).collect();
                format!("nothing: ahead of these migrations ({})", ahead.join(", "))
            }
            Ok(status) if status.pending.is_empty() => {
                format!("nothing: up to date at {}", status.head.unwrap_or("-"))
            }
            Ok(status) => {
                let pending: Vec<&str> = status.pending.iter().map(|m| m.revision()).collect();
                let shown = pending.join(", ");
                match groups.iter_mut().find(|(p, _, _)| *p == pending) {
                    Some((_, names, _)) => names.push(name.clone()),
                    None => groups.push((pending, vec![name.clone()], status.clone())),
                }
                shown
            }
            Err(e) => {
                failed.push(name.clone());
                format!("error: {}", first_line(e))
            }
        };
        let _ = writeln!(out, "{name:<width$}  {state}");
    }
    let pending: usize = groups.iter().map(|(_, names, _)| names.len()).sum();
    let _ = writeln!(
        out,
        "{} up to date, {pending} with pending migrations, {} failed, of {} {kind}(s)",
        statuses.len() - pending - failed.len(),
        failed.len(),
        statuses.len()
    );
    for (_, names, status) in &groups {
        let _ = writeln!(
            out,
            "\non {} ({} {kind}(s)):",
            names.join(", "),
            names.len()
        );
        crate::plan::print(migrator.migrations(), status, out);
    }
    if failed.is_empty() {
        return 0;
    }
    unread(err, kind, &failed);
    2
}

/// The targets whose status could not be read, named on stderr.
fn unread(err: &mut dyn Write, kind: &str, failed: &[String]) {
    let _ = writeln!(
        err,
        "error: {} {kind}(s) could not be read: {}",
        failed.len(),
        failed.join(", ")
    );
}

/// How a fleet's drift is shown: the width of the targets' column, or one JSON object.
#[derive(Debug, Clone, Copy)]
struct Shown {
    width: usize,
    json: bool,
}

/// `diff` on a fleet: each target compared with what its applied migrations build (a tenant
/// schema alone, replayed into a schema of its name); a line per target, then each drifting
/// target's report. Exit 0 when none drifts, 1 when one does, 2 when one could not be compared.
#[allow(clippy::too_many_arguments)]
fn diff(
    migrator: &Migrator<'_>,
    url: &str,
    targets: &Targets,
    shadow_url: Option<&str>,
    jobs: usize,
    shown: Shown,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let kind = kind_of(targets);
    let width = shown.width;
    let drifts = migrator.drift_each(url, targets, shadow_url, jobs);
    if migrate_core::runtime::drift::interrupted() {
        // The signal's handler is cleaning the shadows the targets' checks had, and exits the
        // process; their errors are its doing.
        let _ = writeln!(err, "interrupted: the shadow databases were cleaned");
        loop {
            std::thread::park();
        }
    }
    let (mut drifting, mut failed) = (Vec::new(), Vec::new());
    let mut reports: Vec<(String, Vec<u8>)> = Vec::new();
    let mut each_json = Vec::new();
    if !shown.json {
        let _ = writeln!(out, "{:<width$}  drift", kind);
    }
    let mut unexplained = Vec::new();
    for (name, drift) in &drifts {
        let mut report = Vec::new();
        let state = match drift {
            Ok(drift) => {
                match crate::drift::report(
                    migrator.migrations(),
                    drift,
                    shown.json,
                    None,
                    &mut report,
                ) {
                    Ok(_) => {}
                    Err(e) => {
                        failed.push(name.clone());
                        let _ = writeln!(out, "{name:<width$}  error: {}", first_line(&e));
                        continue;
                    }
                }
                if drift.is_clean() && !drift.pending.is_empty() {
                    format!("no drift ({} pending, not compared)", drift.pending.len())
                } else if drift.is_clean() {
                    "no drift".to_owned()
                } else {
                    drifting.push(name.clone());
                    format!("{} difference(s)", drift.differences.len())
                }
            }
            Err(e) => {
                failed.push(name.clone());
                if shown.json {
                    each_json.push(serde_json::json!({"target": name, "status": "error", "error": e.to_string()}));
                } else if e.to_string().contains('\n') {
                    // The table has room for the first line; the rest says what to do.
                    unexplained.push((name.clone(), e.to_string()));
                }
                format!("error: {}", first_line(e))
            }
        };
        if shown.json {
            if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&report) {
                value["target"] = serde_json::Value::String(name.clone());
                each_json.push(value);
            }
        } else {
            let _ = writeln!(out, "{name:<width$}  {state}");
            if drift.as_ref().is_ok_and(|d| !d.is_clean()) {
                reports.push((name.clone(), report));
            }
        }
    }
    if shown.json {
        let _ = writeln!(out, "{}", serde_json::json!({ "targets": each_json }));
    } else {
        let _ = writeln!(
            out,
            "{} without drift, {} drifting, {} could not be compared, of {} {kind}(s)",
            drifts.len() - drifting.len() - failed.len(),
            drifting.len(),
            failed.len(),
            drifts.len()
        );
        for (name, report) in reports {
            let _ = writeln!(out, "\n{kind} {name}:");
            let _ = out.write_all(&report);
        }
    }
    for (name, error) in unexplained {
        let _ = writeln!(err, "{kind} {name}: {error}");
    }
    if !failed.is_empty() {
        let _ = writeln!(
            err,
            "error: {} {kind}(s) could not be compared: {}",
            failed.len(),
            failed.join(", ")
        );
        return 2;
    }
    u8::from(!drifting.is_empty())
}

fn kind_of(targets: &Targets) -> &'static str {
    match targets {
        Targets::Schemas(_) => "schema",
        Targets::Databases(_) => "database",
    }
}
