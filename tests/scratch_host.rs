//! A real host crate, built with cargo, depending on `migrate` by path: the migrations directory
//! is part of the build. A valid graph builds and embeds in order; editing, adding or removing a
//! file rebuilds; a second head, a dangling parent, a duplicate and a cycle each break the build
//! with an error naming the revisions and the file:line; without build.rs a warning says so.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Host {
    dir: PathBuf,
    target: PathBuf,
}

struct Build {
    success: bool,
    stderr: String,
}

impl Host {
    fn new() -> Host {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("scratch-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("migrations")).unwrap();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"scratch-host\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nmigrate = {{ path = {:?}, default-features = false }}\n\n[workspace]\n",
                workspace.display().to_string()
            ),
        )
        .unwrap();
        std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        std::fs::write(
            dir.join("build.rs"),
            "fn main() { println!(\"cargo:rerun-if-changed=migrations\"); }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("src/main.rs"),
            "static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(\"migrations\");\n\nfn main() {\n    for m in &MIGRATIONS {\n        println!(\"{} {}\", m.revision(), m.checksum());\n    }\n}\n",
        )
        .unwrap();
        Host {
            dir,
            target: tmp.join("scratch-host-target"),
        }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join("migrations").join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.join("migrations").join(name)).unwrap();
    }

    fn build(&self) -> Build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(cargo)
            .args(["build", "--offline", "--quiet"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("RUSTFLAGS")
            // Inherited from this test's own run; the host must show its own build script or none.
            .env_remove("OUT_DIR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("panicked"),
            "the macro panicked:\n{stderr}"
        );
        Build {
            success: out.status.success(),
            stderr,
        }
    }

    /// Builds, expecting success, and runs the binary: one `revision checksum` line per migration.
    fn run(&self) -> Vec<(String, String)> {
        let build = self.build();
        assert!(
            build.success,
            "expected the host to build:\n{}",
            build.stderr
        );
        let out = Command::new(self.target.join("debug/scratch-host"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (rev, sum) = l.split_once(' ').unwrap();
                (rev.to_owned(), sum.to_owned())
            })
            .collect()
    }

    fn fails_with(&self, needles: &[&str]) -> String {
        let build = self.build();
        assert!(!build.success, "expected the build to fail");
        for needle in needles {
            assert!(
                build.stderr.contains(needle),
                "missing {needle:?} in:\n{}",
                build.stderr
            );
        }
        build.stderr
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn revisions(run: &[(String, String)]) -> Vec<&str> {
    run.iter().map(|(r, _)| r.as_str()).collect()
}

#[test]
fn the_migrations_directory_is_part_of_the_build() {
    let host = Host::new();
    host.write(
        "0001_users.sql",
        "-- revision: 0001\n-- parents: none\nCREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    host.write(
        "0002_themes.sql",
        "-- revision: 0002a\n-- parents: 0001\nCREATE TABLE themes (id int);\n",
    );
    host.write(
        "0002_topics.sql",
        "-- revision: 0002b\n-- parents: 0001\nCREATE TABLE topics (id int);\n",
    );
    host.write(
        "0003_merge.sql",
        "-- revision: 0003\n-- parents: 0002a, 0002b\n-- message: merge\n",
    );
    let first = host.run();
    assert_eq!(revisions(&first), ["0001", "0002a", "0002b", "0003"]);

    // Editing a file rebuilds: the embedded checksum changes.
    host.write("0003_merge.sql", "-- revision: 0003\n-- parents: 0002a, 0002b\n-- message: merge\nCREATE TABLE after_merge (id int);\n");
    let edited = host.run();
    assert_eq!(revisions(&edited), ["0001", "0002a", "0002b", "0003"]);
    assert_ne!(
        first[3].1, edited[3].1,
        "editing a migration must rebuild the host"
    );

    // Adding a file rebuilds.
    host.write(
        "0004_profiles.sql",
        "-- revision: 0004\n-- parents: 0003\nCREATE TABLE profiles (id int);\n",
    );
    assert_eq!(
        revisions(&host.run()),
        ["0001", "0002a", "0002b", "0003", "0004"]
    );

    // A second head, with no other change, breaks the next build.
    host.write(
        "0004_muted.sql",
        "-- revision: 0004b\n-- parents: 0003\nCREATE TABLE muted (id int);\n",
    );
    host.fails_with(&[
        "migrations/0004_profiles.sql:1:14: [multiple-heads] the migrations have 2 heads: `0004` (migrations/0004_profiles.sql), `0004b` (migrations/0004_muted.sql)",
        "-- parents: 0004, 0004b",
    ]);
    // Removing it rebuilds and the host is sound again.
    host.remove("0004_muted.sql");
    assert_eq!(host.run().len(), 5);

    host.write(
        "0005_fix.sql",
        "-- revision: 0005\n-- parents: 0004x\nALTER TABLE profiles ADD COLUMN bio text;\n",
    );
    host.fails_with(&[
        "migrations/0005_fix.sql:2:13: [dangling-parent] revision `0005` names parent `0004x`",
    ]);
    host.remove("0005_fix.sql");

    host.write(
        "0005_dup.sql",
        "-- revision: 0002b\n-- parents: 0004\nSELECT 1;\n",
    );
    host.fails_with(&[
        "[duplicate-revision] revision `0002b` is also defined by migrations/0002_topics.sql",
    ]);
    host.remove("0005_dup.sql");

    host.write(
        "0002_themes.sql",
        "-- revision: 0002a\n-- parents: 0001, 0004\nCREATE TABLE themes (id int);\n",
    );
    host.fails_with(&["[cycle] the parents form a cycle: `0002a` -> `0004` -> `0003` -> `0002a`"]);
    host.write(
        "0002_themes.sql",
        "-- revision: 0002a\n-- parents: 0001\nCREATE TABLE themes (id int);\n",
    );
    assert_eq!(host.run().len(), 5);

    // Without the build script the host still builds, and is told why it should have one.
    std::fs::remove_file(host.dir.join("build.rs")).unwrap();
    // Changed source, so cargo compiles it again even if an identical crate was built before.
    let main = std::fs::read_to_string(host.dir.join("src/main.rs")).unwrap();
    std::fs::write(
        host.dir.join("src/main.rs"),
        format!("{main}// without build.rs\n"),
    )
    .unwrap();
    let build = host.build();
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains("[missing-build-script] this crate has no build.rs, so adding or removing a file in migrations will not rebuild it"),
        "{}",
        build.stderr
    );

    // A lint finding fails the build; lowered to a warning it shows in cargo's output and the
    // build passes.
    std::fs::write(
        host.dir.join("build.rs"),
        "fn main() { println!(\"cargo:rerun-if-changed=migrations\"); }\n",
    )
    .unwrap();
    host.write("0005_rename.sql", "-- revision: 0005\n-- parents: 0004\nALTER TABLE profiles RENAME COLUMN id TO profile_id;\n");
    host.fails_with(&["migrations/0005_rename.sql:3:1: [renaming-column] renaming a column of `profiles` breaks every query of the previous release"]);
    let main = std::fs::read_to_string(host.dir.join("src/main.rs")).unwrap();
    std::fs::write(
        host.dir.join("src/main.rs"),
        main.replace(
            "embed_migrations!(\"migrations\")",
            "embed_migrations!(\"migrations\", warn = [\"renaming-column\"])",
        ),
    )
    .unwrap();
    let build = host.build();
    assert!(build.success, "{}", build.stderr);
    assert!(
        build.stderr.contains("warning: use of deprecated constant"),
        "{}",
        build.stderr
    );
    assert!(
        build
            .stderr
            .contains("migrations/0005_rename.sql:3:1: [renaming-column]"),
        "{}",
        build.stderr
    );
}
