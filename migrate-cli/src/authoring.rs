//! Authoring commands on a migrations directory: `new`, `merge` and `graph`. They read the
//! headers only, so they work exactly when the build does not: with two heads, a dangling
//! parent, a statement the lint rejects.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use migrate_core::analysis::graph::merge_migration;
use migrate_core::analysis::header::{Header, parse_header_partial, render_header};
use migrate_core::analysis::source::normalize;

/// Why an authoring command did nothing. Each renders what happened and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthoringError {
    /// The directory is missing or unreadable (exit 2).
    Directory {
        dir: PathBuf,
        reason: String,
        /// It does not exist (rather than being unreadable or not a directory).
        missing: bool,
    },
    /// The file could not be written (exit 2).
    Write { path: PathBuf, reason: String },
    /// `new` with several heads and no `--parent` (exit 1).
    SeveralHeads { heads: Vec<String> },
    /// A slug with characters that do not belong in a file name (exit 1).
    InvalidSlug { slug: String },
    /// Another migration has the same slug (exit 1).
    SlugClash { slug: String, existing: PathBuf },
    /// `--parent` names a revision no file defines (exit 1).
    UnknownParent { revision: String },
}

impl AuthoringError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AuthoringError::Directory { .. } | AuthoringError::Write { .. } => 2,
            _ => 1,
        }
    }
}

impl std::fmt::Display for AuthoringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthoringError::Directory {
                dir,
                reason,
                missing: true,
            } => write!(
                f,
                "cannot read the migrations directory {}: {reason}\n  help: create it (mkdir -p {}) or pass --dir <directory>",
                dir.display(),
                dir.display()
            ),
            AuthoringError::Directory { dir, reason, .. } => write!(
                f,
                "cannot read the migrations directory {}: {reason}\n  help: check that it is a directory this user may read, or pass --dir <directory>",
                dir.display()
            ),
            AuthoringError::Write { path, reason } => write!(
                f,
                "cannot write {}: {reason}\n  help: check that the directory exists and is writable",
                path.display()
            ),
            AuthoringError::SeveralHeads { heads } => write!(
                f,
                "the migrations have {} heads: {}; a new migration would not know which one to build on\n  help: run `migrate merge` to join them first, or pass --parent <revision> for each parent",
                heads.len(),
                heads.join(", ")
            ),
            AuthoringError::InvalidSlug { slug } => write!(
                f,
                "the name `{slug}` cannot be part of a file name\n  help: use 1 to 60 characters of a-z, 0-9, `_` and `-`, e.g. `add_user_email`"
            ),
            AuthoringError::SlugClash { slug, existing } => write!(
                f,
                "a migration named `{slug}` exists already: {}\n  help: choose another name",
                existing.display()
            ),
            AuthoringError::UnknownParent { revision } => write!(
                f,
                "no migration in the directory has revision `{revision}`\n  help: run `migrate graph` to list the revisions"
            ),
        }
    }
}

impl std::error::Error for AuthoringError {}

/// One file's header as far as it could be read.
#[derive(Debug, Clone)]
pub struct Node {
    pub path: PathBuf,
    pub header: Header,
}

/// The headers of every `*.sql` file directly in `dir`, by file name. Files whose revision or
/// parents cannot be read are left out: the graph commands show what is known.
pub fn read_headers(dir: &Path) -> Result<Vec<Node>, AuthoringError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AuthoringError::Directory {
        dir: dir.to_owned(),
        reason: e.to_string(),
        missing: e.kind() == std::io::ErrorKind::NotFound,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let display = path.display().to_string();
            let text = normalize(&display, &bytes).ok()?;
            let (header, _) = parse_header_partial(&display, &text.text);
            header.map(|header| Node { path, header })
        })
        .collect())
}

/// Revisions no migration names as a parent, sorted.
pub fn heads(nodes: &[Node]) -> Vec<String> {
    let parents: BTreeSet<&str> = nodes.iter().flat_map(|n| n.header.parent_ids()).collect();
    let mut heads: Vec<String> = nodes
        .iter()
        .map(|n| n.header.revision.clone())
        .filter(|r| !parents.contains(r.as_str()))
        .collect();
    heads.sort();
    heads.dedup();
    heads
}

