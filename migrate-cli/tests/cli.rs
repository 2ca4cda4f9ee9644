//! The built `migrate` binary on temporary directories: authoring a graph (new, a second branch,
//! merge), the graph in every format (dot rendered by Graphviz), lint annotations for GitHub and
//! SARIF validated by the SARIF multitool, `check` exit codes, and `apply --dir` writing the
//! history a host embedding the same directory finds up to date.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TempDir, stderr, stdout};

use migrate::Migrator;
use pg_harness::test_database;

/// The same migrations this test crate embeds, as the host of the last test.
static EMBEDDED: migrate::Migrations = migrate::embed_migrations!("tests/migrations");

/// A directory of the test's own, the commands' working directory, with an empty `migrations/`.
struct Dir(TempDir);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = TempDir::new(name);
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        Dir(dir)
    }

    fn migrate(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(args)
            .current_dir(&self.0)
            .env_remove("DATABASE_URL")
            .env_remove("MIGRATION_DATABASE_URL")
            .output()
            .unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join("migrations").join(name), text).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.0.join(relative)).unwrap()
    }
}

/// The revision of the file `new` or `merge` printed.
fn revision_of(dir: &Dir, printed: &str) -> String {
    let text = dir.read(printed.trim());
    text.lines()
        .find_map(|l| l.strip_prefix("-- revision: "))
        .unwrap()
        .to_owned()
}

#[test]
fn new_builds_a_chain_refuses_two_heads_and_merge_joins_them() {
    let dir = Dir::new("author");
    let root = dir.migrate(&["new", "create_users", "-m", "Créer la table 🚀"]);
    assert!(root.status.success(), "{}", stderr(&root));
    let root_file = stdout(&root);
    assert!(
        root_file.starts_with("migrations/") && root_file.trim().ends_with("_create_users.sql")
    );
    let root_rev = revision_of(&dir, &root_file);
    assert_eq!(
        dir.read(root_file.trim()),
        format!("-- revision: {root_rev}\n-- parents: none\n-- message: Créer la table 🚀\n\n")
    );

    let second = dir.migrate(&["new", "add_email"]);
    let second_rev = revision_of(&dir, &stdout(&second));
    assert!(
        second_rev[..14] >= root_rev[..14],
        "ids sort by creation time, to the second"
    );
    assert!(
        dir.read(stdout(&second).trim())
            .contains(&format!("-- parents: {root_rev}\n-- message: add email\n")),
    );

    // A second branch from the root, as another developer would make it.
    let branch = dir.migrate(&[
        "new",
        "add_index",
        "--parent",
        &root_rev,
        "--no-transaction",
    ]);
    assert!(branch.status.success(), "{}", stderr(&branch));
    let branch_rev = revision_of(&dir, &stdout(&branch));
    assert!(
        dir.read(stdout(&branch).trim())
            .contains("-- migrate:no-transaction\n")
    );
    assert_ne!(branch_rev, second_rev);

    let refused = dir.migrate(&["new", "more"]);
    assert_eq!(refused.status.code(), Some(1));
    let (low, high) = if branch_rev < second_rev {
        (&branch_rev, &second_rev)
    } else {
        (&second_rev, &branch_rev)
    };
    assert_eq!(
        stderr(&refused),
        format!(
            "error: the migrations have 2 heads: {low}, {high}; a new migration would not know which one to build on\n  help: run `migrate merge` to join them first, or pass --parent <revision> for each parent\n"
        )
    );

    let merged = dir.migrate(&["merge"]);
    assert!(merged.status.success(), "{}", stderr(&merged));
    let merge_text = dir.read(stdout(&merged).trim());
    assert!(
        merge_text.contains(&format!(
            "-- parents: {low}, {high}\n-- message: merge {low} and {high}\n"
        )),
        "{merge_text}"
    );
    let merge_rev = revision_of(&dir, &stdout(&merged));
    assert_eq!(
        stdout(&dir.migrate(&["merge"])),
        "nothing to merge: the migrations have one head at most\n"
    );

    let after = dir.migrate(&["new", "after_merge"]);
    assert!(
        dir.read(stdout(&after).trim())
            .contains(&format!("-- parents: {merge_rev}\n"))
    );
    let check = dir.migrate(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}

#[test]
fn authoring_errors_say_what_to_do_with_their_exit_codes() {
    let dir = Dir::new("errors");
    let cases: [(&[&str], i32, &str); 3] = [
        (
            &["new", "Add Users"],
            1,
            "error: the name `Add Users` cannot be part of a file name\n  help: use 1 to 60 characters of a-z, 0-9, `_` and `-`, e.g. `add_user_email`\n",
        ),
        (
            &["new", "x", "--parent", "nope"],
            1,
            "error: no migration in the directory has revision `nope`\n  help: run `migrate graph` to list the revisions\n",
        ),
        (
            &["new", "x", "--dir", "missing"],
            2,
            "error: cannot read the migrations directory missing: No such file or directory (os error 2)\n  help: create it (mkdir -p missing) or pass --dir <directory>\n",
        ),
    ];
    for (args, code, text) in cases {
        let out = dir.migrate(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), text, "{args:?}");
    }
    let first = dir.migrate(&["new", "users"]);
    assert!(first.status.success());
    let unconfigured = dir.migrate(&["status"]);
    assert_eq!(unconfigured.status.code(), Some(2));
    assert_eq!(
        stderr(&unconfigured),
        "error: no database configured\n  help: set MIGRATION_DATABASE_URL (or DATABASE_URL) to the database's URL\n"
    );
    let clash = dir.migrate(&["new", "users"]);
    assert_eq!(clash.status.code(), Some(1));
    assert_eq!(
        stderr(&clash),
        format!(
            "error: a migration named `users` exists already: {}\n  help: choose another name\n",
            stdout(&first).trim()
        )
    );
}

