//! The check of a migrations directory: read it, then lint it with the directory's settings.
//! What `embed_migrations!`, `migrate check` and `migrate lint` run.

use std::path::{Path, PathBuf};

use super::{AnalyzedMigration, Diagnostic, Location};
use crate::analysis::diagnostic::Check;
use crate::analysis::diagnostic::Severity;
use crate::lint::config::{CONFIG_FILE, Frozen, LintConfig, LintOverrides, read_config};

/// The outcome of checking a directory: the migrations in application order when the graph is
/// sound, every finding, and every file read (so the caller can make the build depend on them).
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub migrations: Vec<AnalyzedMigration>,
    pub diagnostics: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
    /// The lint configuration the statements were judged with.
    pub lint: LintConfig,
    /// The directory's schema snapshot, when it was taken for exactly these migrations.
    pub snapshot: Option<String>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Analyses every `*.sql` file directly inside `dir` with the default lint configuration.
/// `display_dir` is how the directory is named in messages (typically the path the user wrote in
/// `embed_migrations!`).
pub fn analyze_dir(dir: &Path, display_dir: &str) -> Analysis {
    analyze_dir_with(dir, display_dir, &LintConfig::default())
}

/// [`analyze_dir`] with the lint settings of the directory's `migrate.toml` (when it has one),
/// overridden by `overrides`: what `embed_migrations!`, `migrate check` and `migrate lint` run.
/// The file, when present, is among the files read (a change to it rebuilds the host).
pub fn analyze_dir_configured(
    dir: &Path,
    display_dir: &str,
    overrides: &LintOverrides,
) -> Analysis {
    let display = display_dir.trim_end_matches('/');
    // A directory that cannot be read is that, not a configuration problem.
    if std::fs::read_dir(dir).is_err() {
        return analyze_dir_with(dir, display_dir, &LintConfig::default());
    }
    match read_config(dir, display) {
        Ok((mut lint, present)) => {
            if let Err(message) = overrides.apply(&mut lint) {
                let mut analysis = Analysis::default();
                analysis
                    .diagnostics
                    .push(Diagnostic::error(Check::InvalidConfig, None, message));
                return analysis;
            }
            let mut analysis = analyze_dir_with(dir, display_dir, &lint);
            if present {
                analysis.files.push(dir.join(CONFIG_FILE));
            }
            read_snapshot(dir, display, &mut analysis);
            analysis
        }
        Err(diagnostics) => Analysis {
            diagnostics,
            ..Analysis::default()
        },
    }
}

