//! `migrate import` on a real server, for each tool: the tool's own layout and history table (as
//! the tool's source creates and fills it) after the tool applied the first 2 of 7 migrations;
//! `import --stamp` records exactly those 2, `status` shows 5 pending, `apply` applies them, and
//! `diff` finds no drift. Then what is refused, with its exact text.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, stderr, stdout};
use pg_harness::{TestDatabase, test_database};

/// The 7 migrations every tool's directory holds: (name, up SQL, down SQL, runs outside a
/// transaction).
const STEPS: [(&str, &str, &str, bool); 7] = [
    (
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n",
        "DROP TABLE users;\n",
        false,
    ),
    (
        "create_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), body text);\n",
        "DROP TABLE posts;\n",
        false,
    ),
    (
        "add_email",
        "ALTER TABLE users ADD COLUMN email text;\n",
        "ALTER TABLE users DROP COLUMN email;\n",
        false,
    ),
    (
        "index_posts",
        "CREATE INDEX CONCURRENTLY posts_user_id ON posts (user_id);\n",
        "DROP INDEX posts_user_id;\n",
        true,
    ),
    (
        "créer_étiquettes",
        "CREATE TABLE tags (id bigint PRIMARY KEY, label text);\n",
        "DROP TABLE tags;\n",
        false,
    ),
    (
        "publish",
        "ALTER TABLE posts ADD COLUMN published_at timestamptz;\n",
        "ALTER TABLE posts DROP COLUMN published_at;\n",
        false,
    ),
    (
        "published_view",
        "CREATE VIEW published AS SELECT id, body FROM posts WHERE published_at IS NOT NULL;\n",
        "DROP VIEW published;\n",
        false,
    ),
];

const APPLIED: usize = 2;

fn migrate(dir: &Path, args: &[&str], db: &TestDatabase) -> Output {
    common::migrate_at(dir, args, db.url())
}