/// A slug fit for a file name: 1–60 characters of `a-z 0-9 _ -`.
pub fn is_valid_slug(slug: &str) -> bool {
    (1..=60).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A new revision id: the UTC time to the second, so ids sort by creation, then four random
/// hex digits, so two developers creating one in the same second on two branches still differ.
pub fn new_revision_id(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_date(seconds / 86_400);
    let time = seconds % 86_400;
    let random = {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the operating system's randomness for each process.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(seconds);
        hasher.finish() & 0xFFFF
    };
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}-{random:04x}",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so leap days end each 400-year era's years.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// What `migrate new` is asked for.
#[derive(Debug, Clone, Default)]
pub struct NewMigration {
    pub slug: String,
    pub message: Option<String>,
    pub parents: Vec<String>,
    pub no_transaction: bool,
}

/// Writes `<dir>/<revision>_<slug>.sql` with a complete header; returns its path.
pub fn new_migration(dir: &Path, request: &NewMigration) -> Result<PathBuf, AuthoringError> {
    if !is_valid_slug(&request.slug) {
        return Err(AuthoringError::InvalidSlug {
            slug: request.slug.clone(),
        });
    }
    let nodes = read_headers(dir)?;
    let suffix = format!("_{}.sql", request.slug);
    if let Some(existing) = nodes.iter().map(|n| &n.path).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(&suffix))
    }) {
        return Err(AuthoringError::SlugClash {
            slug: request.slug.clone(),
            existing: existing.clone(),
        });
    }
    let parents = if request.parents.is_empty() {
        let heads = heads(&nodes);
        if heads.len() > 1 {
            return Err(AuthoringError::SeveralHeads { heads });
        }
        heads
    } else {
        for parent in &request.parents {
            if !nodes.iter().any(|n| n.header.revision == *parent) {
                return Err(AuthoringError::UnknownParent {
                    revision: parent.clone(),
                });
            }
        }
        request.parents.clone()
    };
    let revision = new_revision_id(SystemTime::now());
    let message = request
        .message
        .clone()
        .unwrap_or_else(|| request.slug.replace(['_', '-'], " "));
    let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
    let mut text = render_header(&revision, &parents, &message, request.no_transaction);
    text.push('\n');
    write_new(&dir.join(format!("{revision}{suffix}")), &text)
}

/// Writes the merge migration joining every head; `None` when there is at most one head.
pub fn merge(dir: &Path, message: Option<&str>) -> Result<Option<PathBuf>, AuthoringError> {
    let nodes = read_headers(dir)?;
    let heads = heads(&nodes);
    if heads.len() < 2 {
        return Ok(None);
    }
    let ids: Vec<&str> = heads.iter().map(String::as_str).collect();
    let (revision, text) = merge_migration(&ids, message);
    write_new(&dir.join(format!("{revision}_merge.sql")), &text).map(Some)
}

