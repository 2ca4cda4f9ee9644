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

/// A transactional migration is watched too: its backend is the one holding the migration lock,
/// its running statement the one whose text the server shows, and a lock wait names the session
/// it waits for.
#[test]
fn a_transaction_waiting_for_a_lock_names_its_statement_and_the_blocking_session() {
    let db = test_database();
    db.client()
        .batch_execute("CREATE TABLE accounts (id bigint); INSERT INTO accounts VALUES (1)")
        .unwrap();
    let dir = std::env::temp_dir().join(format!("migrate-progress-tx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_remarque.sql"),
        "-- revision: 0001\n-- parents: none\n-- migrate:lock-timeout 20s\n\nCREATE TABLE audit (id bigint);\n\nALTER TABLE accounts ADD COLUMN remarque text;\n",
    )
    .unwrap();
    // A live session reads the table in an open transaction: the ALTER waits behind it.
    let mut traffic = db.client();
    for step in [
        "SET application_name = 'live traffic'",
        "BEGIN",
        "SELECT count(*) FROM accounts",
    ] {
        traffic.batch_execute(step).unwrap();
    }
    let host = {
        let url = db.url().to_owned();
        let dir = dir.clone();
        std::thread::spawn(move || {
            common::run_host(
                &url,
                "dir",
                &[
                    ("MIGRATE_TEST_DIR", dir.to_str().unwrap()),
                    ("MIGRATE_PROGRESS_AFTER", "100ms"),
                ],
            )
        })
    };
    let mut observer = db.client();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the ALTER waits for the lock",
        || {
            !common::values(
            &mut observer,
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE accounts%' AND datname = current_database()",
        )
        .is_empty()
        },
    );
    // A few readings while it waits, then the live session ends.
    std::thread::sleep(std::time::Duration::from_millis(600));
    traffic.batch_execute("COMMIT").unwrap();
    let out = host.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let waiting: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" running for "))
        .collect();
    assert!(!waiting.is_empty(), "{log}");
    for line in &waiting {
        assert!(
            line.contains("0001 statement 2 (") && line.contains("0001_remarque.sql:7)"),
            "{line}"
        );
        assert!(
            line.contains("; waiting for pid ")
                && line.contains(" (live traffic): SELECT count(*) FROM accounts"),
            "{line}"
        );
    }
}

/// A transaction's statements are timed one by one, as the server counts them: fifteen
/// statements of 0.2 s make a transaction of 3 s, and no statement runs past 1 s.
#[test]
fn a_long_transaction_of_short_statements_reports_nothing() {
    let db = test_database();
    let dir = std::env::temp_dir().join(format!("migrate-progress-short-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sleeps = "SELECT pg_sleep(0.2);\n".repeat(15);
    std::fs::write(
        dir.join("0001_sleeps.sql"),
        format!("-- revision: 0001\n-- parents: none\n\n{sleeps}"),
    )
    .unwrap();
    let out = common::run_host(
        db.url(),
        "dir",
        &[
            ("MIGRATE_TEST_DIR", dir.to_str().unwrap()),
            ("MIGRATE_PROGRESS_AFTER", "1s"),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(!log.contains(" running for "), "{log}");
}

/// Two statements the server shows the same beginning of (it keeps 1023 bytes of a text by
/// default): the second is named as the second, from when it started.
#[test]
fn statements_with_the_same_visible_beginning_are_told_apart() {
    let db = test_database();
    let dir = std::env::temp_dir().join(format!("migrate-progress-same-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let alias = "ü".repeat(30) + &"x".repeat(1100);
    std::fs::write(
        dir.join("0001_twins.sql"),
        format!(
            "-- revision: 0001\n-- parents: none\n\nSELECT pg_sleep(1.5) AS \"{alias}\", 1;\n\nSELECT pg_sleep(1.5) AS \"{alias}\", 2;\n"
        ),
    )
    .unwrap();
    let out = common::run_host(
        db.url(),
        "dir",
        &[
            ("MIGRATE_TEST_DIR", dir.to_str().unwrap()),
            ("MIGRATE_PROGRESS_AFTER", "500ms"),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let named: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" running for "))
        .filter_map(|l| l.split(" (").next())
        .collect();
    assert!(named.contains(&"INFO 0001 statement 1"), "{log}");
    assert!(named.contains(&"INFO 0001 statement 2"), "{log}");
    // Once the second started, the first is never named again.
    let second = named
        .iter()
        .position(|n| n.ends_with("statement 2"))
        .unwrap();
    assert!(
        named[second..].iter().all(|n| n.ends_with("statement 2")),
        "{named:?}"
    );
}
