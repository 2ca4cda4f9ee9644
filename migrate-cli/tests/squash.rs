//! `migrate squash` on a 100-migration history: a database that ran the old history and a fresh
//! one built from the squash end with the same `pg_dump --schema-only`, and both are up to date.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{TempDir, stderr, stdout};
use pg_harness::{TestDatabase, test_database};

fn migrate(dir: &Path, args: &[&str], db: &TestDatabase) -> Output {
    common::migrate_at(dir, args, db.url())
}

/// 100 migrations in blocks of five: a table (referencing the one before), a column, an index
/// built concurrently, a comment, a view.
fn history(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for n in 1..=100 {
        let (block, step) = ((n - 1) / 5, (n - 1) % 5);
        let parents = if n == 1 {
            "none".to_owned()
        } else {
            format!("r{:03}", n - 1)
        };
        let (directive, sql) = match step {
            0 if block == 0 => (
                "",
                "CREATE TABLE t0 (id bigint PRIMARY KEY, name text NOT NULL);\n".to_owned(),
            ),
            0 => (
                "",
                format!(
                    "CREATE TABLE t{block} (id bigint PRIMARY KEY, name text NOT NULL, parent bigint REFERENCES t{} (id));\n",
                    block - 1
                ),
            ),
            1 => ("", format!("ALTER TABLE t{block} ADD COLUMN note text;\n")),
            2 => (
                "-- migrate:no-transaction\n",
                format!("CREATE INDEX CONCURRENTLY t{block}_name ON t{block} (name);\n"),
            ),
            3 => (
                "",
                format!("COMMENT ON TABLE t{block} IS 'table {block}, créée en été';\n"),
            ),
            _ => (
                "",
                format!("CREATE VIEW v{block} AS SELECT id, name, note FROM t{block};\n"),
            ),
        };
        std::fs::write(
            dir.join(format!("r{n:03}_step.sql")),
            format!("-- revision: r{n:03}\n-- parents: {parents}\n-- message: step {n}\n{directive}\n{sql}"),
        )
        .unwrap();
    }
}

fn schema_dump(db: &TestDatabase) -> String {
    let pg_dump = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| {
            versions
                .filter_map(Result::ok)
                .map(|v| v.path().join("bin/pg_dump"))
                .filter(|p| p.exists())
                .max()
        })
        .expect("pg_dump");
    let out = Command::new(pg_dump)
        .args(["--schema-only", "--no-owner", "--dbname", db.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The dump names the database it came from only in comments and `\restrict` keys.
    stdout(&out)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_squashed_history_builds_the_same_schema_and_databases_that_ran_it_stay_up_to_date() {
    let dir = TempDir::new("squash");
    let old = dir.join("old");
    history(&old);
    let check = migrate(&old, &["check"], &test_database());
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));

    // A database that ran the 100 migrations.
    let ran = test_database();
    let applied = migrate(&old, &["apply"], &ran);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));

    let new = dir.join("new");
    std::fs::create_dir_all(&new).unwrap();
    for entry in std::fs::read_dir(&old).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, new.join(path.file_name().unwrap())).unwrap();
    }
    let squashed = migrate(&new, &["squash", "--through", "r095"], &ran);
    assert_eq!(squashed.status.code(), Some(0), "{}", stderr(&squashed));
    assert!(
        stdout(&squashed).starts_with(&format!(
            "squashed 95 migrations through r095 into {}/r095_squash.sql",
            new.display()
        )),
        "{}",
        stdout(&squashed)
    );
    let mut left: Vec<String> = std::fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "r095_squash.sql",
            "r096_step.sql",
            "r097_step.sql",
            "r098_step.sql",
            "r099_step.sql",
            "r100_step.sql"
        ]
    );
    let squash = std::fs::read_to_string(new.join("r095_squash.sql")).unwrap();
    assert!(
        squash.starts_with("-- revision: r095\n-- parents: none\n-- replaces: r001, r002, "),
        "{squash}"
    );
    let check = migrate(&new, &["check"], &ran);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));

    // The database that ran the old history is up to date with the new one, and does not drift.
    let status = migrate(&new, &["status"], &ran);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let diff = migrate(&new, &["diff"], &ran);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}{}",
        stdout(&diff),
        stderr(&diff)
    );

    // A fresh database runs the squash and what follows it.
    let fresh = test_database();
    let built = migrate(&new, &["apply"], &fresh);
    assert_eq!(built.status.code(), Some(0), "{}", stderr(&built));
    assert!(
        stdout(&built).ends_with("up to date at r100 (6 applied now)\n"),
        "{}",
        stdout(&built)
    );
    let status = migrate(&new, &["status"], &fresh);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let dumped = schema_dump(&ran);
    assert!(
        dumped.contains("CREATE TABLE public.t19 ") && dumped.contains("CREATE VIEW public.v19 "),
        "{dumped}"
    );
    assert_eq!(dumped, schema_dump(&fresh));

    // The old history's last files are still what later migrations build on; a squash through a
    // revision a branch leaves from is refused.
    let again = migrate(&new, &["squash", "--through", "r095"], &ran);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        "error: `r095` has no ancestor: there is nothing to squash\n  help: squash through a later revision\n"
    );
}

