//! `scripts/bench`: generates the migration sets, then measures `migrate` and refinery side by
//! side on one throwaway PostgreSQL and prints a markdown table per measure (min / median / max
//! over the runs). `driver generate` writes the sets; `driver run` measures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_harness::{Cluster, ClusterOptions};

const RUNS: usize = 5;
/// A start takes a few milliseconds, and the figure that matters is a ratio of a few per cent:
/// a hundred runs of each keep the medians' noise below it.
const STARTUP_RUNS: usize = 100;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
}

/// Writes a set of migrations, leaving the files that already hold the right text untouched:
/// a set written again unchanged does not make cargo rebuild the host that embeds it.
fn write_set(dir: &Path, count: usize, refinery: bool, body: impl Fn(usize) -> String) {
    std::fs::create_dir_all(dir).expect("create a set directory");
    let mut names = std::collections::BTreeSet::new();
    for i in 0..count {
        let (name, text) = if refinery {
            (format!("V{}__step.sql", i + 1), body(i))
        } else {
            let parents = if i == 0 { "none".to_owned() } else { format!("r{:04}", i - 1) };
            (format!("{i:04}_step.sql"), format!("-- revision: r{i:04}\n-- parents: {parents}\n{}", body(i)))
        };
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).expect("write a migration");
        }
        names.insert(name);
    }
    for entry in std::fs::read_dir(dir).expect("list a set directory").flatten() {
        if !names.contains(entry.file_name().to_string_lossy().as_ref()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn generate() {
    let sets = root().join("sets");
    let table = |i: usize| format!("CREATE TABLE bench_{i} (id bigint PRIMARY KEY, v text);\n");
    for (count, name) in [(100, "100"), (200, "200"), (500, "500"), (2000, "2000")] {
        write_set(&sets.join(format!("migrate-{name}")), count, false, table);
        write_set(&sets.join(format!("refinery-{name}")), count, true, table);
    }
    // What an application's migrations look like more often: each a table with a key to the
    // one before, an index and a few rows.
    write_set(&sets.join("migrate-app-200"), 200, false, app_migration);
    let stall = |_: usize| "ALTER TABLE stall ADD COLUMN note text;\n".to_owned();
    write_set(&sets.join("migrate-stall"), 1, false, stall);
    write_set(&sets.join("refinery-stall"), 1, true, stall);
    for (files, name, profile) in [
        (10, "compile-10", ""),
        (1000, "compile-1000", ""),
        // The setting the README recommends for hosts with many migrations: the macro and the
        // SQL parser it runs built with optimizations, the host itself as usual.
        (1000, "compile-1000-optimized-macros", "\n[profile.dev.build-override]\nopt-level = 3\n"),
    ] {
        let dir = root().join(name);
        write_set(&dir.join("migrations"), files, false, |i| {
            format!("CREATE TABLE c_{i} (id bigint PRIMARY KEY, v text);\nCREATE INDEX c_{i}_v ON c_{i} (v);\n")
        });
        std::fs::create_dir_all(dir.join("src")).expect("create src");
        let migrate_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace path");
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nmigrate = {{ path = {:?}, default-features = false }}\n\n[workspace]\n{profile}",
                migrate_path.display().to_string()
            ),
        )
        .expect("write Cargo.toml");
        std::fs::write(dir.join("build.rs"), "fn main() { println!(\"cargo:rerun-if-changed=migrations\"); }\n").expect("write build.rs");
        std::fs::write(
            dir.join("src/main.rs"),
            "static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(\"migrations\");\nfn main() { println!(\"{}\", MIGRATIONS.len()); }\n",
        )
        .expect("write main.rs");
        let _ = std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"), dir.join("Cargo.lock"));
    }
    test_database_crate(&sets);
    println!("bench: sets written under {}", sets.display());
}

/// Migration `i` of the application-like set.
fn app_migration(i: usize) -> String {
    let reference = if i == 0 { String::new() } else { format!(" REFERENCES app_{} (id)", i - 1) };
    format!(
        "CREATE TABLE app_{i} (id bigint PRIMARY KEY, parent_id bigint{reference}, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\nCREATE INDEX app_{i}_name ON app_{i} (name);\nINSERT INTO app_{i} (id, name) SELECT g, 'ligne ' || g FROM generate_series(1, 50) g;\n"
    )
}

