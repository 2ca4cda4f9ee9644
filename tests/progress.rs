//! A long `CREATE INDEX CONCURRENTLY` (2 million rows) reports its progress while it runs: lines
//! in the log with a rising share done, read from `pg_stat_progress_create_index` on a connection
//! of the watcher's own; a `VACUUM FULL` of the table from `pg_stat_progress_cluster`.

mod common;

use pg_harness::test_database;

#[test]
fn a_long_index_build_logs_a_rising_share_done() {
    let db = test_database();
    db.client()
        .batch_execute(
            "CREATE TABLE big (id bigint, v text); \
             INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 2000000) g",
        )
        .unwrap();
    let dir = std::env::temp_dir().join(format!("migrate-progress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_index.sql"),
        "-- revision: 0001\n-- parents: none\n-- migrate:no-transaction\n\nCREATE INDEX CONCURRENTLY big_v ON big (v);\n",
    )
    .unwrap();
    // A table rewritten: CLUSTER / VACUUM FULL report through pg_stat_progress_cluster.
    std::fs::write(
        dir.join("0002_rewrite.sql"),
        "-- revision: 0002\n-- parents: 0001\n-- migrate:no-transaction\n\nVACUUM FULL big;\n",
    )
    .unwrap();
    let out = common::run_host(
        db.url(),
        "dir",
        &[
            ("MIGRATE_TEST_DIR", dir.to_str().unwrap()),
            ("MIGRATE_PROGRESS_AFTER", "100ms"),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("0001 statement 1 (") && l.contains(" running for "))
        .collect();
    // Each reading: its phase, and the share of that phase done.
    let readings: Vec<(&str, f64)> = lines
        .iter()
        .filter_map(|l| {
            let phase = l.split(" s: ").nth(1)?.split(", blocks").next()?;
            let share = l.rsplit_once(" (")?.1.strip_suffix(" %)")?.parse().ok()?;
            Some((phase, share))
        })
        .collect();
    println!("{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains(": building index")),
        "{log}"
    );
    assert!(readings.len() >= 2, "{log}");
    assert!(
        readings
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[1].1 > w[0].1),
        "no share rising within a phase: {readings:?}\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("0002 statement 1 (")
            && l.contains(" running for ")
            && l.contains(": seq scanning heap")),
        "{log}"
    );
}
