//! The shape of the library's source: module directories import each other without a circle,
//! and no file holds more than 700 lines before its tests. Read from the source tree itself, so
//! that a move that breaks either fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SOURCES: &[&str] = &[
    "migrate-core/src",
    "migrate-cli/src",
    "migrate-macros/src",
    "src",
];
const MOST_LINES_BEFORE_TESTS: usize = 700;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// A file's text before its test module: the first `#[cfg(test)]` (or `#[cfg(all(test, …))]`)
/// that stands on a `mod`.
fn before_tests(text: &str) -> &str {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let attribute = line.trim();
        let for_tests = attribute == "#[cfg(test)]" || attribute.starts_with("#[cfg(all(test,");
        let on_a_module = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("#["))
            .is_some_and(|l| {
                l.starts_with("mod ")
                    || l.starts_with("pub mod ")
                    || l.starts_with("pub(crate) mod ")
            });
        if for_tests && on_a_module {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// A line without its `//` comment; a `//` inside a string literal stays.
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '/' if !in_string && previous == '/' => return &line[..at - 1],
            _ => {}
        }
        previous = c;
    }
    line
}

#[test]
fn no_library_file_holds_more_than_700_lines_before_its_tests() {
    let mut long = Vec::new();
    for source in SOURCES {
        let mut files = Vec::new();
        rust_files(&root().join(source), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = before_tests(&text).lines().count();
            if lines > MOST_LINES_BEFORE_TESTS {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these along their seams: {long:#?}");
}

/// The file a path from the crate's root lands in: the deepest module it names that is a file
/// (`a/b.rs`), else the directory's `mod.rs` (`lib.rs` at the root). Items re-exported by a
/// module's face count as the face's.
fn file_of_path(src: &Path, segments: &[&str]) -> PathBuf {
    let mut dir = src.to_owned();
    for segment in segments {
        if dir.join(segment).is_dir() {
            dir = dir.join(segment);
        } else if dir.join(format!("{segment}.rs")).is_file() {
            return dir.join(format!("{segment}.rs"));
        } else {
            break;
        }
    }
    if dir == src {
        dir.join("lib.rs")
    } else {
        dir.join("mod.rs")
    }
}

/// The module path of a file, from the crate's root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut segments: Vec<String> = relative
        .iter()
        .map(|s| s.to_str().unwrap().to_owned())
        .collect();
    if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
        segments.pop();
    }
    segments
}

/// Every path in `text` that starts at the crate's root (`crate::…`) or above the module
/// (`super::…`), as its segments from the crate's root.
fn paths_from_root(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (start, up) in [("crate::", None), ("super::", Some(()))] {
        let mut rest = text;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at + start.len()..];
            // `$crate::`, `super::super::` (read from its first `super`) and identifiers that
            // end in the word are not a path's start.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut written: Vec<&str> =
                rest[..end].split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = match up {
                None => Vec::new(),
                Some(()) => module[..module.len().saturating_sub(1)].to_vec(),
            };
            while written.first() == Some(&"super") {
                written.remove(0);
                base.pop();
            }
            base.extend(written.into_iter().map(str::to_owned));
            paths.push(base);
        }
    }
    paths
}

/// The paths a `use` tree names, one per leaf: `crate::{a::b, c::{self, d as e}}` gives
/// `crate::a::b`, `crate::c` and `crate::c::d`.
fn use_tree_paths(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        let path = path.strip_suffix("::self").unwrap_or(path);
        return vec![path.replace(' ', "")];
    };
    let prefix = tree[..open].replace(' ', "");
    let close = tree
        .rfind('}')
        .filter(|close| *close > open)
        .unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    // The group's items, split at the commas outside nested braces.
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(use_tree_paths)
        .map(|path| {
            if path == "self" {
                prefix.trim_end_matches("::").to_owned()
            } else {
                format!("{prefix}{path}")
            }
        })
        .collect()
}

/// `code` with each `use` statement (one that starts a line) replaced by the paths it names, one
/// per line.
fn uses_expanded(code: &str) -> String {
    let mut out = String::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let after_pub = trimmed
            .strip_prefix("pub ")
            .or_else(|| trimmed.strip_prefix("pub(crate) "))
            .or_else(|| trimmed.strip_prefix("pub(super) "))
            .unwrap_or(trimmed);
        let Some(tree) = after_pub.strip_prefix("use ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let mut statement = tree.to_owned();
        while !statement.contains(';') {
            match lines.next() {
                Some(next) => statement.push_str(next),
                None => break,
            }
        }
        let tree = statement.split(';').next().unwrap_or_default();
        for path in use_tree_paths(tree) {
            out.push_str(&path);
            out.push('\n');
        }
    }
    out
}