/// How many tests each way of getting a test database runs.
const TESTS: usize = 100;

/// The crate that times test databases three ways on the 200-migration set: `#[migrate::test]`
/// (a copy of a template), a database migrated for each test with `Migrator`, and sqlx 0.8's
/// `#[sqlx::test]` (which migrates each one). Each test inserts a row and reads it back.
fn test_database_crate(sets: &Path) {
    // sqlx reads `<version>_<description>.sql`, versions from 1; the same statements.
    for (name, body) in [
        ("sqlx-200", &(|i: usize| format!("CREATE TABLE bench_{i} (id bigint PRIMARY KEY, v text);\n")) as &dyn Fn(usize) -> String),
        ("sqlx-app-200", &app_migration),
    ] {
        let set = sets.join(name);
        std::fs::create_dir_all(&set).expect("create a sqlx set");
        for i in 0..200 {
            let path = set.join(format!("{:04}_step.sql", i + 1));
            let text = body(i);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                std::fs::write(path, text).expect("write a sqlx migration");
            }
        }
    }
    let dir = root().join("testdb");
    std::fs::create_dir_all(dir.join("tests")).expect("create the test crate");
    let migrate_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace path");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"testdb-bench\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nmigrate = {{ path = {:?}, features = [\"testing\", \"tokio\"] }}\nsqlx = {{ version = \"~0.8\", default-features = false, features = [\"runtime-tokio\", \"postgres\", \"migrate\", \"macros\"] }}\ntokio = {{ version = \"1\", features = [\"rt\", \"macros\"] }}\npostgres = \"0.19\"\n\n[workspace]\n",
            migrate_path.display().to_string()
        ),
    )
    .expect("write Cargo.toml");
    std::fs::create_dir_all(dir.join("src")).expect("create src");
    std::fs::write(dir.join("src/lib.rs"), "").expect("write lib.rs");
    let tests = |make: &dyn Fn(usize) -> String| (0..TESTS).map(make).collect::<Vec<_>>().join("\n");
    for (suffix, migrate_set, sqlx_set, table, column) in [("", "migrate-200", "sqlx-200", "bench_0", "v"), ("_app", "migrate-app-200", "sqlx-app-200", "app_0", "name")] {
        let embed = format!("static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(\"../sets/{migrate_set}\");\n");
        let work = format!("INSERT INTO {table} (id, {column}) VALUES (100000, 'x')");
        let read = format!("SELECT id FROM {table} WHERE id = 100000");
        std::fs::write(
            dir.join(format!("tests/migrate_clone{suffix}.rs")),
            format!(
                "{embed}\n{}",
                tests(&|i| format!(
                    "#[migrate::test(MIGRATIONS)]\nfn t{i:03}(db: migrate::testing::TestDatabase) {{\n    let mut c = db.client().unwrap();\n    c.batch_execute(\"{work}\").unwrap();\n    assert_eq!(c.query(\"{read}\", &[]).unwrap().len(), 1);\n}}\n"
                ))
            ),
        )
        .expect("write migrate_clone.rs");
        std::fs::write(
            dir.join(format!("tests/migrate_each{suffix}.rs")),
            format!(
                "{embed}\nfn fresh(name: &str) {{\n    let server = std::env::var(\"DATABASE_URL\").unwrap();\n    let mut admin = postgres::Client::connect(&server, postgres::NoTls).unwrap();\n    let db = format!(\"each_{{}}_{{name}}\", std::process::id());\n    admin.batch_execute(&format!(\"CREATE DATABASE {{db}}\")).unwrap();\n    let url = format!(\"{{}}/{{db}}\", server.rsplit_once('/').unwrap().0);\n    let _ = migrate::Migrator::new(&MIGRATIONS).run_url(&url).unwrap();\n    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();\n    c.batch_execute(\"{work}\").unwrap();\n    assert_eq!(c.query(\"{read}\", &[]).unwrap().len(), 1);\n    drop(c);\n    admin.batch_execute(&format!(\"DROP DATABASE {{db}} WITH (FORCE)\")).unwrap();\n}}\n\n{}",
                tests(&|i| format!("#[test]\nfn t{i:03}() {{\n    fresh(\"t{i:03}\");\n}}\n"))
            ),
        )
        .expect("write migrate_each.rs");
        std::fs::write(
            dir.join(format!("tests/sqlx_test{suffix}.rs")),
            tests(&|i| format!(
                "#[sqlx::test(migrations = \"../sets/{sqlx_set}\")]\nasync fn t{i:03}(pool: sqlx::PgPool) {{\n    sqlx::query(\"{work}\").execute(&pool).await.unwrap();\n    assert_eq!(sqlx::query(\"{read}\").fetch_all(&pool).await.unwrap().len(), 1);\n}}\n"
            )),
        )
        .expect("write sqlx_test.rs");
    }
    // The tests read their sets at compile time: a build script makes cargo follow them.
    std::fs::write(dir.join("build.rs"), "fn main() {\n    for set in [\"migrate-200\", \"migrate-app-200\"] {\n        println!(\"cargo:rerun-if-changed=../sets/{set}\");\n    }\n}\n").expect("write build.rs");
}

