//! A migrations directory read at run time, checked as `embed_migrations!` checks it before a
//! command uses it.

use std::io::Write;

use migrate_core::Migrations;
use migrate_core::analysis::diagnostic::Check;
use migrate_core::lint::config::LintOverrides;
use migrate_core::lint::rule::Level;

/// Whether a command runs the migrations on the database, and so refuses what the compiler
/// refuses, or only reads them (status, stamp, plan, diff, a shadow's replay), and so reports the
/// lint's findings and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Apply,
    Read,
}

/// The directory's migrations, when it passes the checks `embed_migrations!` makes (for
/// [`Use::Read`], when its files, headers, graph and settings do: lint findings are printed and
/// let it through). Otherwise its errors are printed with what was not done because of them,
/// and the exit code is returned: 2 when the directory could not be read, 1 for what it holds.
pub(crate) fn checked_migrations(
    dir: &std::path::Path,
    use_: Use,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
) -> Result<Migrations, u8> {
    checked_with(dir, use_, &LintOverrides::default(), err, not_done, help)
}

/// [`checked_migrations`] for every tenant schema of a database: a name written with its schema
/// (`schema-qualified-name`) is an error, since each tenant's run would reach that one object.
pub(crate) fn checked_for_each_schema(
    dir: &std::path::Path,
    use_: Use,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
) -> Result<Migrations, u8> {
    let overrides = LintOverrides {
        target_version: None,
        levels: vec![("schema-qualified-name".to_owned(), Level::Error)],
    };
    checked_with(dir, use_, &overrides, err, not_done, help)
}

fn checked_with(
    dir: &std::path::Path,
    use_: Use,
    overrides: &LintOverrides,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
) -> Result<Migrations, u8> {
    let display = dir.display().to_string();
    let analysis = migrate_core::analysis::check::analyze_dir_configured(dir, &display, overrides);
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    let lint_only = errors
        .iter()
        .all(|d| d.check.is_rule() || matches!(d.check, Check::InvalidAllow | Check::UnusedAllow));
    if errors.is_empty() {
        return Ok(Migrations::from_analysis(&analysis));
    }
    if use_ == Use::Read && lint_only && !analysis.migrations.is_empty() {
        for finding in &errors {
            let _ = writeln!(err, "error: {finding}");
        }
        let _ = writeln!(
            err,
            "note: {} lint finding(s) at error level in {display}: this command goes on, and `migrate apply` refuses the directory until they are fixed or allowed",
            errors.len()
        );
        return Ok(Migrations::from_analysis(&analysis));
    }
    for finding in errors {
        let _ = writeln!(err, "error: {finding}");
    }
    let _ = writeln!(
        err,
        "error: {display} does not pass the checks `embed_migrations!` makes; {not_done}\n  help: {help}"
    );
    let unreadable = analysis
        .diagnostics
        .iter()
        .any(|d| d.check == Check::MissingDirectory);
    Err(if unreadable { 2 } else { 1 })
}