fn write(path: PathBuf, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A tool: how it lays out step `i`, the history table it creates, and the rows it writes once it
/// applied the first `APPLIED` steps.
struct Layout {
    tool: &'static str,
    lay_out: fn(&Path, usize),
    history: &'static str,
}

fn version(i: usize) -> String {
    format!("2024010112{:04}", i + 1)
}

const LAYOUTS: &[Layout] = &[
    Layout {
        tool: "diesel",
        lay_out: |dir, i| {
            let (name, up, down, no_tx) = STEPS[i];
            // diesel 2 writes the version with dashes; both forms are read.
            let written = if i % 2 == 0 { format!("2024-01-01-12{:04}", i + 1) } else { version(i) };
            let migration = dir.join(format!("{written}_{name}"));
            write(migration.join("up.sql"), up);
            write(migration.join("down.sql"), down);
            if no_tx {
                write(migration.join("metadata.toml"), "run_in_transaction = false\n");
            }
        },
        history: "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                  INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101120001'), ('20240101120002');",
    },
    Layout {
        tool: "sqlx",
        lay_out: |dir, i| {
            let (name, up, down, no_tx) = STEPS[i];
            let marker = if no_tx { "-- no-transaction\n" } else { "" };
            write(dir.join(format!("{}_{name}.up.sql", version(i))), &format!("{marker}{up}"));
            write(dir.join(format!("{}_{name}.down.sql", version(i))), down);
        },
        history: "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
                  INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101120001, 'create users', true, '\\x00', 1), (20240101120002, 'create posts', true, '\\x00', 1);",
    },
    Layout {
        tool: "refinery",
        lay_out: |dir, i| {
            let (name, up, _, _) = STEPS[i];
            // refinery has no marker: it runs each migration in a transaction.
            let up = up.replace("CONCURRENTLY ", "");
            write(dir.join(format!("V{}__{}.sql", i + 1, name.replace(['é'], "e"))), &up);
        },
        history: "CREATE TABLE IF NOT EXISTS refinery_schema_history (version int4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));
                  INSERT INTO refinery_schema_history VALUES (1, 'create_users', '2024-01-01T12:00:00Z', '1'), (2, 'create_posts', '2024-01-01T12:00:01Z', '2');",
    },
    Layout {
        tool: "golang-migrate",
        lay_out: |dir, i| {
            let (name, up, down, _) = STEPS[i];
            let up = up.replace("CONCURRENTLY ", "");
            write(dir.join(format!("{:06}_{name}.up.sql", i + 1)), &up);
            write(dir.join(format!("{:06}_{name}.down.sql", i + 1)), down);
        },
        history: "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
                  INSERT INTO schema_migrations VALUES (2, false);",
    },
    Layout {
        tool: "goose",
        lay_out: |dir, i| {
            let (name, up, down, no_tx) = STEPS[i];
            let marker = if no_tx { "-- +goose NO TRANSACTION\n" } else { "" };
            write(
                dir.join(format!("{:05}_{name}.sql", i + 1)),
                &format!("{marker}-- +goose Up\n-- +goose StatementBegin\n{up}-- +goose StatementEnd\n\n-- +goose Down\n{down}"),
            );
        },
        // Version 3 was applied, then rolled back: its last row says so.
        history: "CREATE TABLE IF NOT EXISTS goose_db_version (id serial NOT NULL, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id));
                  INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true), (3, true), (3, false);",
    },
    Layout {
        tool: "dbmate",
        lay_out: |dir, i| {
            let (name, up, down, no_tx) = STEPS[i];
            let option = if no_tx { " transaction:false" } else { "" };
            write(
                dir.join(format!("{}_{name}.sql", version(i))),
                &format!("-- migrate:up{option}\n{up}\n-- migrate:down\n{down}"),
            );
        },
        history: "CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);
                  INSERT INTO schema_migrations VALUES ('20240101120001'), ('20240101120002');",
    },
    Layout {
        tool: "flyway",
        lay_out: |dir, i| {
            let (name, up, _, no_tx) = STEPS[i];
            // Versions 1, 1.1, 2, 2.1, …: Flyway orders them as numbers, part by part.
            let written = format!("{}_{}", i / 2 + 1, i % 2);
            let file = format!("V{written}__{name}.sql");
            write(dir.join(&file), up);
            if no_tx {
                write(dir.join(format!("{file}.conf")), "executeInTransaction=false\n");
            }
        },
        history: "CREATE TABLE IF NOT EXISTS flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INT NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank));
                  CREATE INDEX IF NOT EXISTS flyway_schema_history_s_idx ON flyway_schema_history (success);
                  INSERT INTO flyway_schema_history VALUES (1, '1.0', 'create users', 'SQL', 'V1_0__create_users.sql', 1, 'app', now(), 3, true), (2, '1.1', 'create posts', 'SQL', 'V1_1__create_posts.sql', 2, 'app', now(), 3, true);",
    },
];

/// The database as the tool left it: the first `APPLIED` steps run, its history table filled.
fn as_the_tool_left_it(layout: &Layout) -> TestDatabase {
    let db = test_database();
    let mut client = db.client();
    for (_, up, _, _) in &STEPS[..APPLIED] {
        client.batch_execute(up).unwrap();
    }
    client.batch_execute(layout.history).unwrap();
    db
}