/// The test binaries of the test-database crate, by test file: built once, then run directly.
fn test_binaries() -> Vec<(String, PathBuf)> {
    let out = Command::new("cargo")
        .args(["test", "--quiet", "--release", "--no-run", "--message-format=json", "--manifest-path"])
        .arg(root().join("testdb/Cargo.toml"))
        .output()
        .expect("build the test crate");
    assert!(out.status.success(), "the test-database crate did not build: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["profile"]["test"] == true)
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            Some((name, PathBuf::from(message["executable"].as_str()?)))
        })
        .collect()
}

/// One test file of the test-database crate run on one thread: the seconds from its start to
/// its exit, so that what a process finishes before it exits (background drops) counts.
fn run_test_file(binaries: &[(String, PathBuf)], url: &str, file: &str) -> f64 {
    let binary = &binaries.iter().find(|(name, _)| name == file).expect("a test binary per file").1;
    let started = Instant::now();
    let out = Command::new(binary)
        .args(["--test-threads", "1", "--quiet"])
        .env("DATABASE_URL", url)
        .env("MIGRATE_TEST_DATABASE_URL", url)
        .output()
        .expect("run the test binary");
    let took = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{file}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    took
}

fn test_databases(cluster: &Cluster) {
    let url = cluster.url("postgres");
    let binaries = test_binaries();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let per_test = |seconds: f64| seconds * 1000.0 / TESTS as f64;
    // `BENCH_TESTDB_RUNS`: fewer runs (each is 400 tests).
    let runs = std::env::var("BENCH_TESTDB_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(RUNS);
    // `BENCH_TESTDB_SET=plain` or `app`: one of the two sets.
    let only = std::env::var("BENCH_TESTDB_SET").unwrap_or_default();
    for (suffix, set) in [
        ("", "200 migrations, each a table"),
        ("_app", "200 migrations, each a table with a key to the one before, an index and 50 rows"),
    ]
    .into_iter()
    .filter(|(suffix, _)| only.is_empty() || (only == "app") == (*suffix == "_app"))
    {
        header(&format!("Test databases: {TESTS} tests, one thread, {runs} runs, on {set}; time per test"));
        let (mut cold, mut warm, mut each, mut sqlx) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            // The first run of a set builds its template: once, then every later run copies it.
            for row in admin.query("SELECT datname FROM pg_database WHERE starts_with(datname, 'migrate_tpl_')", &[]).expect("list templates") {
                let name: String = row.get(0);
                admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).expect("drop a template");
            }
            cold.push(per_test(run_test_file(&binaries, &url, &format!("migrate_clone{suffix}"))));
            warm.push(per_test(run_test_file(&binaries, &url, &format!("migrate_clone{suffix}"))));
            each.push(per_test(run_test_file(&binaries, &url, &format!("migrate_each{suffix}"))));
            sqlx.push(per_test(run_test_file(&binaries, &url, &format!("sqlx_test{suffix}"))));
        }
        row("`#[migrate::test]`: a copy of the template (built by the run's first test)", cold, "ms");
        row("`#[migrate::test]`: a copy of the template (already built)", warm, "ms");
        row("a database migrated for each test (`Migrator::run_url`)", each, "ms");
        row("sqlx 0.8 `#[sqlx::test]` (migrates each test's database)", sqlx, "ms");
    }
}

