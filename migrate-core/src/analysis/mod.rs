//! Compile-time analysis of a migrations directory: no database, no IO but reading the files.
//! `embed_migrations!` runs it inside the compiler; `lint_dir` and the tests run it directly.

#[cfg(feature = "analysis")]
pub mod check;
pub mod diagnostic;
pub mod graph;
pub mod header;
pub mod source;
#[cfg(feature = "analysis")]
pub mod statements;

#[cfg(feature = "analysis")]
use std::path::{Path, PathBuf};

pub use diagnostic::{Check, Diagnostic, Location, Severity};
pub use header::Header;
#[cfg(feature = "analysis")]
pub use statements::StatementSpan;

#[cfg(feature = "analysis")]
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
    /// Parsed once, here: the lint walks these syntax trees, the macro embeds their spans.
    pub statements: Vec<statements::ParsedStatement>,
    /// Hex SHA-256 of `sql`.
    pub checksum: String,
    /// A transactional migration whose statements touch only tables it creates, as the lint
    /// judged it (so false until the lint ran): one the runner may commit in the same
    /// transaction as its neighbours, since it locks no relation that existed before it.
    pub self_contained: bool,
}

#[cfg(feature = "analysis")]
/// What reading a directory gave: its migrations in application order (only when every file and
/// the graph are sound; empty otherwise), every finding, and every file read (so the caller can
/// make the build depend on them).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub migrations: Vec<AnalyzedMigration>,
    pub diagnostics: Vec<Diagnostic>,
    pub files: Vec<PathBuf>,
}

#[cfg(feature = "analysis")]
/// Reads every `*.sql` file directly inside `dir`: headers, statements and the revision graph.
/// `display_dir` is how the directory is named in messages (typically the path the user wrote in
/// `embed_migrations!`). The lint is not run here: see [`check`].
pub fn read_directory(dir: &Path, display_dir: &str) -> Directory {
    let mut analysis = Directory::default();
    let display_dir = display_dir.trim_end_matches('/');
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            let help = if err.kind() == std::io::ErrorKind::NotFound {
                // The macro names the directory as written and reads it from the crate's root;
                // a command reads the path it was given, from where it runs.
                let resolved = if dir != Path::new(display_dir) {
                    " (it is resolved from the crate's Cargo.toml directory)"
                } else if dir.is_relative() {
                    " (it is resolved from the current directory)"
                } else {
                    ""
                };
                format!(
                    "create the directory {display_dir}{resolved} and put the migration files in it"
                )
            } else {
                "check that it is a directory this user may read".to_owned()
            };
            analysis.diagnostics.push(
                Diagnostic::error(
                    Check::MissingDirectory,
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
                    Check::UnreadableFile,
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
                    Check::NonUtf8File,
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
            Diagnostic::error(Check::EmptyDirectory, None, format!("the migrations directory {display_dir} has no `*.sql` file"))
                .with_help(format!(
                    "add the first migration, e.g. {display_dir}/0001_init.sql starting with\n-- revision: 0001\n-- parents: none"
                )),
        );
        return analysis;
    }

    let mut parsed = Vec::with_capacity(files.len());
    // Files with errors whose revision and parents could still be read: they keep their place
    // in the graph, so that the graph around them is checked too.
    let mut partial: Vec<(String, Header)> = Vec::new();
    let mut unplaced = 0;
    // Every file is read first and parsed at once, on all cores, then put together in order.
    let read: Vec<(String, PathBuf, Option<source::NormalizedText>)> = files
        .into_iter()
        .map(|(path, fs_path)| {
            let text = read_file(&path, &fs_path, &mut analysis);
            (path, fs_path, text)
        })
        .collect();
    let texts: Vec<&str> = read
        .iter()
        .filter_map(|(_, _, text)| text.as_ref().map(|text| text.text.as_str()))
        .collect();
    let mut parses = statements::parse_sources(&texts).into_iter();
    for (path, fs_path, text) in read {
        let Some(text) = text else {
            unplaced += 1;
            continue;
        };
        let parse = parses.next().flatten();
        match analyze_file(&path, fs_path, text, parse, &mut analysis.diagnostics) {
            FileAnalysis::Sound(migration) => parsed.push(migration),
            FileAnalysis::Broken(Some(header)) => partial.push((path, header)),
            FileAnalysis::Broken(None) => unplaced += 1,
        }
    }

    let nodes: Vec<graph::GraphNode> = parsed
        .iter()
        .map(|m| graph::GraphNode {
            path: &m.path,
            header: &m.header,
        })
        .chain(
            partial
                .iter()
                .map(|(path, header)| graph::GraphNode { path, header }),
        )
        .collect();
    let files_sound = analysis.diagnostics.is_empty();
    match graph::check_graph(display_dir, &nodes) {
        Ok(order) if files_sound => {
            let mut slots: Vec<Option<AnalyzedMigration>> = parsed.into_iter().map(Some).collect();
            analysis.migrations = order
                .into_iter()
                .filter_map(|i| slots.get_mut(i).and_then(Option::take))
                .collect();
        }
        // The lint needs every migration of the chain; it runs once the files are fixed.
        Ok(_) => {}
        Err(errors) => analysis.diagnostics.extend(errors.into_iter().filter(|e| {
            // A file whose header could not be read at all is missing from the graph: its
            // children look dangling and, were it a merge, its branches look like extra heads.
            // Those findings would be noise; the ones it cannot explain (two roots, a cycle, a
            // duplicate) are reported.
            unplaced == 0 || !matches!(e.check, Check::DanglingParent | Check::MultipleHeads)
        })),
    }
    analysis
}