fn small_history(dir: &Path, extra: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let steps = ["a", "b", "c", "d", "e"];
    for (i, step) in steps.iter().enumerate() {
        let parents = if i == 0 {
            "none".to_owned()
        } else {
            steps[i - 1].to_owned()
        };
        std::fs::write(
            dir.join(format!("{step}.sql")),
            format!(
                "-- revision: {step}\n-- parents: {parents}\n\nCREATE TABLE t_{step} (id int);\n"
            ),
        )
        .unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// A second squash keeps what the first replaced; a database that ran part of a squashed history
/// is told what to do before anything runs; a history that writes rows is not squashed.
#[test]
fn squashing_twice_a_partial_database_and_rows() {
    let dir = TempDir::new("squash-twice");
    let history = dir.join("h");
    small_history(&history, &[]);
    let old = test_database();
    assert_eq!(migrate(&history, &["apply"], &old).status.code(), Some(0));
    let partial = test_database();
    let first_two = dir.join("first-two");
    std::fs::create_dir_all(&first_two).unwrap();
    for step in ["a", "b"] {
        std::fs::copy(
            history.join(format!("{step}.sql")),
            first_two.join(format!("{step}.sql")),
        )
        .unwrap();
    }
    assert_eq!(
        migrate(&first_two, &["apply"], &partial).status.code(),
        Some(0)
    );

    let server = test_database();
    let once = migrate(&history, &["squash", "--through", "c"], &server);
    assert_eq!(once.status.code(), Some(0), "{}", stderr(&once));
    let twice = migrate(&history, &["squash", "--through", "e"], &server);
    assert_eq!(twice.status.code(), Some(0), "{}", stderr(&twice));
    let squash = std::fs::read_to_string(history.join("e_squash.sql")).unwrap();
    assert!(
        squash.starts_with("-- revision: e\n-- parents: none\n-- replaces: a, b, c, d\n"),
        "{squash}"
    );
    let status = migrate(&history, &["status"], &old);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}{}",
        stdout(&status),
        stderr(&status)
    );

    // The database that ran a and b only.
    let once_dir = dir.join("once");
    small_history(&once_dir, &[]);
    assert_eq!(
        migrate(&once_dir, &["squash", "--through", "c"], &server)
            .status
            .code(),
        Some(0)
    );
    let refused = migrate(&once_dir, &["apply"], &partial);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(
        stderr(&refused).lines().next().unwrap(),
        "error: the database ran 2 of the revisions the squash `c` replaces (a, b), and not `c` itself; the squash would create what they created again"
    );

    // Rows the history writes.
    let rows = dir.join("rows");
    small_history(&rows, &[]);
    std::fs::write(
        rows.join("b.sql"),
        "-- revision: b\n-- parents: a\n\nCREATE TABLE t_b (id int);\nINSERT INTO t_b VALUES (1);\n",
    )
    .unwrap();
    let refused = migrate(&rows, &["squash", "--through", "d"], &server);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused).replace(rows.to_str().unwrap(), "H"),
        "error: 1 statement(s) of the squashed migrations write rows, which a squash (the schema they build) does not carry; nothing was written:\n  H/b.sql:5\n  help: squash through a revision before them, or copy those rows into a migration after the squash first\n"
    );
}