fn stats(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

fn row(label: &str, values: Vec<f64>, unit: &str) {
    let (min, median, max) = stats(values);
    println!("| {label} | {min:.2} {unit} | {median:.2} {unit} | {max:.2} {unit} |");
}

fn header(title: &str) {
    println!("\n### {title}\n\n| | min | median | max |\n|---|---|---|---|");
}

fn host() -> PathBuf {
    std::env::current_exe().expect("current exe").with_file_name("host")
}

fn run_host(tool: &str, set: &str, url: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new(host()).args([tool, set, url]).output().expect("run the host");
    let took = started.elapsed();
    assert!(out.status.success(), "{tool} {set} failed: {}", String::from_utf8_lossy(&out.stderr));
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Statements and executes the server logged for `app` since `from` bytes into its log.
fn round_trips(cluster: &Cluster, from: u64, app: &str) -> usize {
    let log = std::fs::read_to_string(cluster.dir().join("server.log")).unwrap_or_default();
    let prefix = format!("{app}|");
    log.get(from as usize..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with(&prefix) && (l.contains("LOG:  statement: ") || l.contains("LOG:  execute ")))
        .count()
}

fn log_size(cluster: &Cluster) -> u64 {
    std::fs::metadata(cluster.dir().join("server.log")).map(|m| m.len()).unwrap_or(0)
}

/// The runners measured, as (label, host tool, whether the URL asks for no TLS, application
/// name). Every runner but `migrate, sslmode=prefer` connects without TLS: refinery and the floor
/// with `NoTls`, migrate with `sslmode=disable`. The prefer row shows what the default costs when
/// the server offers no TLS: one more round trip (SSLRequest) before the login.
const STARTUP_RUNNERS: [(&str, &str, bool, &str); 6] = [
    ("migrate", "migrate", true, "bench-migrate"),
    ("migrate::startup", "migrate-startup", true, "bench-migrate"),
    ("migrate-async", "migrate-async", true, "bench-migrate"),
    ("migrate, sslmode=prefer", "migrate", false, "bench-migrate"),
    ("refinery", "refinery", false, "bench-refinery"),
    ("floor", "floor", false, "bench-floor"),
];

fn runner_url(base: &str, no_tls: bool) -> String {
    if no_tls { format!("{base}?sslmode=disable") } else { base.to_owned() }
}

fn startup(cluster: &Cluster) {
    header("1. Startup when up to date: 200 embedded migrations, all applied (process start to exit)");
    let dbs: Vec<_> = STARTUP_RUNNERS
        .iter()
        .map(|(_, tool, no_tls, _)| {
            let db = cluster.create_database();
            let url = runner_url(db.url(), *no_tls);
            // The floor's database gets the same history, applied by migrate.
            if *tool == "floor" {
                run_host("migrate", "200", db.url());
            } else {
                run_host(tool, "200", &url);
            }
            // One warm-up run of each.
            run_host(tool, "200", &url);
            (db, url)
        })
        .collect();
    // The runners take turns, so that the machine's changes of speed from one minute to the
    // next fall on all of them alike.
    let mut times: Vec<Vec<f64>> = STARTUP_RUNNERS.iter().map(|_| Vec::new()).collect();
    for _ in 0..STARTUP_RUNS {
        for (i, (_, tool, _, _)) in STARTUP_RUNNERS.iter().enumerate() {
            times[i].push(ms(run_host(tool, "200", &dbs[i].1)));
        }
    }
    let mut medians = Vec::new();
    let mut trips = Vec::new();
    for (i, (label, tool, _, app)) in STARTUP_RUNNERS.iter().enumerate() {
        medians.push((*label, stats(times[i].clone()).1));
        row(label, times[i].clone(), "ms");
        // Statements are logged for this one run only: logging every statement costs a runner
        // per byte of SQL it sends, which the timed runs should not pay.
        dbs[i].0.client().batch_execute(&format!("ALTER DATABASE \"{}\" SET log_statement = 'all'", dbs[i].0.name())).expect("log statements");
        let before = log_size(cluster);
        run_host(tool, "200", &dbs[i].1);
        std::thread::sleep(Duration::from_millis(200));
        trips.push((*label, round_trips(cluster, before, app)));
    }
    println!();
    let floor = medians.iter().find(|(label, _)| *label == "floor").map_or(f64::NAN, |m| m.1);
    let refinery = medians.iter().find(|(label, _)| *label == "refinery").map_or(f64::NAN, |m| m.1);
    for (label, median) in &medians {
        println!("- {label}: {:.3}× the floor, {:.3}× refinery (median)", median / floor, median / refinery);
    }
    for (label, count) in trips {
        println!("- {label}: {count} statements sent when up to date (server log, log_statement = all)");
    }
}

fn apply(cluster: &Cluster) {
    println!("\n### 2. Apply N small migrations (one CREATE TABLE each) to a fresh database, process start to exit\n");
    println!("| N | runner | min | median | max | median per migration | median vs refinery |\n|---|---|---|---|---|---|---|");
    // refinery by default (a transaction per migration) is what the ratios compare with. The
    // other rows show each side's other mode: refinery with every migration in one transaction
    // (`set_grouped`), and migrate with a transaction per migration (`group_limit(1)`), which
    // is what its protocol costs without committing migrations on new tables together.
    let runners = [("refinery", false), ("migrate", true), ("migrate-startup", true), ("migrate-async", true), ("migrate-ungrouped", true), ("refinery-grouped", false)];
    let mut per_migration = Vec::new();
    for (count, runs) in [(100, RUNS), (500, RUNS), (2000, 3)] {
        // Taking turns, as in the startup measure.
        let mut times: Vec<Vec<f64>> = runners.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (i, (tool, no_tls)) in runners.iter().enumerate() {
                let db = cluster.create_database();
                times[i].push(ms(run_host(tool, &count.to_string(), &runner_url(db.url(), *no_tls))));
            }
        }
        let refinery = stats(times[0].clone()).1;
        for (i, (tool, _)) in runners.iter().enumerate() {
            let (min, median, max) = stats(times[i].clone());
            println!(
                "| {count} | {tool} | {min:.1} ms | {median:.1} ms | {max:.1} ms | {:.3} ms | {:.2}× |",
                median / count as f64,
                median / refinery
            );
        }
        for (i, (tool, _)) in runners.iter().enumerate() {
            per_migration.push((count, *tool, stats(times[i].clone()).1 / count as f64));
        }
    }
    println!();
    for (tool, _) in runners {
        let at = |n: usize| per_migration.iter().find(|(c, t, _)| *c == n && *t == tool).map_or(f64::NAN, |p| p.2);
        println!("- {tool}: the median cost per migration at 2,000 is {:.2}× the cost at 100", at(2000) / at(100));
    }
}

/// A release build of a host that embeds 3 migrations and calls `migrate::startup`: its size,
/// and whether its dependency tree holds the SQL parser.
fn host_size() {
    let dir = root().join("size-host");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("create src");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace path");
    write_set(&dir.join("migrations"), 3, false, |i| format!("CREATE TABLE s_{i} (id bigint PRIMARY KEY);\n"));
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"size-host\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\nmigrate = {{ path = {:?} }}\n\n[workspace]\n", workspace.display().to_string()),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), "static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(\"migrations\");\nfn main() { let _ = migrate::startup(&MIGRATIONS).is_ready(); }\n").expect("write main.rs");
    let _ = std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = root().join("size-target");
    let out = Command::new(&cargo).args(["build", "--release", "--offline", "--quiet"]).current_dir(&dir).env("CARGO_TARGET_DIR", &target).output().expect("cargo build");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(target.join("release/size-host")).map(|m| m.len()).unwrap_or(0);
    let tree = Command::new(&cargo).args(["tree", "--offline", "-e", "normal,no-proc-macro", "--prefix", "none"]).current_dir(&dir).output().expect("cargo tree");
    let tree = String::from_utf8_lossy(&tree.stdout);
    let squawk = tree.lines().filter(|l| l.starts_with("squawk")).count();
    println!("\n### 6. Release size of a host that embeds 3 migrations and calls `migrate::startup`\n");
    println!("{size} bytes; squawk crates in its dependency tree (without proc-macros): {squawk}");
}