#[cfg(feature = "analysis")]
/// What reading one file gave.
enum FileAnalysis {
    Sound(AnalyzedMigration),
    /// Errors were reported; the header, when its revision and parents are usable.
    Broken(Option<Header>),
}

#[cfg(feature = "analysis")]
/// Reads and normalises one file; `None` once its error is reported.
fn read_file(
    path: &str,
    fs_path: &Path,
    analysis: &mut Directory,
) -> Option<source::NormalizedText> {
    let bytes = match std::fs::read(fs_path) {
        Ok(bytes) => {
            // Only regular, readable files can be tracked with include_bytes!.
            analysis.files.push(fs_path.to_path_buf());
            bytes
        }
        Err(err) => {
            analysis.diagnostics.push(
                Diagnostic::error(
                    Check::UnreadableFile,
                    Some(Location::new(path, 1, 1)),
                    format!("cannot read the file: {err}"),
                )
                .with_help("check that it is a readable regular file"),
            );
            return None;
        }
    };
    source::normalize(path, &bytes)
        .map_err(|diagnostic| analysis.diagnostics.push(diagnostic))
        .ok()
}

#[cfg(feature = "analysis")]
/// One file's header and statements, from its text and its parse.
fn analyze_file(
    path: &str,
    fs_path: PathBuf,
    text: source::NormalizedText,
    parse: statements::SourceParse,
    diagnostics: &mut Vec<Diagnostic>,
) -> FileAnalysis {
    let (header, header_errors) = header::parse_header_partial(path, &text.text);
    let statements = statements::statements_of(path, &text.text, parse);
    match (header, statements) {
        (Some(header), Ok(statements)) if header_errors.is_empty() => {
            FileAnalysis::Sound(AnalyzedMigration {
                path: path.to_owned(),
                fs_path,
                checksum: source::checksum(&text),
                sql: text.text,
                header,
                statements,
                self_contained: false,
            })
        }
        (header, statements) => {
            diagnostics.extend(header_errors);
            diagnostics.extend(statements.err().into_iter().flatten());
            FileAnalysis::Broken(header)
        }
    }
}

#[cfg(feature = "analysis")]
/// Analyses one migration's text (already normalised, as embedded in a binary): header and
/// statements, without graph checks. The operator CLI uses it to show an embedded migration's
/// lock plan.
pub fn analyze_text(path: &str, sql: &str) -> Result<AnalyzedMigration, Vec<Diagnostic>> {
    let text = source::NormalizedText {
        text: sql.to_owned(),
    };
    let header = header::parse_header(path, sql);
    let statements = statements::parse_statements(path, sql);
    match (header, statements) {
        (Ok(header), Ok(statements)) => Ok(AnalyzedMigration {
            path: path.to_owned(),
            fs_path: PathBuf::from(path),
            checksum: source::checksum(&text),
            sql: text.text,
            header,
            statements,
            self_contained: false,
        }),
        (header, statements) => Err(header
            .err()
            .into_iter()
            .flatten()
            .chain(statements.err().into_iter().flatten())
            .collect()),
    }
}