/// The circles of a graph, each as the rooms on it (found by a depth-first search).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        room: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|r| r == room) {
            found.push(path[at..].to_vec());
            return;
        }
        if done.contains(room) {
            return;
        }
        path.push(room.to_owned());
        for next in edges.get(room).into_iter().flatten() {
            visit(next, edges, path, done, found);
        }
        path.pop();
        done.insert(room.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for room in edges.keys() {
        visit(room, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// The import graph of one crate's files: an edge for every path from its root or its parent
/// that lands in another file, except between a module and its own parent or children (a
/// `mod.rs` and the files it declares are one unit, as a module's face re-exports them).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let name = |file: &Path| file.strip_prefix(src).unwrap().display().to_string();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Code only: a doc comment's link is no import.
        let code: String = before_tests(&text)
            .lines()
            .map(without_comment)
            .collect::<Vec<_>>()
            .join("\n");
        for path in paths_from_root(&uses_expanded(&code), &module) {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let to = file_of_path(src, &segments);
            let target = module_of(src, &to);
            let related = target.len() + 1 == module.len() && module.starts_with(&target)
                || module.len() + 1 == target.len() && target.starts_with(&module);
            if to != *file && !related {
                edges.entry(name(file)).or_default().insert(name(&to));
            }
        }
    }
    edges
}

#[test]
fn modules_import_each_other_without_a_circle() {
    for source in ["migrate-core/src", "migrate-cli/src"] {
        let edges = import_graph(&root().join(source));
        let graph: Vec<String> = edges
            .iter()
            .map(|(from, to)| {
                format!(
                    "{from} -> {}",
                    to.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        println!("{source}:\n{}", graph.join("\n"));
        assert!(
            edges.len() > 5,
            "the graph of {source} was not read: {graph:#?}"
        );
        let found = circles(&edges);
        assert!(
            found.is_empty(),
            "import circles in {source}: {found:?}\n{}",
            graph.join("\n")
        );
    }
}

/// A circle through another module's face, one hidden behind a `//` in a string, and one through
/// grouped imports are found.
#[test]
fn planted_circles_are_found() {
    let src = std::env::temp_dir().join(format!("layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&src);
    let plant = |file: &str, text: &str| {
        let path = src.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    plant("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\nmod e;\n");
    plant("a/mod.rs", "mod inner;\npub fn f() { crate::b::g() }\n");
    plant("a/inner.rs", "pub fn i() {}\n");
    plant(
        "b.rs",
        "pub fn g() { let _url = \"http://x\"; crate::a::f() }\n",
    );
    plant("c.rs", "use crate::{d::D};\npub struct C;\n");
    plant(
        "d.rs",
        "#[cfg(test)]\nuse std::fmt as _f;\nuse crate::c::C;\npub struct D;\n",
    );
    plant(
        "e.rs",
        "#[cfg(all(test, feature = \"x\"))]\nmod tests {\n    use crate::a::f;\n}\n",
    );
    let found = circles(&import_graph(&src));
    let _ = std::fs::remove_dir_all(&src);
    assert_eq!(
        found,
        [
            vec!["a/mod.rs".to_owned(), "b.rs".into()],
            vec!["c.rs".to_owned(), "d.rs".into()]
        ]
    );
}

/// Grouped and nested imports count, leaf by leaf.
#[test]
fn use_trees_are_read_leaf_by_leaf() {
    assert_eq!(
        use_tree_paths("crate::{a::b, c::{self, d as e}, f}"),
        ["crate::a::b", "crate::c", "crate::c::d", "crate::f"]
    );
    assert_eq!(use_tree_paths("super::x::Y as Z"), ["super::x::Y"]);
    let code = "pub(crate) use crate::{lint::{a, b}, runtime::c};\nfn f() { reuse(); }";
    let read = paths_from_root(&uses_expanded(code), &[]);
    assert_eq!(
        read,
        [vec!["lint", "a"], vec!["lint", "b"], vec!["runtime", "c"]]
    );
}

/// The circle search finds a circle where there is one.
#[test]
fn the_circle_search_finds_a_planted_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("d".into());
    assert_eq!(
        circles(&edges),
        [vec!["a".to_owned(), "b".into(), "c".into()]]
    );
    edges.get_mut("c").unwrap().remove("a");
    assert!(circles(&edges).is_empty());
}