/// A tool the checks need, or a panic that says how to get it (`scripts/test` installs both).
fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    let found = Command::new(&path).arg("--version").output().is_ok();
    assert!(
        found,
        "{} not found: run scripts/test, which installs it, or set {env}",
        path.display()
    );
    path
}

fn diamond(dir: &Dir) {
    dir.write(
        "0001_users.sql",
        "-- revision: 0001\n-- parents: none\n-- message: users \"quoted\" <b>\nCREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    dir.write(
        "0002_posts.sql",
        "-- revision: 0002\n-- parents: 0001\n-- message: posts\nCREATE TABLE posts (id bigint PRIMARY KEY);\n",
    );
    dir.write(
        "0003_tags.sql",
        "-- revision: 0003\n-- parents: 0001\n-- message: étiquettes\nCREATE TABLE tags (id bigint PRIMARY KEY);\n",
    );
    dir.write(
        "0004_merge.sql",
        "-- revision: 0004\n-- parents: 0002, 0003\n-- message: merge\n",
    );
}

#[test]
fn graph_in_every_format() {
    let dir = Dir::new("graph");
    diamond(&dir);
    assert_eq!(
        stdout(&dir.migrate(&["graph"])),
        "* 0004 (head, merge)  merge\n|\\\n| * 0003  étiquettes\n* | 0002  posts\n* | 0001 (root)  users \"quoted\" <b>\n|/\n"
    );
    let mermaid = stdout(&dir.migrate(&["graph", "--format", "mermaid"]));
    assert!(
        mermaid.starts_with("graph BT\n  r0[\"0004 (head, merge): merge\"]\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("r3[\"0001 (root): users #quot;quoted#quot; #lt;b#gt;\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("  r0 --> r2\n  r0 --> r1\n"), "{mermaid}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&dir.migrate(&["graph", "--json"]))).unwrap();
    assert_eq!(json["heads"], serde_json::json!(["0004"]));
    assert_eq!(json["roots"], serde_json::json!(["0001"]));
    assert_eq!(
        json["revisions"][0]["parents"],
        serde_json::json!(["0002", "0003"])
    );

    // Graphviz reads the dot output and renders it.
    let dot_file = dir.0.join("graph.dot");
    std::fs::write(
        &dot_file,
        stdout(&dir.migrate(&["graph", "--format", "dot"])),
    )
    .unwrap();
    let svg = Command::new(tool("MIGRATE_TEST_DOT", "dot"))
        .arg("-Tsvg")
        .arg(&dot_file)
        .output()
        .unwrap();
    assert!(svg.status.success(), "{}", stderr(&svg));
    let svg = stdout(&svg);
    for revision in ["0001", "0002", "0003", "0004"] {
        assert!(svg.contains(&format!("<title>{revision}</title>")), "{svg}");
    }
    assert!(svg.contains("<title>0004&#45;&gt;0002</title>"), "{svg}");

    // With two heads the build fails, and graph still shows them.
    dir.write("0005_more.sql", "-- revision: 0005\n-- parents: 0003\n");
    let text = stdout(&dir.migrate(&["graph"]));
    assert!(
        text.contains("0005 (head)") && text.contains("0004 (head, merge)"),
        "{text}"
    );
}

fn findings_dir(dir: &Dir) {
    dir.write(
        "0001_users.sql",
        "-- revision: 0001\n-- parents: none\nCREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    );
    dir.write(
        "0002_index.sql",
        "-- revision: 0002\n-- parents: 0001\n-- message: 100% sûr, ou pas\nCREATE INDEX users_email ON users (email);\nALTER TABLE users REPLICA IDENTITY FULL;\n",
    );
}

#[test]
fn lint_for_github_and_sarif_and_check_exit_codes() {
    let dir = Dir::new("lint");
    findings_dir(&dir);
    let github = dir.migrate(&["lint", "--format", "github"]);
    assert_eq!(github.status.code(), Some(1));
    let lines: Vec<String> = stdout(&github).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("::error file=migrations/0002_index.sql,line=4,col=1,title=require-concurrent-index-creation::CREATE INDEX on existing table `users` takes a SHARE lock"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("%0Ahelp: "), "{}", lines[0]);
    assert!(
        lines[1].starts_with(
            "::warning file=migrations/0002_index.sql,line=5,col=1,title=unknown-statement::"
        ),
        "{}",
        lines[1]
    );

    let sarif = dir.migrate(&["lint", "--format", "sarif"]);
    assert_eq!(sarif.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_str(&stdout(&sarif)).unwrap();
    let results = &log["runs"][0]["results"];
    assert_eq!(results[0]["ruleId"], "require-concurrent-index-creation");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );
    assert_eq!(results[1]["level"], "warning");
    let sarif_file = dir.0.join("lint.sarif");
    std::fs::write(&sarif_file, stdout(&sarif)).unwrap();
    validate_sarif(&sarif_file);

    // check: 1 with an error finding, 0 once it is fixed (the warning stays a warning), 2 when
    // the directory cannot be read.
    assert_eq!(dir.migrate(&["check"]).status.code(), Some(1));
    findings_fixed(&dir);
    let clean = dir.migrate(&["check"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert_eq!(
        stdout(&clean).lines().last(),
        Some("0 error(s), 1 warning(s) in migrations")
    );
    let missing = dir.migrate(&["check", "--dir", "nowhere"]);
    assert_eq!(missing.status.code(), Some(2));
}

fn findings_fixed(dir: &Dir) {
    dir.write(
        "0002_index.sql",
        "-- revision: 0002\n-- parents: 0001\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\nALTER TABLE users REPLICA IDENTITY FULL;\n",
    );
}

/// The SARIF multitool's `validate`: the SARIF 2.1.0 schema and the spec's rules. It always exits
/// 0; what it found is in its own SARIF report, schema violations at level `error` (JSON1002…).
fn validate_sarif(file: &Path) {
    let multitool = tool(
        "MIGRATE_TEST_SARIF_MULTITOOL",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/tools/sarif-multitool/package/Sarif.Multitool"
        ),
    );
    let report = file.with_extension("validation.sarif");
    let out = Command::new(multitool)
        .arg("validate")
        .arg(file)
        .arg("--output")
        .arg(&report)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let validation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let errors: Vec<&serde_json::Value> = validation["runs"][0]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["level"] == "error")
        .collect();
    assert!(
        errors.is_empty(),
        "the SARIF log does not validate: {errors:?}"
    );
}

#[test]
fn apply_from_a_directory_writes_what_the_embedded_host_reads() {
    let db = test_database();
    let dir = Dir::new("apply");
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/migrations")).unwrap()
    {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.0.join("migrations").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let pending = dir.migrate(&["status", "--database-url", db.url()]);
    assert_eq!(pending.status.code(), Some(1), "{}", stderr(&pending));
    let applied = dir.migrate(&["apply", "--database-url", db.url()]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        stdout(&applied).ends_with("up to date at 0003 (3 applied now)\n"),
        "{}",
        stdout(&applied)
    );

    // The host embedding the same files finds everything applied, with its own checksums.
    let mut client = db.client();
    let status = Migrator::new(&EMBEDDED).status(&mut client).unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert!(status.checksum_mismatches.is_empty());
    let report = Migrator::new(&EMBEDDED).run(&mut client).unwrap();
    assert!(report.applied.is_empty());

    // What the compiler rejects, apply rejects with the same findings and does nothing.
    dir.write(
        "0004_index.sql",
        "-- revision: 0004\n-- parents: 0003\nCREATE INDEX users_name ON users (name);\n",
    );
    let refused = dir.migrate(&["apply", "--database-url", db.url()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with(
            "error: migrations/0004_index.sql:3:1: [require-concurrent-index-creation] "
        ),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_file(dir.0.join("migrations/0004_index.sql")).unwrap();
    let stamped = dir.migrate(&["stamp", "nope", "--database-url", db.url()]);
    assert_eq!(stamped.status.code(), Some(2));
    assert!(
        stderr(&stamped).starts_with("error: revision nope is not one of "),
        "{}",
        stderr(&stamped)
    );
}

#[test]
fn check_and_lint_read_the_migrate_toml_the_compiler_reads() {
    // The fixtures of the compile-time tests: the same directory, the same verdict.
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ui/fixtures/lint");
    let dir = Dir::new("config");
    let check = |name: &str| dir.migrate(&["check", "--dir", &format!("{fixtures}/{name}")]);
    let lowered = check("config-file");
    assert_eq!(lowered.status.code(), Some(0), "{}", stdout(&lowered));
    assert!(
        stdout(&lowered).contains("warning: "),
        "{}",
        stdout(&lowered)
    );
    assert!(
        stdout(&lowered).contains("[renaming-column]"),
        "{}",
        stdout(&lowered)
    );
    let without = check("renaming-column/bad");
    assert_eq!(without.status.code(), Some(1));
    let invalid = check("config-invalid");
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        stdout(&invalid).contains("config-invalid/migrate.toml:4:1: [invalid-config] the level of `ban-drop-table` is one of \"error\", \"warn\", \"off\", found \"never\""),
        "{}",
        stdout(&invalid)
    );
    // A command-line setting is checked and applied over the file, as the macro's are.
    let json = dir.migrate(&[
        "lint",
        &format!("{fixtures}/config-file"),
        "--json",
        "--target-postgres",
        "9",
    ]);
    assert_eq!(json.status.code(), Some(1), "{}", stdout(&json));
    let findings: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(findings[0]["rule"], "invalid-config");
    assert_eq!(
        findings[0]["message"],
        "target_postgres is a PostgreSQL major version from 10 to 18, found 9"
    );
}

/// `--dir` names the migrations directory of every command, before or after the command's own
/// arguments; `lint DIR` and `baseline --into DIR` still say it their way. The list of commands
/// is read from the help, so that a new command is held to it too.
#[test]
fn every_command_takes_the_migrations_directory_from_dir() {
    let dir = Dir::new("dir-everywhere");
    let help = stdout(&dir.migrate(&["--help"]));
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    let expected = [
        "new", "merge", "graph", "check", "snapshot", "import", "squash", "migrate", "status",
        "stamp", "plan", "diff", "baseline", "lint",
    ];
    assert_eq!(listed, expected, "{help}");
    let unreachable = "postgres://someone:hunter2@127.0.0.1:1/db";
    let missing = "no-such-migrations";
    let not_read = format!(
        "error: [missing-directory] cannot read the migrations directory {missing}: No such file or directory (os error 2)\n  = help: create the directory {missing} (it is resolved from the current directory) and put the migration files in it\n"
    );
    for command in expected {
        let mut args: Vec<&str> = vec![command];
        match command {
            "new" => args.push("first"),
            "stamp" => args.push("0001"),
            "squash" => args.extend(["--through", "0001"]),
            "import" => args.extend(["--from", "sqlx", "no-such-source"]),
            _ => {}
        }
        if matches!(
            command,
            "snapshot" | "squash" | "migrate" | "status" | "stamp" | "plan" | "diff" | "baseline"
        ) {
            args.extend(["--database-url", unreachable]);
        }
        // Before the command's own arguments and after them.
        for at in [1, args.len()] {
            let mut args = args.clone();
            args.splice(at..at, ["--dir", missing]);
            let out = dir.migrate(&args);
            let said = stderr(&out);
            assert!(!said.contains("unexpected argument"), "{args:?}: {said}");
            match command {
                // Writes into the directory once the database is read: it got that far.
                "baseline" => {
                    assert!(
                        said.starts_with(
                            "error: cannot connect to postgres://someone@127.0.0.1:1/db"
                        ),
                        "{args:?}: {said}"
                    );
                    assert!(!said.contains("hunter2"), "{said}");
                }
                "check" | "lint" => {
                    assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
                    assert_eq!(said, format!("error: cannot lint {missing}\n"), "{args:?}");
                    assert!(
                        stdout(&out).starts_with(&not_read),
                        "{args:?}: {}",
                        stdout(&out)
                    );
                }
                // `--dir` is where the converted files go; the source is read first.
                "import" => {
                    assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
                    assert_eq!(
                        said,
                        "error: cannot read no-such-source: No such file or directory (os error 2)\n  help: pass the directory the tool reads its migrations from\n",
                        "{args:?}"
                    );
                }
                "new" | "merge" | "graph" => {
                    assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
                    assert_eq!(
                        said,
                        format!(
                            "error: cannot read the migrations directory {missing}: No such file or directory (os error 2)\n  help: create it (mkdir -p {missing}) or pass --dir <directory>\n"
                        ),
                        "{args:?}"
                    );
                }
                _ => {
                    assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
                    assert!(said.starts_with(&not_read), "{args:?}: {said}");
                }
            }
        }
    }
    // The directory a command is given its own way wins over `--dir`.
    dir.write(
        "0001_a.sql",
        "-- revision: 0001\n-- parents: none\nCREATE TABLE a (id int);\n",
    );
    let linted = dir.migrate(&["lint", "migrations", "--dir", missing]);
    assert_eq!(linted.status.code(), Some(0), "{}", stdout(&linted));
    let baseline = dir.migrate(&[
        "baseline",
        "--into",
        "migrations",
        "--dir",
        missing,
        "--database-url",
        unreachable,
    ]);
    assert!(
        stderr(&baseline).starts_with("error: migrations already holds migrations"),
        "{}",
        stderr(&baseline)
    );
}

/// A file where the directory should be could not be read: exit 2, for every command, and the
/// help does not tell to create what exists.
#[test]
fn a_file_given_as_the_directory_is_a_directory_that_cannot_be_read() {
    let dir = Dir::new("file-as-dir");
    std::fs::write(dir.0.join("afile"), "").unwrap();
    for command in ["check", "lint", "status", "plan", "graph", "new"] {
        let mut args = vec!["--dir", "afile", command];
        if command == "new" {
            args.push("x");
        }
        let out = dir.migrate(&args);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !said.contains("migrate.toml") && !said.contains("mkdir"),
            "{command}: {said}"
        );
        let expected = if matches!(command, "graph" | "new") {
            "error: cannot read the migrations directory afile: Not a directory (os error 20)\n  help: check that it is a directory this user may read, or pass --dir <directory>\n"
        } else {
            "[missing-directory] cannot read the migrations directory afile: Not a directory (os error 20)\n  = help: check that it is a directory this user may read\n"
        };
        assert!(said.contains(expected), "{command}: {said}");
    }
}

/// `snapshot` and `squash` make shadow databases on the database's server: without one, they say
/// where it comes from.
#[test]
fn shadow_commands_without_a_server_say_how_to_give_one() {
    let dir = Dir::new("no-server");
    for (args, place) in [
        (
            vec!["snapshot"],
            "a shadow database can be created, or pass --shadow-url",
        ),
        (
            vec!["squash", "--through", "0001"],
            "shadow databases can be created",
        ),
    ] {
        let out = dir.migrate(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&out),
            format!(
                "error: no database server configured\n  help: set DATABASE_URL (or pass --database-url) to a database on a server where {place}\n"
            ),
            "{args:?}"
        );
    }
}
