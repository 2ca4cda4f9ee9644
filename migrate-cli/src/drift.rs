//! `diff` and `baseline`: the drift report, the reconciling migration, and the baseline of a
//! database that no migration built.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use migrate_core::Migrations;
use migrate_core::analysis::source::one_line;
use migrate_core::lint::config::LintOverrides;
use migrate_core::runtime::catalog::{self, Difference};
use migrate_core::runtime::{Drift, Error, Migrator, connect};

use crate::authoring::{create_new, new_revision_id};
use migrate_core::analysis::diagnostic::Check;
use migrate_core::analysis::header::render_header;

/// What a difference is about: its table for columns, constraints and indexes, else itself.
fn group_of(object: &str) -> String {
    match object.split_once(' ') {
        Some(("column" | "constraint" | "index", name)) if name.matches('.').count() >= 2 => {
            let table = name.rsplit_once('.').map_or(name, |(t, _)| t);
            format!("table {table}")
        }
        _ => object.to_owned(),
    }
}

fn short(text: &Option<String>) -> String {
    text.as_deref()
        .map_or_else(|| "(absent)".to_owned(), |t| one_line(t, 90))
}

/// A difference on one line, long definitions cut.
pub(super) fn one_line_difference(difference: &Difference) -> String {
    format!(
        "{} [{}]: migrations build {}; the database has {}",
        difference.object,
        difference.severity,
        short(&difference.expected),
        short(&difference.actual)
    )
}