#[test]
fn each_tool_is_adopted_exactly_as_far_as_it_got() {
    for layout in LAYOUTS {
        let tool = layout.tool;
        let dir = TempDir::new(&format!("import-{tool}"));
        let source = dir.join("source");
        std::fs::create_dir_all(&source).unwrap();
        for i in 0..STEPS.len() {
            (layout.lay_out)(&source, i);
        }
        write(source.join("README.md"), "# migrations\n");
        let db = as_the_tool_left_it(layout);
        let out = dir.join("migrations");
        let source_arg = source.to_str().unwrap();

        let imported = migrate(
            &out,
            &["import", "--from", tool, source_arg, "--stamp"],
            &db,
        );
        assert_eq!(
            imported.status.code(),
            Some(0),
            "{tool}: {}",
            stderr(&imported)
        );
        let printed = stdout(&imported);
        assert!(
            printed.starts_with(&format!("imported 7 {tool} migration(s) into ")),
            "{tool}: {printed}"
        );
        assert!(
            printed.contains("  skipped ") && printed.contains("README.md"),
            "{tool}: {printed}"
        );
        assert!(
            printed.contains(&format!(
                "stamped the 2 migration(s) {tool} applied as applied, through "
            )),
            "{tool}: {printed}"
        );
        assert!(
            printed.trim_end().ends_with("; 5 pending"),
            "{tool}: {printed}"
        );
        // The no-transaction marker came along.
        let converted: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let index = converted
            .iter()
            .find(|t| t.contains("posts_user_id"))
            .unwrap();
        let marked = index.contains("-- migrate:no-transaction\n");
        assert_eq!(marked, index.contains("CONCURRENTLY"), "{tool}: {index}");

        let check = migrate(&out, &["check"], &db);
        assert_eq!(check.status.code(), Some(0), "{tool}: {}", stdout(&check));
        let status = migrate(&out, &["status"], &db);
        assert_eq!(status.status.code(), Some(1), "{tool}: {}", stdout(&status));
        assert!(
            stdout(&status).contains("3 applied, 5 pending, 0 ahead"),
            "{tool}: {}",
            stdout(&status)
        );
        let applied = migrate(&out, &["apply"], &db);
        assert_eq!(
            applied.status.code(),
            Some(0),
            "{tool}: {}",
            stderr(&applied)
        );
        let diff = migrate(&out, &["diff"], &db);
        assert_eq!(
            diff.status.code(),
            Some(0),
            "{tool}: {}{}",
            stdout(&diff),
            stderr(&diff)
        );
        // The old table is left as the tool wrote it.
        let (table, _) = match tool {
            "diesel" => ("__diesel_schema_migrations", ()),
            "sqlx" => ("_sqlx_migrations", ()),
            "refinery" => ("refinery_schema_history", ()),
            "goose" => ("goose_db_version", ()),
            "flyway" => ("flyway_schema_history", ()),
            _ => ("schema_migrations", ()),
        };
        let rows: i64 = db
            .client()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .get(0);
        let expected = match tool {
            "goose" => 5,
            "golang-migrate" => 1,
            _ => 2,
        };
        assert_eq!(rows, expected, "{tool}");

        // A fresh database runs the whole history, the tool's table first.
        let fresh = test_database();
        let built = migrate(&out, &["apply"], &fresh);
        assert_eq!(built.status.code(), Some(0), "{tool}: {}", stderr(&built));
    }
}

/// Lays out one tool's directory in `source` and imports it without a database.
fn import_only(dir: &TempDir, tool: &str, files: &[(&str, &str)]) -> (Output, PathBuf) {
    let source = dir.join(format!("{tool}-source"));
    for (name, text) in files {
        write(source.join(name), text);
    }
    let out = dir.join(format!("{tool}-out"));
    let output = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args([
            "import",
            "--from",
            tool,
            source.to_str().unwrap(),
            "--dir",
            out.to_str().unwrap(),
        ])
        .env_remove("DATABASE_URL")
        .env_remove("MIGRATION_DATABASE_URL")
        .output()
        .unwrap();
    (output, out)
}

