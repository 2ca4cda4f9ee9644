//! Compile-time analysis of a migrations directory: no database, no IO but reading the files.
//! `embed_migrations!` runs it inside the compiler; `lint_dir` and the tests run it directly.

pub mod diagnostic;
pub mod graph;
pub mod header;
pub mod source;
pub mod statements;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Location, Severity};
pub use header::Header;
pub use statements::StatementSpan;

/// One migration file that passed the header, UTF-8 and syntax checks.
#[derive(Debug, Clone)]
pub struct AnalyzedMigration {
    /// The file as shown in messages: the directory as the user wrote it, then the file name.
    pub path: String,
    /// The file on disk, for rebuild tracking.
    pub fs_path: PathBuf,
    /// Normalised text (no BOM, LF line endings): what is embedded and run.
    pub sql: String,
    pub header: Header,
    pub statements: Vec<StatementSpan>,
    /// Hex SHA-256 of `sql`.
    pub checksum: String,
}

/// The outcome of analysing a directory: the migrations in application order when the graph is
/// sound, every finding, and every file read (so the caller can make the build depend on them).
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub migrations: Vec<AnalyzedMigration>,
    pub diagnostics: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
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
    analyze_dir_with(dir, display_dir, &crate::lint::LintConfig::default())
}

/// [`analyze_dir`] with an explicit lint configuration. The lint runs once the files and the
/// graph are sound (it needs the application order).
pub fn analyze_dir_with(dir: &Path, display_dir: &str, lint: &crate::lint::LintConfig) -> Analysis {
    let mut analysis = Analysis::default();
    let display_dir = display_dir.trim_end_matches('/');
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            let help = if err.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "create the directory {display_dir} (it is resolved from the crate's Cargo.toml directory) and put the migration files in it"
                )
            } else {
                "check the directory's permissions".to_owned()
            };
            analysis.diagnostics.push(
                Diagnostic::error(
                    "missing-directory",
                    None,
                    format!("cannot read the migrations directory {display_dir}: {err}"),
                )
                .with_help(help),
            );
            return analysis;
        }
    };

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                analysis.diagnostics.push(Diagnostic::error(
                    "unreadable-file",
                    None,
                    format!("cannot list the migrations directory {display_dir}: {err}"),
                ));
                continue;
            }
        };
        let fs_path = entry.path();
        if fs_path.extension().is_none_or(|ext| ext != "sql") {
            continue;
        }
        match entry.file_name().to_str() {
            Some(name) => files.push((format!("{display_dir}/{name}"), fs_path)),
            None => analysis.diagnostics.push(
                Diagnostic::error(
                    "non-utf8-file",
                    None,
                    format!(
                        "the file name {} in {display_dir} is not valid UTF-8",
                        fs_path.display()
                    ),
                )
                .with_help("rename the file to `<revision>_<slug>.sql` in plain ASCII"),
            ),
        }
    }
    files.sort();

    if files.is_empty() && analysis.diagnostics.is_empty() {
        analysis.diagnostics.push(
            Diagnostic::error("empty-directory", None, format!("the migrations directory {display_dir} has no `*.sql` file"))
                .with_help(format!(
                    "add the first migration, e.g. {display_dir}/0001_init.sql starting with\n-- revision: 0001\n-- parents: none"
                )),
        );
        return analysis;
    }

    let mut parsed = Vec::with_capacity(files.len());
    for (path, fs_path) in files {
        if let Some(migration) = analyze_file(&path, fs_path, &mut analysis) {
            parsed.push(migration);
        }
    }

    let nodes: Vec<graph::GraphNode> = parsed
        .iter()
        .map(|m| graph::GraphNode {
            path: &m.path,
            header: &m.header,
        })
        .collect();
    let graph = graph::check_graph(display_dir, &nodes);
    // A graph can only be judged whole: with a file left out for a bad header, its children
    // would be reported as dangling, which is noise.
    if analysis.diagnostics.is_empty() {
        match graph {
            Ok(order) => {
                let mut slots: Vec<Option<AnalyzedMigration>> =
                    parsed.into_iter().map(Some).collect();
                analysis.migrations = order
                    .into_iter()
                    .filter_map(|i| slots.get_mut(i).and_then(Option::take))
                    .collect();
                analysis
                    .diagnostics
                    .extend(crate::lint::lint_migrations(&analysis.migrations, lint));
            }
            Err(errors) => analysis.diagnostics.extend(errors),
        }
    }
    analysis
}

fn analyze_file(
    path: &str,
    fs_path: PathBuf,
    analysis: &mut Analysis,
) -> Option<AnalyzedMigration> {
    let diagnostics = &mut analysis.diagnostics;
    let bytes = match std::fs::read(&fs_path) {
        Ok(bytes) => {
            // Only regular, readable files can be tracked with include_bytes!.
            analysis.files.push(fs_path.clone());
            bytes
        }
        Err(err) => {
            diagnostics.push(
                Diagnostic::error(
                    "unreadable-file",
                    Some(Location::new(path, 1, 1)),
                    format!("cannot read the file: {err}"),
                )
                .with_help("check that it is a readable regular file"),
            );
            return None;
        }
    };
    let text = match source::normalize(path, &bytes) {
        Ok(text) => text,
        Err(diagnostic) => {
            diagnostics.push(diagnostic);
            return None;
        }
    };
    let header = header::parse_header(path, &text.text);
    let statements = statements::split_statements(path, &text.text);
    match (header, statements) {
        (Ok(header), Ok(statements)) => Some(AnalyzedMigration {
            path: path.to_owned(),
            fs_path,
            checksum: source::checksum(&text),
            sql: text.text,
            header,
            statements,
        }),
        (header, statements) => {
            diagnostics.extend(header.err().into_iter().flatten());
            diagnostics.extend(statements.err().into_iter().flatten());
            None
        }
    }
}

/// Analyses one migration's text (already normalised, as embedded in a binary): header and
/// statements, without graph checks. The operator CLI uses it to show an embedded migration's
/// lock plan.
pub fn analyze_text(path: &str, sql: &str) -> Result<AnalyzedMigration, Vec<Diagnostic>> {
    let text = source::NormalizedText {
        text: sql.to_owned(),
    };
    let header = header::parse_header(path, sql);
    let statements = statements::split_statements(path, sql);
    match (header, statements) {
        (Ok(header), Ok(statements)) => Ok(AnalyzedMigration {
            path: path.to_owned(),
            fs_path: PathBuf::from(path),
            checksum: source::checksum(&text),
            sql: text.text,
            header,
            statements,
        }),
        (header, statements) => Err(header
            .err()
            .into_iter()
            .flatten()
            .chain(statements.err().into_iter().flatten())
            .collect()),
    }
}