/// Takes the directory's schema snapshot when it was taken for these migrations; a stale one is
/// a warning and is left out, so that nothing compares the database with an outdated schema.
fn read_snapshot(dir: &Path, display: &str, analysis: &mut Analysis) {
    use crate::snapshot::{SNAPSHOT_FILE, key, key_of};
    let path = dir.join(SNAPSHOT_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    analysis.files.push(path);
    if analysis.has_errors() {
        return;
    }
    let current = key(analysis.migrations.iter().map(|m| m.checksum.as_str()));
    let location = Some(Location::new(format!("{display}/{SNAPSHOT_FILE}"), 1, 1));
    match key_of(&text) {
        Some(taken) if taken == current => analysis.snapshot = Some(text),
        taken => analysis.diagnostics.push(
            Diagnostic::warning(
                Check::StaleSnapshot,
                location,
                if taken.is_some() {
                    "the schema snapshot was taken for other migrations than these: drift checks do not use it".to_owned()
                } else {
                    "this is not a schema snapshot `migrate snapshot` wrote: drift checks do not use it".to_owned()
                },
            )
            .with_help(format!(
                "run `migrate --dir {display} snapshot` to take it again, or delete it"
            )),
        ),
    }
}

/// [`analyze_dir`] with an explicit lint configuration. The lint runs once the files and the
/// graph are sound (it needs the application order).
pub fn analyze_dir_with(dir: &Path, display_dir: &str, lint: &LintConfig) -> Analysis {
    let read = super::read_directory(dir, display_dir);
    let mut analysis = Analysis {
        migrations: read.migrations,
        diagnostics: read.diagnostics,
        files: read.files,
        lint: lint.clone(),
        snapshot: None,
    };
    replaced_files(&mut analysis);
    // Only a sound directory has its migrations in order.
    if !analysis.migrations.is_empty() {
        let (diagnostics, self_contained) = crate::lint::lint_and_judge(&analysis.migrations, lint);
        analysis.diagnostics.extend(diagnostics);
        for (migration, judged) in analysis.migrations.iter_mut().zip(self_contained) {
            migration.self_contained = judged && !migration.header.no_transaction;
        }
        if let Some(frozen) = &lint.frozen {
            apply_frozen(&mut analysis, frozen, display_dir.trim_end_matches('/'));
        }
    }
    analysis
}

/// A squash stands for the revisions on its `replaces:` line: a file of one of them is left over.
fn replaced_files(analysis: &mut Analysis) {
    let mut found = Vec::new();
    for squash in &analysis.migrations {
        for (replaced, at) in &squash.header.replaces {
            if let Some(left) = analysis
                .migrations
                .iter()
                .find(|m| m.header.revision == *replaced)
            {
                found.push(
                    Diagnostic::error(
                        Check::DuplicateRevision,
                        Some(Location::new(&squash.path, at.line, at.column)),
                        format!(
                            "revision `{replaced}` is replaced by this squash and is still the file {}",
                            left.path
                        ),
                    )
                    .with_help("remove that file: the squash stands for it"),
                );
            }
        }
    }
    analysis.diagnostics.extend(found);
}

/// A history imported from another tool: `through` and its ancestors keep their lint findings as
/// information only, and must keep the text they were imported with.
fn apply_frozen(analysis: &mut Analysis, frozen: &Frozen, display: &str) {
    // `through` must name an imported revision: one the directory has, with a frozen checksum
    // (a revision without one is new, and held to the full lint).
    let known = analysis
        .migrations
        .iter()
        .position(|m| m.header.revision == frozen.through);
    let problem = match known {
        None => Some("which no migration has"),
        Some(_) if !frozen.checksums.contains_key(&frozen.through) => {
            Some("which has no frozen checksum")
        }
        Some(_) => None,
    };
    if let Some(problem) = problem {
        analysis.diagnostics.push(
            Diagnostic::error(
                Check::InvalidConfig,
                Some(Location::new(format!("{display}/{CONFIG_FILE}"), frozen.line, 1)),
                format!(
                    "`[frozen] through` names revision `{}`, {}",
                    frozen.through, problem
                ),
            )
            .with_help("name the last revision `migrate import` wrote, as it wrote it: later ones are linted in full"),
        );
        return;
    }
    let Some(last) = known else {
        return;
    };
    // The revision and its ancestors, walking the parents back from it.
    let mut wanted = std::collections::BTreeSet::from([frozen.through.as_str()]);
    for migration in analysis.migrations[..=last].iter().rev() {
        if wanted.contains(migration.header.revision.as_str()) {
            wanted.extend(migration.header.parents.iter().map(|(p, _)| p.as_str()));
        }
    }
    let frozen_paths: std::collections::BTreeSet<&str> = analysis
        .migrations
        .iter()
        .filter(|m| {
            wanted.contains(m.header.revision.as_str())
                && frozen.checksums.contains_key(&m.header.revision)
        })
        .map(|m| m.path.as_str())
        .collect();
    for diagnostic in &mut analysis.diagnostics {
        let in_frozen = diagnostic
            .location
            .as_ref()
            .is_some_and(|at| frozen_paths.contains(at.path.as_str()));
        // A statement that cannot run where it stands fails whatever ran before: that stays an
        // error.
        let certain_failure = diagnostic.check == Check::Rule("concurrently-in-transaction");
        if in_frozen && diagnostic.check.is_rule() && !certain_failure {
            diagnostic.severity = Severity::Info;
        }
    }
    let mut edited = Vec::new();
    for migration in &analysis.migrations {
        let recorded = frozen.checksums.get(&migration.header.revision);
        if let Some(recorded) = recorded.filter(|r| **r != migration.checksum) {
            edited.push(
                Diagnostic::error(
                    Check::FrozenEdited,
                    Some(Location::new(&migration.path, 1, 1)),
                    format!(
                        "revision `{}` is frozen, and its text changed since it was imported (checksum {}, frozen as {recorded})",
                        migration.header.revision, migration.checksum
                    ),
                )
                .with_help("restore the file as it was imported, and make the change in a new migration"),
            );
        }
    }
    analysis.diagnostics.extend(edited);
}

/// Migrations read from a directory at run time, by the standalone `migrate` command: the same
/// data `embed_migrations!` bakes in (revisions, order, checksums, statements), so both write the
/// same history rows.
impl crate::Migrations {
    /// Builds the set from an analysis without errors. The texts are leaked to get the
    /// `'static` lifetime embedded migrations have: a command reads its directory once.
    pub fn from_analysis(analysis: &Analysis) -> crate::Migrations {
        fn leak(text: &str) -> &'static str {
            Box::leak(text.to_owned().into_boxed_str())
        }
        use crate::migration::{
            Migration, MigrationParts, Statement, migration, migrations_with_snapshot,
        };
        let list: Vec<Migration> = analysis
            .migrations
            .iter()
            .map(|m| {
                let statements: Vec<Statement> = m
                    .statements
                    .iter()
                    .map(|parsed| &parsed.span)
                    .map(|s| Statement {
                        start: s.start,
                        end: s.end,
                        line: s.line,
                        column: s.column,
                        concurrent_index: s.concurrent_index.as_deref().map(leak),
                        concurrent_table: s.concurrent_table.as_deref().map(leak),
                        rerunnable: s.rerunnable,
                    })
                    .collect();
                let parents: Vec<&'static str> = m.header.parent_ids().map(leak).collect();
                migration(MigrationParts {
                    revision: leak(&m.header.revision),
                    parents: Box::leak(parents.into_boxed_slice()),
                    message: m.header.message.as_deref().map(leak),
                    no_transaction: m.header.no_transaction,
                    lock_timeout: m.header.lock_timeout,
                    statement_timeout: m.header.statement_timeout,
                    path: leak(&m.path),
                    sql: leak(&m.sql),
                    statements: Box::leak(statements.into_boxed_slice()),
                    checksum: leak(&m.checksum),
                    self_contained: m.self_contained,
                    replaces: Box::leak(
                        m.header
                            .replaces
                            .iter()
                            .map(|(r, _)| leak(r))
                            .collect::<Vec<_>>()
                            .into_boxed_slice(),
                    ),
                })
            })
            .collect();
        migrations_with_snapshot(
            Box::leak(list.into_boxed_slice()),
            analysis.lint.target_version,
            analysis.snapshot.as_deref().map(leak),
        )
    }
}