/// Creates `path`, never replacing a file.
fn write_new(path: &Path, text: &str) -> Result<PathBuf, AuthoringError> {
    create_new(path, text).map_err(|e| AuthoringError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(path.to_owned())
}

/// Creates `path` with `text`, never over an existing file: a migration a command writes is
/// never one somebody already has.
pub(crate) fn create_new(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// How `migrate graph` prints the revision DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Lanes like `git log --graph`, newest at the top.
    Text,
    /// Graphviz, for `dot -Tsvg`.
    Dot,
    /// Mermaid, for Markdown renderers.
    Mermaid,
    Json,
}

/// The revisions newest first: every revision comes before its parents (ties by revision id).
fn newest_first(nodes: &[Node]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.header.revision.as_str(), i))
        .collect();
    let mut children = vec![0usize; nodes.len()];
    for node in nodes {
        for parent in node.header.parent_ids() {
            if let Some(&p) = index.get(parent) {
                children[p] += 1;
            }
        }
    }
    // Kahn's algorithm from the heads down; what a cycle leaves over goes last.
    let mut ready: BTreeSet<(String, usize)> = (0..nodes.len())
        .filter(|&i| children[i] == 0)
        .map(|i| (nodes[i].header.revision.clone(), i))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    let mut seen = vec![false; nodes.len()];
    while let Some(next) = ready.pop_last() {
        let i = next.1;
        seen[i] = true;
        order.push(i);
        for parent in nodes[i].header.parent_ids() {
            if let Some(&p) = index.get(parent) {
                children[p] = children[p].saturating_sub(1);
                if children[p] == 0 && !seen[p] {
                    ready.insert((nodes[p].header.revision.clone(), p));
                }
            }
        }
    }
    order.extend((0..nodes.len()).filter(|&i| !seen[i]));
    order
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// The revision DAG of `nodes` in `format`, heads and roots marked.
pub fn render_graph(nodes: &[Node], format: GraphFormat) -> String {
    let heads: BTreeSet<String> = heads(nodes).into_iter().collect();
    let order = newest_first(nodes);
    let label = |n: &Node| {
        let mut marks = Vec::new();
        if heads.contains(&n.header.revision) {
            marks.push("head");
        }
        if n.header.parents.is_empty() {
            marks.push("root");
        }
        if n.header.parents.len() > 1 {
            marks.push("merge");
        }
        marks
    };
    // The revision and its marks: `0004 (head, merge)`.
    let title = |n: &Node| {
        let marks = label(n);
        if marks.is_empty() {
            n.header.revision.clone()
        } else {
            format!("{} ({})", n.header.revision, marks.join(", "))
        }
    };
    match format {
        GraphFormat::Text => text_graph(nodes, &order, &label),
        GraphFormat::Dot => {
            let mut out =
                String::from("digraph migrations {\n  rankdir=BT;\n  node [shape=box];\n");
            for &i in &order {
                let n = &nodes[i];
                let mut text = dot_escape(&title(n));
                if let Some(message) = &n.header.message {
                    // `\n` is a line break inside a Graphviz label.
                    text.push_str(&format!("\\n{}", dot_escape(message)));
                }
                let style = if heads.contains(&n.header.revision) {
                    ", style=bold"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  \"{}\" [label=\"{text}\"{style}];\n",
                    dot_escape(&n.header.revision)
                ));
            }
            for &i in &order {
                for parent in nodes[i].header.parent_ids() {
                    out.push_str(&format!(
                        "  \"{}\" -> \"{}\";\n",
                        dot_escape(&nodes[i].header.revision),
                        dot_escape(parent)
                    ));
                }
            }
            out.push_str("}\n");
            out
        }
        GraphFormat::Mermaid => {
            let ids: BTreeMap<&str, usize> = order
                .iter()
                .enumerate()
                .map(|(k, &i)| (nodes[i].header.revision.as_str(), k))
                .collect();
            let mut out = String::from("graph BT\n");
            for (k, &i) in order.iter().enumerate() {
                let n = &nodes[i];
                let mut text = title(n);
                if let Some(message) = &n.header.message {
                    text.push_str(&format!(": {message}"));
                }
                out.push_str(&format!("  r{k}[\"{}\"]\n", mermaid_escape(&text)));
            }
            for (k, &i) in order.iter().enumerate() {
                for parent in nodes[i].header.parent_ids() {
                    match ids.get(parent) {
                        Some(p) => out.push_str(&format!("  r{k} --> r{p}\n")),
                        None => out.push_str(&format!(
                            "  r{k} --> missing_{}[\"{} (missing)\"]\n",
                            mermaid_escape(parent).replace('-', "_"),
                            mermaid_escape(parent)
                        )),
                    }
                }
            }
            out
        }
        GraphFormat::Json => {
            let revisions: Vec<_> = order
                .iter()
                .map(|&i| {
                    let n = &nodes[i];
                    json!({
                        "revision": n.header.revision,
                        "parents": n.header.parent_ids().collect::<Vec<_>>(),
                        "message": n.header.message,
                        "path": n.path.display().to_string(),
                        "head": heads.contains(&n.header.revision),
                        "root": n.header.parents.is_empty(),
                    })
                })
                .collect();
            let roots: Vec<&str> = order
                .iter()
                .filter(|&&i| nodes[i].header.parents.is_empty())
                .map(|&i| nodes[i].header.revision.as_str())
                .collect();
            format!(
                "{}\n",
                json!({"revisions": revisions, "heads": heads, "roots": roots})
            )
        }
    }
}

