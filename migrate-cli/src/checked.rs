//! A migrations directory read at run time, checked as `embed_migrations!` checks it before a
//! command uses it.

use std::io::Write;

use migrate_core::Migrations;
use migrate_core::analysis::diagnostic::Check;
use migrate_core::analysis::diagnostic::Severity;
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
    checked_with(
        dir,
        use_,
        &LintOverrides::default(),
        err,
        not_done,
        help,
        Warnings::Quiet,
    )
}

/// [`checked_migrations`] for every tenant schema of a database: a name written with its schema
/// (`schema-qualified-name`) reaches one object for every tenant. It is a warning here, printed
/// with the other warnings, unless `migrate.toml` sets its level (`"error"` to refuse it, `"off"`
/// to be silent): a migration already applied cannot be edited to allow it.
pub(crate) fn checked_for_each_schema(
    dir: &std::path::Path,
    use_: Use,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
) -> Result<Migrations, u8> {
    let overrides = LintOverrides {
        defaults: vec![(SCHEMA_QUALIFIED_NAME.to_owned(), Level::Warning)],
        ..LintOverrides::default()
    };
    checked_with(dir, use_, &overrides, err, not_done, help, Warnings::Print)
}

const SCHEMA_QUALIFIED_NAME: &str = "schema-qualified-name";

/// Whether a check prints the lint's warnings (the compiler does; a command on one database
/// has always kept quiet about them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warnings {
    Print,
    Quiet,
}

fn checked_with(
    dir: &std::path::Path,
    use_: Use,
    overrides: &LintOverrides,
    err: &mut dyn Write,
    not_done: &str,
    help: &str,
    warnings: Warnings,
) -> Result<Migrations, u8> {
    let display = dir.display().to_string();
    let analysis = migrate_core::analysis::check::analyze_dir_configured(dir, &display, overrides);
    if warnings == Warnings::Print {
        for warning in analysis
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
        {
            let _ = writeln!(err, "warning: {warning}");
        }
    }
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
