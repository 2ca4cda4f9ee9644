//! Bad input never panics or hangs the analysis: random bytes, random graphs, garbage
//! directories, unterminated constructs, overlong ids and a directory of 10,000 files.

use std::path::PathBuf;
use std::time::Instant;

use migrate_core::analysis::check::{Analysis, analyze_dir};
use migrate_core::analysis::graph::{GraphNode, check_graph};
use migrate_core::analysis::header::parse_header;
use migrate_core::analysis::source::normalize;
use migrate_core::analysis::statements::split_statements;
use proptest::prelude::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("migrate-robustness-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(name), bytes).unwrap();
    }
    fn analyze(&self) -> Analysis {
        analyze_dir(&self.0, "migrations")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn analyze_text(bytes: &[u8]) {
    if let Ok(text) = normalize("a.sql", bytes) {
        let _ = parse_header("a.sql", &text.text);
        let _ = split_statements("a.sql", &text.text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        analyze_text(&bytes);
    }

    #[test]
    fn sql_like_text_never_panics(text in "(-- (revision|parents|message|migrate:[a-z-]+)?:? ?[a-z0-9, ]{0,12}\n){0,4}([A-Za-z_ ();,'\"$*/\n-]|\\$\\$|/\\*|\\*/|--|E'|U&'){0,80}") {
        analyze_text(text.as_bytes());
    }

    #[test]
    fn french_german_cjk_and_emoji_with_trailing_whitespace_never_panic(
        message in "(Créer la table|Größe ändern|添加用户表|🚀 première migration|[ -~]|é|\u{a0}|\t|\r){0,8}",
        trailing in "[ \t\u{a0}\r]{0,4}",
    ) {
        let text = format!(
            "-- revision: r1{trailing}\n-- parents: none{trailing}\n-- message: {message}{trailing}\n-- migrate:lock-timeout {message}{trailing}\n-- {message}{trailing}\nCOMMENT ON TABLE t IS '{}';{trailing}\n",
            message.replace('\'', "''")
        );
        analyze_text(text.as_bytes());
        let dir = TempDir::new("world");
        dir.write("r1_world.sql", text.as_bytes());
        let _ = dir.analyze();
    }

    #[test]
    fn random_graphs_never_panic_and_order_is_topological(
        edges in proptest::collection::vec(proptest::collection::vec(0usize..14, 0..3), 1..12)
    ) {
        // Node i names parents from 0..14: some point forward (cycles), past the end (dangling),
        // or nowhere (extra roots).
        let headers: Vec<_> = edges.iter().enumerate().map(|(i, parents)| {
            let parents = if parents.is_empty() { "none".to_owned() } else {
                let mut p: Vec<String> = parents.iter().map(|p| format!("r{p}")).collect();
                p.sort(); p.dedup(); p.join(", ")
            };
            parse_header("x", &format!("-- revision: r{i}\n-- parents: {parents}\n")).unwrap()
        }).collect();
        let paths: Vec<String> = (0..headers.len()).map(|i| format!("m/{i}.sql")).collect();
        let nodes: Vec<GraphNode> = headers.iter().zip(&paths).map(|(header, path)| GraphNode { path, header }).collect();
        if let Ok(order) = check_graph("m", &nodes) {
            prop_assert_eq!(order.len(), nodes.len());
            let position: Vec<usize> = {
                let mut pos = vec![0; nodes.len()];
                for (at, &i) in order.iter().enumerate() { pos[i] = at; }
                pos
            };
            for (i, header) in headers.iter().enumerate() {
                for parent in header.parent_ids() {
                    let p: usize = parent[1..].parse().unwrap();
                    prop_assert!(position[p] < position[i]);
                }
            }
        }
    }
}

#[test]
fn a_directory_of_garbage_is_a_list_of_clean_errors() {
    let dir = TempDir::new("garbage");
    dir.write("0001_binary.sql", &[0, 159, 146, 150, 0xff, 0xfe, 7, 0]);
    dir.write(
        "0002_noise.sql",
        b"\x1b[31m lorem ipsum ;;; ))) ((( $$ \\\\ ",
    );
    dir.write(
        "0003_string.sql",
        b"-- revision: s\n-- parents: none\nSELECT 'never closed;\n",
    );
    dir.write(
        "0004_comment.sql",
        b"-- revision: c\n-- parents: s\nSELECT 1; /* never closed\n",
    );
    dir.write(
        "0005_dollar.sql",
        b"-- revision: d\n-- parents: c\nDO $body$ BEGIN PERFORM 1; END\n",
    );
    dir.write(
        "0006_ident.sql",
        b"-- revision: i\n-- parents: d\nSELECT \"never closed;\n",
    );
    dir.write(
        &format!("0007_{}.sql", "x".repeat(200)),
        format!("-- revision: {}\n-- parents: i\n", "y".repeat(200)).as_bytes(),
    );
    dir.write("notes.txt", b"not a migration");
    let analysis = dir.analyze();
    assert!(analysis.migrations.is_empty());
    let checks: Vec<&str> = analysis.diagnostics.iter().map(|d| d.check.id()).collect();
    assert!(checks.contains(&"non-utf8-file"), "{checks:?}");
    assert!(checks.contains(&"missing-header"), "{checks:?}");
    assert!(checks.contains(&"syntax-error"), "{checks:?}");
    assert!(checks.contains(&"invalid-revision-id"), "{checks:?}");
    for d in &analysis.diagnostics {
        let text = d.to_string();
        assert!(
            text.starts_with("migrations/0"),
            "every finding names its file: {text}"
        );
        assert!(
            text.contains("= help:"),
            "every finding says what to do: {text}"
        );
    }
    // Each unterminated construct is reported in its own file.
    for file in [
        "0003_string.sql",
        "0004_comment.sql",
        "0005_dollar.sql",
        "0006_ident.sql",
    ] {
        assert!(
            analysis
                .diagnostics
                .iter()
                .any(|d| d.check == "syntax-error"
                    && d.location.as_ref().is_some_and(|l| l.path.ends_with(file))),
            "no syntax error for {file}: {:#?}",
            analysis.diagnostics
        );
    }
}

#[test]
fn ten_thousand_files_analyse_in_bounded_time() {
    let dir = TempDir::new("many");
    dir.write(
        "00000_root.sql",
        b"-- revision: r00000\n-- parents: none\nCREATE TABLE t0 (id int);\n",
    );
    for i in 1..10_000 {
        dir.write(
            &format!("{i:05}_step.sql"),
            format!(
                "-- revision: r{i:05}\n-- parents: r{:05}\nALTER TABLE t0 ADD COLUMN c{i} int;\n",
                i - 1
            )
            .as_bytes(),
        );
    }
    let started = Instant::now();
    let analysis = dir.analyze();
    let elapsed = started.elapsed();
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics.first());
    assert_eq!(analysis.migrations.len(), 10_000);
    assert_eq!(analysis.migrations[9_999].header.revision, "r09999");
    // Not a benchmark: a hang guard, far above the few seconds this takes.
    assert!(
        elapsed.as_secs() < 120,
        "analysis of 10,000 files took {elapsed:?}"
    );

    // A broken file among them is found, and the others do not drown it.
    dir.write(
        "05000_step.sql",
        b"-- revision: r05000\n-- parents: r04999\nALTER TABLE t0 ADD COLUMN;\n",
    );
    let analysis = dir.analyze();
    assert_eq!(analysis.diagnostics.len(), 1, "{:?}", analysis.diagnostics);
    assert!(
        analysis.diagnostics[0]
            .to_string()
            .starts_with("migrations/05000_step.sql:3:")
    );
}

#[test]
fn an_empty_and_a_missing_directory_are_errors() {
    let dir = TempDir::new("empty");
    let analysis = dir.analyze();
    assert_eq!(analysis.diagnostics[0].check, "empty-directory");
    let analysis = analyze_dir(&dir.0.join("nope"), "nope");
    assert_eq!(analysis.diagnostics[0].check, "missing-directory");
}

#[test]
fn only_transactional_migrations_on_new_tables_are_self_contained() {
    let dir = TempDir::new("self-contained");
    dir.write(
        "0001_a.sql",
        b"-- revision: 0001\n-- parents: none\nCREATE TABLE a (id bigint PRIMARY KEY);\n",
    );
    dir.write("0002_b.sql", b"-- revision: 0002\n-- parents: 0001\n-- migrate:no-transaction\nCREATE TABLE b (id bigint PRIMARY KEY);\n");
    dir.write(
        "0003_c.sql",
        b"-- revision: 0003\n-- parents: 0002\nALTER TABLE a ADD COLUMN note text;\n",
    );
    dir.write("0004_d.sql", b"-- revision: 0004\n-- parents: 0003\nCREATE TABLE d (id bigint PRIMARY KEY, a_id bigint);\nCREATE INDEX d_a ON d (a_id);\n");
    let analysis = dir.analyze();
    assert!(
        analysis.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        analysis.diagnostics
    );
    let judged: Vec<(&str, bool)> = analysis
        .migrations
        .iter()
        .map(|m| (m.header.revision.as_str(), m.self_contained))
        .collect();
    assert_eq!(
        judged,
        [
            ("0001", true),
            ("0002", false),
            ("0003", false),
            ("0004", true)
        ]
    );
}

/// A parent listed twice is its file's error; the graph's own errors beside it (here two roots,
/// and so two heads) are still reported, since the file's parents are known exactly.
#[test]
fn a_parent_listed_twice_hides_no_graph_error() {
    let dir = TempDir::new("parent-twice");
    dir.write("a.sql", b"-- revision: a\n-- parents: none\nSELECT 1;\n");
    dir.write("b.sql", b"-- revision: b\n-- parents: none\nSELECT 1;\n");
    dir.write("c.sql", b"-- revision: c\n-- parents: a, a\nSELECT 1;\n");
    let analysis = dir.analyze();
    let checks: Vec<&str> = analysis.diagnostics.iter().map(|d| d.check.id()).collect();
    assert_eq!(
        checks,
        ["invalid-header", "multiple-roots", "multiple-heads"],
        "{:?}",
        analysis.diagnostics
    );
    // An id that cannot be read takes its file out of the graph, and with it the findings that
    // file's absence could cause (a dangling child, extra heads), but not two roots.
    dir.write("c.sql", b"-- revision: c\n-- parents: a, b@d\nSELECT 1;\n");
    let checks: Vec<&str> = dir
        .analyze()
        .diagnostics
        .iter()
        .map(|d| d.check.id())
        .collect();
    assert_eq!(checks, ["invalid-revision-id", "multiple-roots"]);
}