#[test]
fn what_cannot_be_converted_faithfully_is_refused_file_by_file_and_nothing_is_written() {
    let dir = TempDir::new("import-refused");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            "goose",
            &[
                (
                    "00001_users.sql",
                    "-- +goose Up\nCREATE TABLE users (id int);\n",
                ),
                ("00002_backfill.go", "package migrations\n"),
                (
                    "00003_env.sql",
                    "-- +goose ENVSUB ON\n-- +goose Up\nCREATE ROLE ${APP_ROLE};\n",
                ),
                ("00004_bare.sql", "CREATE TABLE t (id int);\n"),
            ],
            "error: 3 file(s) cannot be converted faithfully; nothing was written\n  SRC/00002_backfill.go: a migration written in Go, which only goose can run\n  SRC/00003_env.sql: substitutes environment variables (`-- +goose ENVSUB ON`) when goose runs it\n  SRC/00004_bare.sql: has no `-- +goose Up` annotation, which goose requires\n  help: rewrite them as plain SQL migrations of that tool first, or remove them from the directory\n",
        ),
        (
            "flyway",
            &[
                ("V1__users.sql", "CREATE TABLE users (id int);\n"),
                ("R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1;\n"),
                ("V2__grant.sql", "GRANT SELECT ON users TO ${reader};\n"),
                ("V2_x__odd.sql", "SELECT 1;\n"),
            ],
            "error: 3 file(s) cannot be converted faithfully; nothing was written\n  SRC/R__views.sql: a repeatable migration (R__), which Flyway runs again whenever it changes\n  SRC/V2__grant.sql: uses the placeholder `${reader}`, which Flyway replaces when it runs\n  SRC/V2_x__odd.sql: version `2_x` is not numbers separated by `.` or `_`\n  help: rewrite them as plain SQL migrations of that tool first, or remove them from the directory\n",
        ),
        (
            "refinery",
            &[
                ("V1__users.sql", "CREATE TABLE users (id int);\n"),
                (
                    "V2__backfill.rs",
                    "pub fn migration() -> String { String::new() }\n",
                ),
            ],
            "error: 1 file(s) cannot be converted faithfully; nothing was written\n  SRC/V2__backfill.rs: a migration written in Rust, which only refinery can run\n  help: rewrite them as plain SQL migrations of that tool first, or remove them from the directory\n",
        ),
        (
            "sqlx",
            &[
                ("1_users.sql", "CREATE TABLE users (id int);\n"),
                ("01_again.sql", "CREATE TABLE again (id int);\n"),
            ],
            "error: 1 file(s) cannot be converted faithfully; nothing was written\n  SRC/1_users.sql: version 1 is also SRC/01_again.sql's; sqlx applies one migration per version\n  help: rewrite them as plain SQL migrations of that tool first, or remove them from the directory\n",
        ),
    ];
    for (tool, files, expected) in cases {
        let (output, out) = import_only(&dir, tool, files);
        let source = dir.join(format!("{tool}-source"));
        assert_eq!(output.status.code(), Some(1), "{tool}");
        assert_eq!(
            stderr(&output).replace(source.to_str().unwrap(), "SRC"),
            expected,
            "{tool}"
        );
        assert!(!out.exists(), "{tool}: something was written");
    }
    // A directory that already holds migrations is not written into.
    let (first, out) = import_only(
        &dir,
        "dbmate",
        &[(
            "20240101_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\n",
        )],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let again = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args([
            "import",
            "--from",
            "dbmate",
            dir.join("dbmate-source").to_str().unwrap(),
            "--dir",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again).replace(out.to_str().unwrap(), "OUT"),
        "error: OUT already holds migrations; nothing was written\n  help: import into an empty or new directory (--dir)\n"
    );
}