/// The leftmost empty lane, a new one at the right when none is empty.
fn free_lane(lanes: &mut Vec<Option<String>>) -> usize {
    match lanes.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            lanes.push(None);
            lanes.len() - 1
        }
    }
}

/// One line a revision, newest at the top, in lanes: `*` the revision, `|` a branch passing by,
/// `|\` a merge opening a lane for its next parent, `|/` a branch joining another.
fn text_graph(
    nodes: &[Node],
    order: &[usize],
    label: &dyn Fn(&Node) -> Vec<&'static str>,
) -> String {
    let mut lanes: Vec<Option<String>> = Vec::new();
    let mut out = String::new();
    let row = |lanes: &[Option<String>], star: Option<usize>| -> String {
        lanes
            .iter()
            .enumerate()
            .map(|(k, lane)| match (Some(k) == star, lane) {
                (true, _) => "* ",
                (false, Some(_)) => "| ",
                (false, None) => "  ",
            })
            .collect()
    };
    for &i in order {
        let n = &nodes[i];
        let revision = &n.header.revision;
        let column = match lanes.iter().position(|l| l.as_deref() == Some(revision)) {
            Some(column) => column,
            None => free_lane(&mut lanes),
        };
        lanes[column] = Some(revision.clone());
        let marks = label(n);
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        let message = n
            .header
            .message
            .as_deref()
            .map(|m| format!("  {m}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}{revision}{marks}{message}\n",
            row(&lanes, Some(column))
        ));
        // Other lanes waiting for this revision join here.
        let joining: Vec<usize> = (0..lanes.len())
            .filter(|&k| k != column && lanes[k].as_deref() == Some(revision))
            .collect();
        for &k in &joining {
            lanes[k] = None;
            out.push_str(&format!(
                "{}/\n",
                row(&lanes, None)
                    .get(..(2 * k).saturating_sub(1))
                    .unwrap_or("")
            ));
        }
        let mut parents = n.header.parent_ids();
        lanes[column] = parents.next().map(str::to_owned);
        for parent in parents {
            if lanes.iter().any(|l| l.as_deref() == Some(parent)) {
                continue;
            }
            let free = free_lane(&mut lanes);
            lanes[free] = Some(parent.to_owned());
            out.push_str(&format!(
                "{}\\\n",
                row(&lanes, None)
                    .get(..(2 * free).saturating_sub(1))
                    .unwrap_or("")
            ));
        }
        while lanes.last().is_some_and(Option::is_none) {
            lanes.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_ids_sort_by_time_and_fit_the_grammar() {
        let at = |s: u64| new_revision_id(UNIX_EPOCH + std::time::Duration::from_secs(s));
        let id = at(1_796_168_712);
        assert!(id.starts_with("20261201"), "{id}");
        assert!(
            migrate_core::analysis::header::is_valid_revision_id(&id),
            "{id}"
        );
        assert_eq!(id.len(), 19);
        assert!(at(951_782_400) < at(951_868_800), "2000-02-29 then 03-01");
        assert!(at(951_782_400).starts_with("20000229000000-"));
        assert!(at(0).starts_with("19700101000000-"));
        assert!(at(4_102_444_799).starts_with("20991231235959-"));
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert!(is_valid_slug("add_user_email"));
        assert!(is_valid_slug("v2-index"));
        for bad in ["", "Add", "a b", "a/b", "é", "../x", &"x".repeat(61)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }
}