fn replicas(cluster: &Cluster) {
    header("3. Cold start on a fresh database: 8 replicas at once vs one (200 migrations, migrate)");
    for count in [1, 8] {
        let times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let db = cluster.create_database();
                let started = Instant::now();
                let children: Vec<_> = (0..count)
                    .map(|_| Command::new(host()).args(["migrate", "200", db.url()]).stdout(Stdio::null()).spawn().expect("spawn"))
                    .collect();
                for mut child in children {
                    assert!(child.wait().expect("wait").success());
                }
                ms(started.elapsed())
            })
            .collect();
        row(&format!("{count} replica(s), until all are done"), times, "ms");
    }
}

fn compile_times() {
    header("4. Incremental build of a host after editing one migration (embed_migrations! with the lint, dev profile)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for (label, name) in [
        ("10 files", "compile-10"),
        ("1000 files", "compile-1000"),
        ("1000 files, macros optimized (`[profile.dev.build-override] opt-level = 3`)", "compile-1000-optimized-macros"),
    ] {
        // Its own target directory: the two profiles build the macro differently.
        let target = root().join(format!("{name}-target"));
        let dir = root().join(name);
        let build = || {
            let started = Instant::now();
            let out = Command::new(&cargo).args(["build", "--offline", "--quiet"]).current_dir(&dir).env("CARGO_TARGET_DIR", &target).env_remove("OUT_DIR").output().expect("cargo build");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            started.elapsed()
        };
        build();
        let times: Vec<f64> = (0..RUNS)
            .map(|run| {
                let file = dir.join("migrations/0000_step.sql");
                let text = std::fs::read_to_string(&file).expect("read");
                std::fs::write(&file, format!("{text}-- edit {run}\n")).expect("edit");
                ms(build())
            })
            .collect();
        row(label, times, "ms");
    }
    let dir = root().join("compile-1000/migrations");
    let config = migrate::LintConfig::default();
    let statements = 2000.0;
    let rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let findings = migrate::lint_dir(&dir, &config);
            assert!(findings.is_empty(), "{}", findings[0]);
            statements / started.elapsed().as_secs_f64()
        })
        .collect();
    header("4b. migrate::lint_dir throughput (1,000 files, 2,000 statements, release build)");
    row("statements per second", rates, "");
}