#[test]
fn a_history_that_is_not_one_finished_line_is_refused_and_nothing_is_written() {
    let dir = TempDir::new("import-history");
    let diesel_dir = |i: usize, source: &Path| {
        let (name, up, _, _) = STEPS[i];
        write(source.join(format!("{}_{name}/up.sql", version(i))), up);
    };
    let cases: [(&str, &str, &str); 4] = [
        (
            "sqlx",
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101120001, 'create users', true, '\\x00', 1), (20240101120002, 'create posts', false, '\\x00', 1);",
            "error: _sqlx_migrations records a run that did not finish: version 20240101120002 (failed); nothing was stamped\n  help: finish or repair it with the tool itself, then import again\n",
        ),
        (
            "golang-migrate",
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (2, true);",
            "error: schema_migrations records a run that did not finish: version 2 (dirty); nothing was stamped\n  help: finish or repair it with the tool itself, then import again\n",
        ),
        (
            "diesel",
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101120001'), ('20991231000000');",
            "error: __diesel_schema_migrations records version 20991231000000 as applied, and no file of the directory has it; nothing was stamped\n  help: import from the directory the database was migrated from\n",
        ),
        (
            "goose",
            "CREATE TABLE goose_db_version (id serial NOT NULL, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id));
             INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (3, true);",
            "error: version 3 is recorded as applied but 2, before it, is not; the imported history is one line, so nothing was stamped\n  help: apply 2 with the tool itself first, then import again\n",
        ),
    ];
    for (tool, history, expected) in cases {
        let source = dir.join(format!("{tool}-source"));
        for (i, (name, up, _, _)) in STEPS.iter().enumerate().take(3) {
            match tool {
                "diesel" => diesel_dir(i, &source),
                "sqlx" => write(source.join(format!("{}_{name}.sql", version(i))), up),
                "golang-migrate" => write(source.join(format!("{:06}_{name}.up.sql", i + 1)), up),
                _ => write(
                    source.join(format!("{:05}_{name}.sql", i + 1)),
                    &format!("-- +goose Up\n{up}"),
                ),
            }
        }
        let db = test_database();
        db.client().batch_execute(history).unwrap();
        let out = dir.join(format!("{tool}-out"));
        let output = migrate(
            &out,
            &[
                "import",
                "--from",
                tool,
                source.to_str().unwrap(),
                "--stamp",
            ],
            &db,
        );
        assert_eq!(output.status.code(), Some(1), "{tool}: {}", stdout(&output));
        assert_eq!(stderr(&output), expected, "{tool}");
        assert!(!out.exists(), "{tool}: something was written");
    }
}

/// Commands that only read the migrations report the lint's findings and go on; applying
/// refuses. An imported file edited afterwards is an error everywhere.
#[test]
fn findings_stop_only_apply_and_a_frozen_file_keeps_its_text() {
    let dir = TempDir::new("import-frozen");
    let (output, out) = import_only(
        &dir,
        "dbmate",
        &[
            (
                "20240101_users.sql",
                "-- migrate:up\nCREATE TABLE users (id int);\n-- migrate:down\n",
            ),
            // Would be an error in a new migration: frozen, it is information.
            (
                "20240102_index.sql",
                "-- migrate:up\nCREATE INDEX users_id ON users (id);\n-- migrate:down\n",
            ),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let db = test_database();
    let check = migrate(&out, &["check"], &db);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    assert!(stdout(&check).starts_with("info: "), "{}", stdout(&check));
    assert!(
        stdout(&check).ends_with(&format!(
            "0 error(s), 0 warning(s), 1 in the frozen history (information) in {}\n",
            out.display()
        )),
        "{}",
        stdout(&check)
    );

    // A new migration is held to the full lint.
    let new = migrate(&out, &["new", "more_index"], &db);
    let file = stdout(&new).trim().to_owned();
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap() + "CREATE INDEX users_id2 ON users (id);\n",
    )
    .unwrap();
    let check = migrate(&out, &["check"], &db);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("] [require-concurrent-index-creation]")
            || stdout(&check).contains("[require-concurrent-index-creation]"),
        "{}",
        stdout(&check)
    );
    let status = migrate(&out, &["status"], &db);
    assert_eq!(status.status.code(), Some(1), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("0 applied, 4 pending"),
        "{}",
        stdout(&status)
    );
    assert!(
        stderr(&status).ends_with(&format!("note: 1 lint finding(s) at error level in {}: this command goes on, and `migrate apply` refuses the directory until they are fixed or allowed\n", out.display())),
        "{}",
        stderr(&status)
    );
    let apply = migrate(&out, &["apply"], &db);
    assert_eq!(apply.status.code(), Some(1));
    assert!(
        stderr(&apply).ends_with(&format!("error: {} does not pass the checks `embed_migrations!` makes; nothing was done\n  help: fix the findings above (`migrate check` lists them)\n", out.display())),
        "{}",
        stderr(&apply)
    );
    std::fs::remove_file(&file).unwrap();

    // An imported file edited afterwards.
    let users = out.join("20240101_users.sql");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, text.replace("(id int)", "(id bigint)")).unwrap();
    let check = migrate(&out, &["check"], &db);
    assert_eq!(check.status.code(), Some(1));
    let edited = stdout(&check);
    let line = edited.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(line.starts_with(&format!("error: {}:1:1: [frozen-edited] revision `20240101` is frozen, and its text changed since it was imported (checksum ", users.display())), "{edited}");
    assert!(edited.contains("  = help: restore the file as it was imported, and make the change in a new migration\n"), "{edited}");
}

