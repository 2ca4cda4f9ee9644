//! Fuzz targets for the analysis, as property tests with large case counts (`cargo fuzz` needs a
//! nightly toolchain). Ignored in the normal test run; `scripts/fuzz` runs them for a bounded
//! time with PROPTEST_CASES set. Each target must never panic, whatever the input.

use migrate_core::analysis::graph::{GraphNode, check_graph};
use migrate_core::analysis::header::parse_header;
use migrate_core::analysis::source::normalize;
use migrate_core::analysis::statements::split_statements;
use migrate_core::analysis::{AnalyzedMigration, analyze_text};
use migrate_core::lint::{LintConfig, lint_migrations};
use proptest::prelude::*;

/// Statement fragments the lint walker knows, and broken pieces of them.
const FRAGMENTS: &[&str] = &[
    "CREATE TABLE t (id int PRIMARY KEY, a int, b text)",
    "CREATE TABLE u (id int REFERENCES t (id))",
    "CREATE INDEX i ON t (a)",
    "CREATE INDEX CONCURRENTLY i2 ON t (b)",
    "DROP INDEX i",
    "DROP INDEX CONCURRENTLY IF EXISTS i2",
    "ALTER TABLE t ADD COLUMN c int NOT NULL",
    "ALTER TABLE t ADD COLUMN d uuid DEFAULT gen_random_uuid()",
    "ALTER TABLE t ALTER COLUMN a TYPE bigint",
    "ALTER TABLE t ALTER COLUMN b SET NOT NULL",
    "ALTER TABLE t ADD CONSTRAINT c1 CHECK (a > 0) NOT VALID",
    "ALTER TABLE t VALIDATE CONSTRAINT c1",
    "ALTER TABLE u ADD CONSTRAINT f1 FOREIGN KEY (id) REFERENCES t (id)",
    "ALTER TABLE u DROP CONSTRAINT f1",
    "ALTER TABLE t RENAME COLUMN a TO z",
    "ALTER TABLE t RENAME TO t2",
    "DROP TABLE t CASCADE",
    "UPDATE t SET a = 1",
    "INSERT INTO u SELECT id FROM t",
    "DO $$ BEGIN PERFORM 1; END $$",
    "VACUUM FULL t",
    "REINDEX TABLE t",
    "BEGIN",
    "COMMIT",
    "-- migrate:allow ban-drop-table: reason\nDROP TABLE u",
    "-- migrate:allow nothing\nSELECT 1",
    "ALTER TABLE",
    "CREATE INDEX ON",
    "SELECT 'unterminated",
    "$$",
];

/// Text our users write: accents, German, CJK, emoji, NBSP, tabs, CR and trailing whitespace.
pub const WORLD_TEXT: &str = "([ -~]|é|è|à|ç|ß|ö|Ä|ü|œ|→|—|‘|’|«|»|添|加|用|户|表|🚀|😀|👍🏽|\u{a0}|\u{2009}|\u{feff}|\t|\r| ){0,40}";

/// One header line: a key or directive (or none), then world text.
const HEADER_LINE: &str = "[ \t\u{a0}]{0,2}-- ?(revision|parents|message|migrate:[a-z-]{0,20}|migrate:allow [a-z-]{0,20}|[a-zé]{1,8})?:? ?([ -~]|é|ß|添|🚀|\u{a0}|\t|\r){0,40}";

fn migration(i: usize, body: &str, no_transaction: bool) -> Option<AnalyzedMigration> {
    let parents = if i == 0 {
        "none".to_owned()
    } else {
        format!("r{}", i - 1)
    };
    let directive = if no_transaction {
        "-- migrate:no-transaction\n"
    } else {
        ""
    };
    analyze_text(
        &format!("m/{i}.sql"),
        &format!("-- revision: r{i}\n-- parents: {parents}\n{directive}{body}\n"),
    )
    .ok()
}

proptest! {
    #[test]
    #[ignore]
    fn fuzz_header_and_statements(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(text) = normalize("a.sql", &bytes) {
            let _ = parse_header("a.sql", &text.text);
            let _ = split_statements("a.sql", &text.text);
        }
    }

    #[test]
    #[ignore]
    fn fuzz_header_lines(lines in proptest::collection::vec(HEADER_LINE, 0..12)) {
        let _ = parse_header("a.sql", &lines.join("\n"));
    }

    #[test]
    #[ignore]
    fn fuzz_world_text_in_headers_and_sql(
        message in WORLD_TEXT,
        comment in WORLD_TEXT,
        literal in WORLD_TEXT,
        trailing in "[ \t\u{a0}\r]{0,4}",
        picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..6),
    ) {
        let body: Vec<&str> = picks.iter().map(|&p| FRAGMENTS[p]).collect();
        let literal = literal.replace('\'', "''");
        let text = format!(
            "-- revision: r0{trailing}\n-- parents: none{trailing}\n-- message: {message}{trailing}\n-- {comment}{trailing}\n{};{trailing}\nCOMMENT ON TABLE t IS '{literal}';{trailing}\n-- {comment}\n",
            body.join(";\n")
        );
        if let Ok(normalized) = normalize("m/0.sql", text.as_bytes())
            && let Ok(migration) = analyze_text("m/0.sql", &normalized.text)
        {
            let _ = lint_migrations(&[migration], &LintConfig::default());
        }
        let _ = parse_header("m/0.sql", &format!("-- revision: {message}{trailing}\n-- parents: {comment}{trailing}\n-- migrate:{literal}{trailing}\n"));
    }

    #[test]
    #[ignore]
    fn fuzz_graph(edges in proptest::collection::vec(proptest::collection::vec(0usize..40, 0..4), 1..40)) {
        let headers: Vec<_> = edges.iter().enumerate().filter_map(|(i, parents)| {
            let mut p: Vec<String> = parents.iter().map(|p| format!("r{p}")).collect();
            p.sort();
            p.dedup();
            let parents = if p.is_empty() { "none".to_owned() } else { p.join(", ") };
            parse_header("x", &format!("-- revision: r{}\n-- parents: {parents}\n", i % 37)).ok()
        }).collect();
        let paths: Vec<String> = (0..headers.len()).map(|i| format!("m/{i}.sql")).collect();
        let nodes: Vec<GraphNode> = headers.iter().zip(&paths).map(|(header, path)| GraphNode { path, header }).collect();
        let _ = check_graph("m", &nodes);
    }

    #[test]
    #[ignore]
    fn fuzz_lint_walker(
        files in proptest::collection::vec((proptest::collection::vec(0..FRAGMENTS.len(), 0..8), any::<bool>()), 1..6),
        target in 10u32..=18,
    ) {
        let migrations: Vec<AnalyzedMigration> = files
            .iter()
            .enumerate()
            .filter_map(|(i, (picks, no_tx))| {
                let body: Vec<&str> = picks.iter().map(|&p| FRAGMENTS[p]).collect();
                migration(i, &(body.join(";\n") + ";"), *no_tx)
            })
            .collect();
        let config = LintConfig { target_version: target, ..LintConfig::default() };
        let _ = lint_migrations(&migrations, &config);
    }
}