/// Writers' max and p99 latency while the migration runs behind a 3 s reader.
fn stall_once(cluster: &Cluster, tool: &str) -> (f64, f64) {
    let db = cluster.create_database();
    db.client().batch_execute("CREATE TABLE stall (id int PRIMARY KEY, v int NOT NULL); INSERT INTO stall SELECT g, 0 FROM generate_series(1, 1000) AS g").expect("stall table");
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Vec<_> = (0..4)
        .map(|w| {
            let url = db.url().to_owned();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("writer");
                let update = client.prepare("UPDATE stall SET v = v + 1 WHERE id = $1").expect("prepare");
                let select = client.prepare("SELECT v FROM stall WHERE id = $1").expect("prepare");
                let mut out = Vec::new();
                let mut k = w * 100;
                while !stop.load(Ordering::Relaxed) {
                    k = (k + 1) % 1000;
                    let id = k as i32 + 1;
                    let t = Instant::now();
                    client.execute(&update, &[&id]).expect("update");
                    client.query(&select, &[&id]).expect("select");
                    out.push((t, t.elapsed()));
                    std::thread::sleep(Duration::from_millis(5));
                }
                out
            })
        })
        .collect();
    let holder_url = db.url().to_owned();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&holder_url, postgres::NoTls).expect("holder");
        c.batch_execute("BEGIN; SELECT count(*) FROM stall").expect("hold");
        std::thread::sleep(Duration::from_secs(3));
        c.batch_execute("COMMIT").expect("commit");
    });
    std::thread::sleep(Duration::from_millis(300));
    let window_start = Instant::now();
    run_host(tool, "stall", db.url());
    let window_end = Instant::now();
    holder.join().expect("holder");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<f64> = samples
        .into_iter()
        .flat_map(|s| s.join().expect("writer"))
        .filter(|(t, _)| *t >= window_start && *t <= window_end)
        .map(|(_, d)| ms(d))
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let max = latencies.last().copied().unwrap_or(0.0);
    let p99 = latencies.get(latencies.len().saturating_sub(1) * 99 / 100).copied().unwrap_or(0.0);
    (max, p99)
}