/// Differences as the JSON outputs give them.
pub(super) fn differences_json(differences: &[Difference]) -> serde_json::Value {
    differences
        .iter()
        .map(|d| {
            json!({
                "object": d.object,
                "severity": d.severity.to_string(),
                "expected": d.expected,
                "actual": d.actual,
                "fix": d.fix.iter().map(|f| f.sql.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Prints the drift report (or its JSON), writes the reconciling migration when asked, and
/// returns the exit code: 0 no drift, 1 drift.
pub(super) fn report(
    migrations: &Migrations,
    drift: &Drift,
    json: bool,
    write: Option<&Path>,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let written = match write {
        Some(path) if !drift.is_clean() => Some(write_fix(migrations, drift, path)?),
        _ => None,
    };
    if json {
        let value = json!({
            "status": if drift.is_clean() { "clean" } else { "drift" },
            "replayed": drift.replayed,
            "pending": drift.pending,
            "differences": differences_json(&drift.differences),
            "written": written.as_ref().map(|p| p.display().to_string()),
        });
        let _ = writeln!(out, "{value}");
    } else {
        let mut group = None;
        for difference in &drift.differences {
            let this = group_of(&difference.object);
            if group.as_ref() != Some(&this) {
                let _ = writeln!(out, "{this}");
                group = Some(this);
            }
            let _ = writeln!(out, "  {}", one_line_difference(difference));
        }
        let pending = if drift.pending.is_empty() {
            String::new()
        } else {
            format!(
                "; {} pending revision(s) not compared: {}",
                drift.pending.len(),
                drift.pending.join(", ")
            )
        };
        let verdict = if drift.is_clean() {
            "no drift".to_owned()
        } else {
            format!("drift: {} difference(s)", drift.differences.len())
        };
        let _ = writeln!(
            out,
            "{verdict} against the {} applied revision(s){pending}",
            drift.replayed.len()
        );
        if let Some(path) = &written {
            let _ = writeln!(
                out,
                "wrote {}: review it, enable the destructive parts you want, then apply it",
                path.display()
            );
        }
    }
    Ok(if drift.is_clean() { 0 } else { 1 })
}

fn io_error(path: &Path, action: &str, e: std::io::Error) -> Error {
    Error::InvalidConfig {
        name: "--write".to_owned(),
        value: path.display().to_string(),
        reason: format!("cannot {action}: {e}"),
    }
}

/// Writes the reconciling migration: `path`, or a new file in it when it is a directory.
fn write_fix(migrations: &Migrations, drift: &Drift, path: &Path) -> Result<PathBuf, Error> {
    let revision = new_revision_id(SystemTime::now());
    let path = if path.is_dir() {
        path.join(format!("{revision}_reconcile.sql"))
    } else {
        path.to_owned()
    };
    let parents: Vec<&str> = migrations
        .head()
        .map(|m| m.revision())
        .into_iter()
        .collect();
    let header = render_header(
        &revision,
        &parents,
        "reconcile the database with its migrations",
        false,
    );
    let sql = catalog::fix_migration(&header, &drift.differences);
    write_new(&path, &sql)?;
    if let Some(annotated) = annotate_findings(&path, &sql) {
        std::fs::write(&path, annotated).map_err(|e| io_error(&path, "write the file", e))?;
    }
    Ok(path)
}

/// The reason written on the allow lines of a reconciling migration.
const ALLOW_REASON: &str = "reconciles the drift `migrate diff` found; review before applying";

/// Marks each statement of the reconciling migration that the lint flags with an allow line
/// naming its rule, judged with the migrations beside it (the types and tables they build): the
/// reviewer sees which statements need care, and the directory passes `check` once they are
/// accepted.
fn annotate_findings(path: &Path, sql: &str) -> Option<String> {
    let dir = path.parent().filter(|d| d.is_dir())?;
    let file = path.file_name()?.to_str()?;
    let display = dir.display().to_string();
    let analysis = migrate_core::analysis::check::analyze_dir_configured(
        dir,
        &display,
        &LintOverrides::default(),
    );
    let mut flagged: Vec<(usize, &'static str)> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && d.check != Check::UnusedAllow)
        .filter_map(|d| {
            let location = d.location.as_ref()?;
            location
                .path
                .ends_with(file)
                .then_some((location.line, d.check.id()))
        })
        .collect();
    flagged.sort();
    flagged.dedup();
    if flagged.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = sql.lines().map(str::to_owned).collect();
    for (line, rule) in flagged.into_iter().rev() {
        if line >= 1 && line <= lines.len() {
            lines.insert(line - 1, format!("-- migrate:allow {rule}: {ALLOW_REASON}"));
        }
    }
    Some(lines.join("\n") + "\n")
}

/// Creates `path` with `text`, never over an existing file.
fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    create_new(path, text).map_err(|e| io_error(path, "create the file", e))
}

pub(super) struct BaselineRequest<'a> {
    pub dir: &'a Path,
    pub allow_partial: bool,
    pub stamp: bool,
}

fn refused(err: &mut dyn Write, message: &str) -> Result<u8, Error> {
    let _ = writeln!(err, "error: {message}");
    Ok(1)
}

/// Reads the live schema, renders it, checks that a shadow database built from it has the same
/// schema, then writes it (and stamps it when asked).
pub(super) fn baseline(
    migrator: &Migrator<'_>,
    url: &str,
    request: &BaselineRequest<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, Error> {
    let dir = request.dir;
    let existing = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .unwrap_or(false);
    if existing {
        return refused(
            err,
            &format!(
                "{} already holds migrations, and a baseline is the first one of a directory\n  help: baseline into an empty directory; to adopt a database the existing migrations already describe, stamp it instead (`stamp <revision>`)",
                dir.display()
            ),
        );
    }
    let name = &migrator.settings().application_name;
    let live = migrator.catalog(&mut connect(url, name)?)?;
    let sql = match catalog::baseline_sql(&live, request.allow_partial) {
        Ok(sql) => sql,
        Err(e) => {
            return refused(
                err,
                &format!(
                    "{e}\n  help: recreate them in a migration of your own after the baseline, and pass --allow-partial to write the rest (they are listed in the file)"
                ),
            );
        }
    };
    let differences = migrator.verify_baseline(url, &sql, &live)?;
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(Difference::to_string).collect();
        return refused(
            err,
            &format!(
                "a database built from the baseline differs from the live one in {} place(s); nothing was written:\n  {}\n  help: this is a gap in the baseline's rendering; report it with the lines above",
                differences.len(),
                list.join("\n  ")
            ),
        );
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))?;
    let revision = new_revision_id(SystemTime::now());
    let path = dir.join(format!("{revision}_baseline.sql"));
    let header = render_header(
        &revision,
        &[],
        "baseline: the schema as the database had it",
        false,
    );
    write_new(&path, &format!("{header}{sql}"))?;
    let _ = writeln!(
        out,
        "wrote {}: {} table(s), {} other object(s); a database built from it has the live schema",
        path.display(),
        live.tables.len(),
        live.objects.len()
    );
    if request.stamp {
        let migrations = match crate::checked::checked_migrations(
            dir,
            crate::checked::Use::Read,
            err,
            "the baseline was not stamped",
            &format!("fix the findings above, then run `stamp {revision}`"),
        ) {
            Ok(migrations) => migrations,
            Err(code) => return Ok(code),
        };
        let stamper = Migrator::with_settings(&migrations, migrator.settings().clone());
        stamper.stamp(&mut connect(url, name)?, &revision)?;
        let _ = writeln!(out, "stamped {revision} as applied");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_group_under_their_table() {
        assert_eq!(group_of("column public.users.email"), "table public.users");
        assert_eq!(
            group_of("index billing.invoices.invoices_account"),
            "table billing.invoices"
        );
        assert_eq!(group_of("table public.users"), "table public.users");
        assert_eq!(
            group_of("function public.f(integer)"),
            "function public.f(integer)"
        );
    }
}