/// Each tool's own reading of its files: goose's annotations with any spacing, a file
/// golang-migrate or Flyway runs outside a transaction because of what it holds, Flyway's
/// versions without trailing zeros and its byte-order marks, dbmate's order by file name, and
/// versions a revision id cannot hold kept apart.
#[test]
fn each_tool_reads_its_files_as_it_does() {
    let dir = TempDir::new("import-reading");
    let read = |out: &Path| -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        files.sort();
        files
    };
    let (goose, out) = import_only(
        &dir,
        "goose",
        &[(
            "00001_a.sql",
            "--+goose Up\nCREATE TABLE a (id int);\n--  +goose   Down\nDROP TABLE a;\n",
        )],
    );
    assert_eq!(goose.status.code(), Some(0), "{}", stderr(&goose));
    assert!(
        read(&out).iter().all(|f| !f.contains("DROP TABLE a")),
        "{:?}",
        read(&out)
    );

    let (golang, out) = import_only(
        &dir,
        "golang-migrate",
        &[
            ("1_a.up.sql", "CREATE TABLE a (id int);\n"),
            ("2_idx.up.sql", "CREATE INDEX CONCURRENTLY ai ON a (id);\n"),
        ],
    );
    assert_eq!(golang.status.code(), Some(0), "{}", stderr(&golang));
    let index = read(&out)
        .into_iter()
        .find(|f| f.contains("CONCURRENTLY"))
        .unwrap();
    assert!(index.contains("-- migrate:no-transaction\n"), "{index}");

    let (flyway, out) = import_only(
        &dir,
        "flyway",
        &[
            ("V1__a.sql", "\u{FEFF}CREATE TABLE a (id int);\n"),
            ("V2__idx.sql", "CREATE INDEX CONCURRENTLY ai ON a (id);\n"),
        ],
    );
    assert_eq!(flyway.status.code(), Some(0), "{}", stderr(&flyway));
    assert!(read(&out).iter().all(|f| !f.contains('\u{FEFF}')));
    assert!(
        read(&out)
            .iter()
            .any(|f| f.contains("-- migrate:no-transaction\nCREATE INDEX")
                || f.contains("-- migrate:no-transaction\n\nCREATE INDEX")),
        "{:?}",
        read(&out)
    );
    let check = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["check", "--dir", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let source = dir.join("flyway-same");
    write(source.join("V1__a.sql"), "SELECT 1;\n");
    write(source.join("V1.0__b.sql"), "SELECT 2;\n");
    let same = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args([
            "import",
            "--from",
            "flyway",
            source.to_str().unwrap(),
            "--dir",
            dir.join("flyway-same-out").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(1));
    assert!(
        stderr(&same).contains("V1__a.sql: version 1 is also "),
        "{}",
        stderr(&same)
    );

    let (dbmate, out) = import_only(
        &dir,
        "dbmate",
        &[
            (
                "1_a.sql",
                "--migrate:up\nCREATE TABLE a (id int);\n--migrate:down\n",
            ),
            (
                "10_b.sql",
                "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\n",
            ),
        ],
    );
    assert_eq!(dbmate.status.code(), Some(0), "{}", stderr(&dbmate));
    // dbmate applies `10_b` first: it orders its files by name.
    let a = read(&out)
        .into_iter()
        .find(|f| f.contains("TABLE a"))
        .unwrap();
    assert!(a.contains("-- parents: 10\n"), "{a}");

    let (diesel, out) = import_only(
        &dir,
        "diesel",
        &[
            ("été_a/up.sql", "CREATE TABLE a (id int);\n"),
            ("ôté_b/up.sql", "CREATE TABLE b (id int);\n"),
        ],
    );
    assert_eq!(diesel.status.code(), Some(0), "{}", stderr(&diesel));
    let check = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["check", "--dir", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}

/// Frozen means imported: a revision without a frozen checksum is linted in full, and a statement
/// that fails wherever it stands stays an error even in the frozen history.
#[test]
fn only_what_was_imported_is_frozen() {
    let dir = TempDir::new("import-frozen-only");
    let (output, out) = import_only(&dir, "sqlx", &[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let config = std::fs::read_to_string(out.join("migrate.toml")).unwrap();
    std::fs::write(
        out.join("2_idx.sql"),
        "-- revision: 2\n-- parents: 1\n\nCREATE INDEX ai ON a (id);\n",
    )
    .unwrap();
    std::fs::write(
        out.join("migrate.toml"),
        config.replace("through = \"1\"", "through = \"2\""),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(["check", "--dir", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("/migrate.toml:4:1: [invalid-config] `[frozen] through` names revision `2`, which has no frozen checksum"),
        "{}",
        stdout(&check)
    );
}

/// Flyway's own rows: a baseline stands for the versions before it, which need no file; an
/// undone version no longer counts as applied.
#[test]
fn flyway_baselines_and_undone_versions() {
    let dir = TempDir::new("import-flyway-rows");
    let table = "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INT NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank));";
    let cases = [
        (
            "baseline",
            "INSERT INTO flyway_schema_history VALUES (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'app', now(), 0, true), (2, '2', 'b', 'SQL', 'V2__b.sql', 1, 'app', now(), 1, true); CREATE TABLE b (id int);",
            "stamped the 1 migration(s) flyway applied as applied, through 2",
        ),
        (
            "undone",
            "INSERT INTO flyway_schema_history VALUES (1, '2', 'b', 'SQL', 'V2__b.sql', 1, 'app', now(), 1, true), (2, '3', 'c', 'SQL', 'V3__c.sql', 1, 'app', now(), 1, true), (3, '3', 'c', 'UNDO_SQL', 'U3__c.sql', 1, 'app', now(), 1, true); CREATE TABLE b (id int);",
            "stamped the 1 migration(s) flyway applied as applied, through 2",
        ),
    ];
    for (name, rows, expected) in cases {
        let source = dir.join(format!("{name}-source"));
        write(source.join("V2__b.sql"), "CREATE TABLE b (id int);\n");
        write(source.join("V3__c.sql"), "CREATE TABLE c (id int);\n");
        let db = test_database();
        db.client()
            .batch_execute(&format!("{table} {rows}"))
            .unwrap();
        let out = dir.join(format!("{name}-out"));
        let imported = migrate(
            &out,
            &[
                "import",
                "--from",
                "flyway",
                source.to_str().unwrap(),
                "--stamp",
            ],
            &db,
        );
        assert_eq!(
            imported.status.code(),
            Some(0),
            "{name}: {}",
            stderr(&imported)
        );
        assert!(
            stdout(&imported).contains(expected),
            "{name}: {}",
            stdout(&imported)
        );
        let status = migrate(&out, &["status"], &db);
        assert!(
            stdout(&status).contains("2 applied, 1 pending"),
            "{name}: {}",
            stdout(&status)
        );
    }
}