fn stall(cluster: &Cluster) {
    println!("\n### 5. Traffic stall: 4 writers (UPDATE + SELECT by id) while a 3 s transaction reads the table and the migration adds a column (ACCESS EXCLUSIVE)\n");
    println!("| runner | writers' max latency (min / median / max) | writers' p99 (min / median / max) |\n|---|---|---|");
    for (label, tool) in [("(a) migrate, defaults (lock_timeout 1 s + retries)", "migrate"), ("(b) migrate, lock_timeout disabled", "migrate-unguarded"), ("(c) refinery", "refinery")] {
        let runs: Vec<(f64, f64)> = (0..RUNS).map(|_| stall_once(cluster, tool)).collect();
        let (a, b, c) = stats(runs.iter().map(|r| r.0).collect());
        let (d, e, f) = stats(runs.iter().map(|r| r.1).collect());
        println!("| {label} | {a:.0} / {b:.0} / {c:.0} ms | {d:.0} / {e:.0} / {f:.0} ms |");
    }
}

/// Where the server keeps its files: in memory when the machine has a tmpfs at `/dev/shm`.
/// fsync is off either way, but on a disk the kernel's writeback of the files that thousands of
/// `CREATE TABLE`s create still stalls the server for seconds at a time, whichever runner it
/// falls on (measured in one 2,000-migration run: from 1.4 to 6.4 ms per migration from one
/// stretch of 200 to the next, against 0.9 to 1.1 ms in memory).
fn server_dir() -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    writable.then(|| shm.to_path_buf())
}

fn run() {
    let parent_dir = server_dir();
    let cluster = Cluster::start_with(ClusterOptions {
        config: vec!["log_line_prefix = '%a|'".to_owned(), "max_connections = 100".to_owned()],
        parent_dir: parent_dir.clone(),
        ..ClusterOptions::default()
    });
    println!("## migrate vs refinery 0.9 (postgres), PostgreSQL {} on this machine, {RUNS} runs each unless said", server_version(&cluster));
    println!("\nThe server's files are {}.", parent_dir.map_or_else(|| "on disk (no tmpfs at /dev/shm)".to_owned(), |d| format!("in memory, under {}", d.display())));
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if wanted("startup") {
        startup(&cluster);
    }
    if wanted("apply") {
        apply(&cluster);
    }
    if wanted("replicas") {
        replicas(&cluster);
    }
    if wanted("stall") {
        stall(&cluster);
    }
    if wanted("compile") {
        compile_times();
    }
    if wanted("size") {
        host_size();
    }
    if wanted("testdb") {
        test_databases(&cluster);
    }
}

fn server_version(cluster: &Cluster) -> String {
    let mut client = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).expect("connect");
    client.query_one("SHOW server_version", &[]).map(|r| r.get::<_, String>(0)).unwrap_or_default()
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("generate") => generate(),
        Some("run") => run(),
        _ => eprintln!("usage: driver <generate|run> (use scripts/bench)"),
    }
}
