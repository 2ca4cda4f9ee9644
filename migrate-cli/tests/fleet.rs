//! Fleets on a real server: 200 tenant schemas × 4 migrations (one built CONCURRENTLY), a tenant
//! whose table is locked failing alone within its wait budget and finished by a second run, a
//! canary stopping a migration that fails everywhere, and 20 databases.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{TempDir, stderr, stdout};
use pg_harness::{TestDatabase, test_database};

const STEPS: [(&str, &str); 4] = [
    (
        "0001_accounts",
        "-- revision: 0001\n-- parents: none\n\nCREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n",
    ),
    (
        "0002_email",
        "-- revision: 0002\n-- parents: 0001\n\nALTER TABLE accounts ADD COLUMN email text;\n",
    ),
    (
        "0003_email_index",
        "-- revision: 0003\n-- parents: 0002\n-- migrate:no-transaction\n\nCREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n",
    ),
    (
        "0004_invoices",
        "-- revision: 0004\n-- parents: 0003\n\nCREATE TABLE invoices (id bigint PRIMARY KEY, account bigint NOT NULL REFERENCES accounts (id));\n",
    ),
];

fn directory(
    root: &Path,
    name: &str,
    steps: usize,
    extra: Option<(&str, &str)>,
) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in STEPS.iter().take(steps).copied().chain(extra) {
        std::fs::write(dir.join(format!("{file}.sql")), text).unwrap();
    }
    dir
}

fn migrate(dir: &Path, args: &[&str], db: &TestDatabase, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("DATABASE_URL", db.url())
        .env_remove("MIGRATION_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `apply --each-schema listing`, which must succeed.
fn applied(dir: &Path, db: &TestDatabase, listing: &str) {
    let run = migrate(dir, &["apply", "--each-schema", listing], db, &[]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&run),
        stderr(&run)
    );
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

const TENANTS: &str = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1";

#[test]
fn two_hundred_tenant_schemas_one_locked() {
    let root = TempDir::new("fleet-schemas");
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute(
            &(0..200)
                .map(|i| format!("CREATE SCHEMA tenant_{i:03};"))
                .collect::<String>(),
        )
        .unwrap();
    // Every tenant has its accounts table; then one tenant's table is held by a long transaction.
    let first = directory(&root, "v1", 1, None);
    let once = migrate(
        &first,
        &["apply", "--each-schema", TENANTS, "--jobs", "8"],
        &db,
        &[],
    );
    assert_eq!(
        once.status.code(),
        Some(0),
        "{}{}",
        stdout(&once),
        stderr(&once)
    );
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE tenant_007.accounts IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let all = directory(&root, "v2", 4, None);
    let budget = [
        ("MIGRATE_LOCK_TIMEOUT", "100ms"),
        ("MIGRATE_WAIT_BUDGET", "2s"),
    ];
    let run = migrate(
        &all,
        &["apply", "--each-schema", TENANTS, "--jobs", "8"],
        &db,
        &budget,
    );
    println!("{}", stdout(&run).lines().last().unwrap_or_default());
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let table = stdout(&run);
    let locked = table
        .lines()
        .find(|l| l.starts_with("tenant_007 "))
        .unwrap();
    assert!(locked.contains(" failed "), "{locked}");
    assert!(
        table.lines().filter(|l| l.contains(" applied 3 ")).count() == 199,
        "{table}"
    );
    assert!(
        table.ends_with(" at a time\n")
            && table
                .contains("199 migrated, 0 up to date, 1 failed, 0 skipped, of 200 schema(s) in "),
        "{table}"
    );
    // Progress lines may come first, on a slow machine.
    assert!(
        stderr(&run).ends_with("error: 1 schema(s) failed: tenant_007\n  help: the others are done; run the command again to resume the failed ones\n"),
        "{}",
        stderr(&run)
    );
    // The tables are inside each tenant's schema, and each schema has its own history.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'invoices' AND schemaname LIKE 'tenant\\_%'"
        ),
        199
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email' AND schemaname LIKE 'tenant\\_%'"
        ),
        199
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('accounts', 'invoices', 'migrate_history')"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM tenant_042.migrate_history"),
        4
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM tenant_007.migrate_history"),
        1
    );

    // Status says which tenant is behind; once the lock is gone, a second run finishes it alone.
    let behind = migrate(
        &all,
        &["status", "--each-schema", TENANTS, "--jobs", "8"],
        &db,
        &[],
    );
    assert_eq!(behind.status.code(), Some(1), "{}", stdout(&behind));
    assert!(
        stdout(&behind).contains("tenant_007  3 pending\n"),
        "{}",
        stdout(&behind)
    );
    holder.batch_execute("ROLLBACK").unwrap();
    let again = migrate(
        &all,
        &["apply", "--each-schema", TENANTS, "--jobs", "8"],
        &db,
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again)
            .contains("1 migrated, 199 up to date, 0 failed, 0 skipped, of 200 schema(s)"),
        "{}",
        stdout(&again)
    );
    let current = migrate(&all, &["status", "--each-schema", TENANTS], &db, &[]);
    assert_eq!(current.status.code(), Some(0), "{}", stdout(&current));

    // The wall time of 200 new tenants, one at a time and eight at a time (printed for
    // BENCHMARKS.md, not asserted).
    for jobs in ["1", "8"] {
        let fresh = test_database();
        fresh
            .client()
            .batch_execute(
                &(0..200)
                    .map(|i| format!("CREATE SCHEMA tenant_{i:03};"))
                    .collect::<String>(),
            )
            .unwrap();
        let timed = migrate(
            &all,
            &["apply", "--each-schema", TENANTS, "--jobs", jobs],
            &fresh,
            &[],
        );
        assert_eq!(timed.status.code(), Some(0), "{}", stderr(&timed));
        println!("{}", stdout(&timed).lines().last().unwrap_or_default());
    }
}

#[test]
fn a_canary_that_fails_stops_the_fleet() {
    let root = TempDir::new("fleet-canary");
    let db = test_database();
    db.client()
        .batch_execute(
            &(0..20)
                .map(|i| format!("CREATE SCHEMA tenant_{i:03};"))
                .collect::<String>(),
        )
        .unwrap();
    let broken = directory(
        &root,
        "broken",
        1,
        Some((
            "0002_broken",
            "-- revision: 0002\n-- parents: 0001\n\nALTER TABLE accounts ADD COLUMN total numeric NOT NULL DEFAULT 1 / 0;\n",
        )),
    );
    let run = migrate(
        &broken,
        &[
            "apply",
            "--each-schema",
            TENANTS,
            "--jobs",
            "4",
            "--canary",
            "3",
        ],
        &db,
        &[],
    );
    assert_eq!(run.status.code(), Some(1));
    let table = stdout(&run);
    assert_eq!(
        table.lines().filter(|l| l.contains(" failed ")).count(),
        3,
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(" skipped ")).count(),
        17,
        "{table}"
    );
    assert!(
        table.contains("0 migrated, 0 up to date, 3 failed, 17 skipped, of 20 schema(s)"),
        "{table}"
    );
    assert!(
        stderr(&run).ends_with("  help: a canary failed, so no other target was attempted; fix its migration, then run the command again\n"),
        "{}",
        stderr(&run)
    );
    // Exactly the three canaries were attempted: only they have a history table.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'migrate_history' AND schemaname LIKE 'tenant\\_%'"
        ),
        3
    );
}

#[test]
fn twenty_databases() {
    let root = TempDir::new("fleet-databases");
    let db = test_database();
    let prefix = format!("fleet_{}_", std::process::id());
    let mut client = db.client();
    for i in 0..20 {
        client
            .batch_execute(&format!("CREATE DATABASE {prefix}{i:02}"))
            .unwrap();
    }
    let query =
        format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1");
    let all = directory(&root, "v", 4, None);
    let run = migrate(
        &all,
        &["apply", "--each-database", &query, "--jobs", "4"],
        &db,
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("20 migrated, 0 up to date, 0 failed, 0 skipped, of 20 database(s)"),
        "{}",
        stdout(&run)
    );
    let status = migrate(
        &all,
        &["status", "--each-database", &query, "--jobs", "4"],
        &db,
        &[],
    );
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("20 up to date, 0 pending, 0 failed, of 20 database(s)"),
        "{}",
        stdout(&status)
    );
    // Each database compared with its own replay (a shadow each, 4 at a time); one changed by
    // hand is the one named.
    let url = db.url().rsplit_once('/').unwrap().0.to_owned() + &format!("/{prefix}07");
    let mut changed = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    changed
        .batch_execute("ALTER TABLE invoices ADD COLUMN note text")
        .unwrap();
    let diff = migrate(
        &all,
        &["diff", "--each-database", &query, "--jobs", "4"],
        &db,
        &[],
    );
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let printed = stdout(&diff);
    assert!(
        printed.contains(&format!("{prefix}06  no drift\n{prefix}07  1 difference(s)\n{prefix}08  no drift\n"))
            && printed.contains("19 without drift, 1 drifting, 0 could not be compared, of 20 database(s)")
            && printed.contains(&format!("database {prefix}07:\ntable public.invoices\n  column public.invoices.note [destructive]")),
        "{printed}"
    );
    let plan = migrate(&all, &["plan", "--each-database", &query], &db, &[]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    assert!(
        stdout(&plan)
            .contains("20 up to date, 0 with pending migrations, 0 failed, of 20 database(s)"),
        "{}",
        stdout(&plan)
    );
    drop(changed);
    for i in 0..20 {
        client
            .batch_execute(&format!("DROP DATABASE {prefix}{i:02} WITH (FORCE)"))
            .unwrap();
    }
}

/// What the fleet's query and URL may hold: a database name with `%` reaches that database, a
/// name listed twice runs once, a NULL is refused, the query cannot write, a key=value URL and
/// `--jobs` without a fleet are refused before anything runs.
#[test]
fn the_fleet_query_and_url_are_read_as_written() {
    let root = TempDir::new("fleet-edges");
    let db = test_database();
    let all = directory(&root, "v", 2, None);
    let mut client = db.client();
    let prefix = format!("fe{}", std::process::id());
    for name in [format!("{prefix}%41"), format!("{prefix}A")] {
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
    }
    let listed = format!("SELECT unnest(ARRAY['{prefix}%41', '{prefix}A', '{prefix}%41'])");
    let run = migrate(&all, &["apply", "--each-database", &listed], &db, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("2 migrated, 0 up to date, 0 failed, 0 skipped, of 2 database(s)"),
        "{}",
        stdout(&run)
    );
    for name in [format!("{prefix}%41"), format!("{prefix}A")] {
        let url = db.url().rsplit_once('/').unwrap().0.to_owned() + "/" + &name.replace('%', "%25");
        let rows: i64 = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap()
            .query_one("SELECT count(*) FROM migrate_history", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 2, "{name}");
    }
    for name in [format!("{prefix}%41"), format!("{prefix}A")] {
        client
            .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .unwrap();
    }

    let null = migrate(
        &all,
        &["apply", "--each-schema", "SELECT unnest(ARRAY['t1', NULL])"],
        &db,
        &[],
    );
    assert_eq!(null.status.code(), Some(2));
    assert!(
        stderr(&null).contains("row 2 names no target (NULL or empty)"),
        "{}",
        stderr(&null)
    );
    let writes = migrate(
        &all,
        &[
            "status",
            "--each-schema",
            "CREATE TABLE public.leak (x int)",
        ],
        &db,
        &[],
    );
    assert_eq!(writes.status.code(), Some(2));
    assert!(
        stderr(&writes).contains("read-only transaction"),
        "{}",
        stderr(&writes)
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'leak'"
        ),
        0
    );
    let keywords = migrate(
        &all,
        &[
            "apply",
            "--each-database",
            "SELECT 'x'",
            "--database-url",
            "host=127.0.0.1 port=1 user=u password=hunter2 dbname=d",
        ],
        &db,
        &[],
    );
    assert_eq!(keywords.status.code(), Some(2));
    assert_eq!(
        stderr(&keywords),
        "error: --each-database reaches each database through a postgres:// URL, with the database's name in its path\n  help: write the database URL as postgres://user@host:port/database\n"
    );
    let alone = migrate(&all, &["apply", "--jobs", "4"], &db, &[]);
    assert_eq!(alone.status.code(), Some(2));
    assert_eq!(
        stderr(&alone),
        "error: --jobs and --canary go with --each-schema or --each-database\n  help: name the fleet's targets with one of them\n"
    );
}

/// Under `--each-schema`, a name written with its schema is a warning, or an error when
/// `migrate.toml` says so (then `apply` refuses it); `"off"` silences it, and without fan-out it
/// is no finding. An allow with its reason keeps a deliberately shared object.
#[test]
fn a_name_with_its_schema_is_a_finding_under_each_schema() {
    let root = TempDir::new("fleet-qualified");
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute("CREATE SCHEMA mandant_a; CREATE SCHEMA mandant_b")
        .unwrap();
    let listing = "SELECT unnest(ARRAY['mandant_a', 'mandant_b'])";
    let dir = directory(
        &root,
        "qualified",
        1,
        Some((
            "0002_registre",
            "-- revision: 0002\n-- parents: 0001\n\nCREATE TABLE public.kunden_übersicht (id bigint);\n",
        )),
    );
    let finding = |level: &str| {
        format!(
            "{level}: {}/0002_registre.sql:4:1: [schema-qualified-name] `public.kunden_übersicht` names its schema: run on every tenant schema, each tenant's run reaches the same object instead of its own\n  = help: leave the name unqualified, so that it resolves in the tenant's schema (first in `search_path` while its migrations run)\n          (to accept it here, put `-- migrate:allow schema-qualified-name: <reason>` directly above the statement)\n",
            dir.display()
        )
    };
    // By default a warning: status reports it and goes on (every tenant has 2 pending).
    let run = migrate(&dir, &["status", "--each-schema", listing], &db, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert_eq!(stderr(&run), finding("warning"));

    // Asked for as an error: apply refuses the directory, nothing is created.
    std::fs::write(
        dir.join("migrate.toml"),
        "[rules]\nschema-qualified-name = \"error\"\n",
    )
    .unwrap();
    let run = migrate(&dir, &["apply", "--each-schema", listing], &db, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert_eq!(
        stderr(&run),
        format!(
            "{}error: {} does not pass the checks `embed_migrations!` makes; nothing was done\n  help: fix the findings above (`migrate check` lists them)\n",
            finding("error"),
            dir.display()
        )
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'migrate_history'"
        ),
        0
    );
    // Silenced.
    std::fs::write(
        dir.join("migrate.toml"),
        "[rules]\nschema-qualified-name = \"off\"\n",
    )
    .unwrap();
    let run = migrate(&dir, &["status", "--each-schema", listing], &db, &[]);
    assert_eq!((run.status.code(), stderr(&run)), (Some(1), String::new()));

    // One database, no fan-out: the same directory applies, with no finding.
    std::fs::remove_file(dir.join("migrate.toml")).unwrap();
    let plain = migrate(&dir, &["apply"], &db, &[]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert_eq!(stderr(&plain), "");

    // Shared on purpose, and said so: no finding, and each tenant's run keeps the one table.
    std::fs::write(
        dir.join("migrate.toml"),
        "[rules]\nschema-qualified-name = \"error\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("0002_registre.sql"),
        "-- revision: 0002\n-- parents: 0001\n\n-- migrate:allow schema-qualified-name: one registry for every tenant\nCREATE TABLE IF NOT EXISTS public.kunden_übersicht (id bigint);\n",
    )
    .unwrap();
    client
        .batch_execute(
            "DROP TABLE public.kunden_übersicht, public.accounts, public.migrate_history",
        )
        .unwrap();
    let run = migrate(&dir, &["apply", "--each-schema", listing], &db, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'accounts' AND schemaname LIKE 'mandant_%'"
        ),
        2
    );
}

/// `plan` and `diff` over every tenant schema: each tenant's pending migrations, one plan per
/// distinct set; each tenant compared alone with its migrations replayed into a schema of its
/// name (a table in `public` is no tenant's drift), the drifting one named with its report.
#[test]
fn plan_and_diff_each_tenant_schema() {
    let root = TempDir::new("fleet-plan-diff");
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute("CREATE SCHEMA m_a; CREATE SCHEMA m_b; CREATE SCHEMA \"m_ü\"; CREATE TABLE public.stray (id int)")
        .unwrap();
    let listing = "SELECT unnest(ARRAY['m_a', 'm_b', 'm_ü'])";
    let three = directory(&root, "three", 3, None);
    let run = migrate(
        &three,
        &["apply", "--each-schema", "SELECT 'm_a'"],
        &db,
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let all = directory(&root, "all", 4, None);

    let plan = migrate(
        &all,
        &["plan", "--each-schema", listing, "--jobs", "2"],
        &db,
        &[],
    );
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&plan),
        stderr(&plan)
    );
    let printed = stdout(&plan);
    assert!(
        printed.starts_with(
            "schema  would run\nm_a     0004\nm_b     0001, 0002, 0003, 0004\nm_ü     0001, 0002, 0003, 0004\n\
             0 up to date, 3 with pending migrations, 0 failed, of 3 schema(s)\n\
             \non m_a (1 schema(s)):\n0004 "
        ),
        "{printed}"
    );
    assert!(
        printed.contains("\non m_b, m_ü (2 schema(s)):\n0001 ")
            && printed.contains("CREATE INDEX CONCURRENTLY"),
        "{printed}"
    );

    // What has not run is not compared, and said so.
    let early = migrate(&all, &["diff", "--each-schema", "SELECT 'm_a'"], &db, &[]);
    assert_eq!(early.status.code(), Some(0), "{}", stderr(&early));
    assert!(
        stdout(&early).contains("m_a     no drift (1 pending, not compared)\n"),
        "{}",
        stdout(&early)
    );

    // Each tenant comments its own table; the database has an extension of its own, which is
    // no tenant's.
    let all = directory(
        &root,
        "commented",
        4,
        Some((
            "0005_comment",
            "-- revision: 0005\n-- parents: 0004\n\nCOMMENT ON TABLE accounts IS 'les comptes du locataire';\n",
        )),
    );
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        .unwrap();
    let run = migrate(&all, &["apply", "--each-schema", listing], &db, &[]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let diff = migrate(
        &all,
        &["diff", "--each-schema", listing, "--jobs", "2"],
        &db,
        &[],
    );
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&diff),
        stderr(&diff)
    );
    assert_eq!(
        stdout(&diff),
        "schema  drift\nm_a     no drift\nm_b     no drift\nm_ü     no drift\n3 without drift, 0 drifting, 0 could not be compared, of 3 schema(s)\n"
    );

    // One tenant's schema changed by hand.
    client
        .batch_execute("ALTER TABLE m_b.accounts DROP COLUMN email")
        .unwrap();
    let diff = migrate(&all, &["diff", "--each-schema", listing], &db, &[]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let printed = stdout(&diff);
    assert!(
        printed.starts_with(
            "schema  drift\nm_a     no drift\nm_b     2 difference(s)\nm_ü     no drift\n\
             2 without drift, 1 drifting, 0 could not be compared, of 3 schema(s)\n\nschema m_b:\ntable m_b.accounts\n  column m_b.accounts.email [safe]: migrations build text; the database has (absent)\n  index m_b.accounts.accounts_email [safe]"
        ),
        "{printed}"
    );
    let json = migrate(
        &all,
        &["diff", "--each-schema", listing, "--json"],
        &db,
        &[],
    );
    assert_eq!(json.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let statuses: Vec<(&str, &str)> = value["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["target"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [("m_a", "clean"), ("m_b", "drift"), ("m_ü", "clean")]
    );

    // What makes no sense for a fleet is refused, before anything is read.
    let write = migrate(
        &all,
        &["diff", "--each-schema", listing, "--write", "fix.sql"],
        &db,
        &[],
    );
    assert_eq!(write.status.code(), Some(2));
    assert_eq!(
        stderr(&write),
        "error: --write takes one database's drift: with --each-schema or --each-database each target may differ in its own way\n  help: for a database of the fleet, run `migrate diff --write` with --database-url naming it; a tenant schema's drift is mended by a migration all tenants run\n"
    );
    let canary = migrate(
        &all,
        &["plan", "--each-schema", listing, "--canary", "1"],
        &db,
        &[],
    );
    assert_eq!(canary.status.code(), Some(2));
    assert_eq!(
        stderr(&canary),
        "error: --canary goes with apply: the other commands change nothing\n  help: leave --canary out\n"
    );
}

/// A tenant's migrations use what the database has beside its schemas: extensions installed in
/// `public` by whoever set the database up (`uuid_generate_v4()`, `citext`), and the tables and
/// functions all tenants share there (`REFERENCES plans`, `DEFAULT code_pays()`). Each tenant's
/// diff replays its migrations with them. An extension the checking role cannot create in its
/// shadow (`dblink`, for superusers only), or a shared view over one tenant's table, is no
/// obstacle when no migration needs it.
#[test]
fn a_tenants_diff_replays_with_what_the_tenants_share() {
    let root = TempDir::new("fleet-diff-extensions");
    let db = test_database();
    let role = format!("{}_verifier", db.name());
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "CREATE EXTENSION \"uuid-ossp\"; CREATE EXTENSION citext; CREATE EXTENSION dblink; \
             CREATE SCHEMA kunde_1; CREATE SCHEMA \"kunde_ä\"; \
             CREATE TABLE plans (id int PRIMARY KEY, nom text NOT NULL); \
             CREATE FUNCTION code_pays() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'FR' $$; \
             CREATE ROLE \"{role}\" LOGIN CREATEDB"
        ))
        .unwrap();
    let dir = root.join("extensions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_profiles.sql"),
        "-- revision: 0001\n-- parents: none\n\n\
         CREATE TABLE profils (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), courriel citext NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("0002_plan.sql"),
        "-- revision: 0002\n-- parents: 0001\n\n\
         ALTER TABLE profils ADD COLUMN plan int, ADD COLUMN pays text DEFAULT code_pays(), ADD CONSTRAINT profils_plan FOREIGN KEY (plan) REFERENCES plans (id) NOT VALID;\n",
    )
    .unwrap();
    let listing = "SELECT unnest(ARRAY['kunde_1', 'kunde_ä'])";
    applied(&dir, &db, listing);
    client
        .batch_execute(&format!(
            "CREATE VIEW tous_les_profils AS SELECT id FROM kunde_1.profils; \
             GRANT USAGE ON SCHEMA kunde_1, \"kunde_ä\" TO \"{role}\"; \
             GRANT SELECT ON kunde_1.migrate_history, \"kunde_ä\".migrate_history TO \"{role}\""
        ))
        .unwrap();
    let verifier_url = db.url().replacen("postgres@", &format!("{role}@"), 1);
    let diff = migrate(
        &dir,
        &["diff", "--each-schema", listing],
        &db,
        &[("DATABASE_URL", &verifier_url)],
    );
    let printed = (stdout(&diff), stderr(&diff));
    client
        .batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .unwrap();
    assert_eq!(diff.status.code(), Some(0), "{printed:?}");
    assert_eq!(
        printed.0,
        "schema   drift\nkunde_1  no drift\nkunde_ä  no drift\n2 without drift, 0 drifting, 0 could not be compared, of 2 schema(s)\n"
    );
}

/// What a tenant's migrations make themselves is not given to its shadow first: an extension a
/// migration creates (without IF NOT EXISTS), one a migration updates to a version the database
/// has since left. What they take from `public` is given, in an order that works: a table whose
/// default calls a function made after it, a domain checked by a function, an operator class of
/// an extension installed in `pg_catalog`. What the shadow cannot be given is named, with the
/// server's reason and what to do.
#[test]
fn a_tenants_diff_is_given_what_it_lacks_and_nothing_it_makes() {
    let root = TempDir::new("fleet-diff-lacks");
    let write = |dir: &Path, files: &[(&str, &str)]| {
        std::fs::create_dir_all(dir).unwrap();
        for (name, body) in files {
            std::fs::write(dir.join(name), body).unwrap();
        }
    };
    let diff = |dir: &Path, db: &TestDatabase, listing: &str, env: &[(&str, &str)]| {
        migrate(dir, &["diff", "--each-schema", listing], db, env)
    };

    // Extensions the migrations manage.
    let managed = test_database();
    managed
        .client()
        .batch_execute("CREATE SCHEMA seul")
        .unwrap();
    let dir = root.join("managed");
    write(
        &dir,
        &[
            (
                "0001_extensions.sql",
                "-- revision: 0001\n-- parents: none\n\nCREATE EXTENSION citext;\n\
                 CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public VERSION '1.4';\n\
                 CREATE TABLE fiches (id int PRIMARY KEY, courriel citext, attributs hstore);\n",
            ),
            (
                "0002_hstore.sql",
                "-- revision: 0002\n-- parents: 0001\n\nALTER EXTENSION hstore UPDATE TO '1.5';\n",
            ),
        ],
    );
    applied(&dir, &managed, "SELECT 'seul'");
    managed
        .client()
        .batch_execute("ALTER EXTENSION hstore UPDATE")
        .unwrap();
    let checked = diff(&dir, &managed, "SELECT 'seul'", &[]);
    assert_eq!(
        (checked.status.code(), stdout(&checked)),
        (
            Some(0),
            "schema  drift\nseul    no drift\n1 without drift, 0 drifting, 0 could not be compared, of 1 schema(s)\n".to_owned()
        ),
        "{}",
        stderr(&checked)
    );

    // A migration that makes an extension and uses a table of public, of 300 tables more, given
    // to a shadow the caller names too, which is left empty.
    let both = test_database();
    let given = test_database();
    both.client()
        .batch_execute(
            "CREATE SCHEMA appli; CREATE TABLE plans (id int PRIMARY KEY); \
             DO $$ BEGIN FOR i IN 1..300 LOOP \
               EXECUTE format('CREATE TABLE \"grand_é%s\" (id int PRIMARY KEY, note text)', i); \
             END LOOP; END $$",
        )
        .unwrap();
    let dir = root.join("both");
    write(
        &dir,
        &[(
            "0001_fiches.sql",
            "-- revision: 0001\n-- parents: none\n\nCREATE EXTENSION citext;\n\
             CREATE TABLE fiches (id int PRIMARY KEY, plan int REFERENCES plans (id), courriel citext);\n",
        )],
    );
    applied(&dir, &both, "SELECT 'appli'");
    for shadow in [None, Some(given.url())] {
        let mut args = vec!["diff", "--each-schema", "SELECT 'appli'"];
        args.extend(shadow.iter().flat_map(|url| ["--shadow-url", *url]));
        let checked = migrate(&dir, &args, &both, &[]);
        assert_eq!(
            (checked.status.code(), stdout(&checked)),
            (
                Some(0),
                "schema  drift\nappli   no drift\n1 without drift, 0 drifting, 0 could not be compared, of 1 schema(s)\n".to_owned()
            ),
            "{}",
            stderr(&checked)
        );
    }
    let left: i64 = given
        .client()
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the given shadow was not emptied");

    // What the tenants take from public, created there in an order of its own.
    let shared = test_database();
    shared
        .client()
        .batch_execute(
            "CREATE SCHEMA mandant_1; CREATE SCHEMA \"mandant_ß\"; \
             CREATE EXTENSION pg_trgm WITH SCHEMA pg_catalog; \
             CREATE TABLE plans (id int PRIMARY KEY, code text); \
             CREATE FUNCTION gen_code() RETURNS text LANGUAGE sql AS $$ SELECT 'X' $$; \
             ALTER TABLE plans ALTER COLUMN code SET DEFAULT gen_code(); \
             CREATE FUNCTION code_valide(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT length($1) = 2 $$; \
             CREATE DOMAIN pays AS text CHECK (code_valide(VALUE))",
        )
        .unwrap();
    let dir = root.join("shared");
    write(
        &dir,
        &[(
            "0001_comptes.sql",
            "-- revision: 0001\n-- parents: none\n\n\
             CREATE TABLE comptes (id bigint PRIMARY KEY, plan int REFERENCES plans (id), pays pays, nom text);\n\
             CREATE INDEX comptes_nom ON comptes USING gin (nom gin_trgm_ops);\n",
        )],
    );
    let listing = "SELECT unnest(ARRAY['mandant_1', 'mandant_ß'])";
    applied(&dir, &shared, listing);
    let checked = diff(&dir, &shared, listing, &[]);
    assert_eq!(
        (checked.status.code(), stdout(&checked)),
        (
            Some(0),
            "schema     drift\nmandant_1  no drift\nmandant_ß  no drift\n2 without drift, 0 drifting, 0 could not be compared, of 2 schema(s)\n".to_owned()
        ),
        "{}",
        stderr(&checked)
    );

    // A migration that needs what the checking role may not create.
    let refused = test_database();
    let role = format!("{}_verifier", refused.name());
    refused
        .client()
        .batch_execute(&format!(
            "CREATE SCHEMA kunde; CREATE EXTENSION dblink; CREATE ROLE \"{role}\" LOGIN CREATEDB"
        ))
        .unwrap();
    let dir = root.join("refused");
    write(
        &dir,
        &[(
            "0001_verbindungen.sql",
            "-- revision: 0001\n-- parents: none\n\nCREATE VIEW verbindungen AS SELECT dblink_get_connections() AS namen;\n",
        )],
    );
    applied(&dir, &refused, "SELECT 'kunde'");
    refused
        .client()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA kunde TO \"{role}\"; GRANT SELECT ON kunde.migrate_history TO \"{role}\""
        ))
        .unwrap();
    let url = refused.url().replacen("postgres@", &format!("{role}@"), 1);
    let checked = diff(&dir, &refused, "SELECT 'kunde'", &[("DATABASE_URL", &url)]);
    refused
        .client()
        .batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .unwrap();
    let file = dir.join("0001_verbindungen.sql");
    assert_eq!(checked.status.code(), Some(2), "{}", stdout(&checked));
    assert_eq!(
        stdout(&checked),
        format!(
            "schema  drift\nkunde   error: replaying applied revision 0001 ({}) into the shadow database failed: SQLSTATE 42883: function dblink_get_connections() does not exist\n\
             0 without drift, 0 drifting, 1 could not be compared, of 1 schema(s)\n",
            file.display()
        )
    );
    assert_eq!(
        stderr(&checked),
        format!(
            "schema kunde: replaying applied revision 0001 ({}) into the shadow database failed: SQLSTATE 42883: function dblink_get_connections() does not exist\n  \
             hint: No function matches the given name and argument types. You might need to add explicit type casts.\n  \
             the shadow was given what the database has beside the tenant's schema but for: extension dblink 1.2 (permission denied to create extension \"dblink\")\n  \
             help: the migrations no longer build what they built when they were applied, or they need one of those (an extension that is not trusted needs a superuser to run the check); fix that, then diff again\n\
             error: 1 schema(s) could not be compared: kunde\n",
            file.display()
        )
    );
}

/// A fleet's progress readings name their target: two tenants whose tables live traffic holds,
/// each reading with its schema.
#[test]
fn a_fleets_progress_names_each_target() {
    let root = TempDir::new("fleet-progress");
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE SCHEMA mandant_a; CREATE SCHEMA mandant_b; \
             CREATE TABLE mandant_a.accounts (id bigint); CREATE TABLE mandant_b.accounts (id bigint)",
        )
        .unwrap();
    let dir = root.join("wait");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_note.sql"),
        "-- revision: 0001\n-- parents: none\n-- migrate:lock-timeout 20s\n\nALTER TABLE accounts ADD COLUMN note text;\n",
    )
    .unwrap();
    let mut traffic = db.client();
    traffic
        .batch_execute("BEGIN; SELECT count(*) FROM mandant_a.accounts, mandant_b.accounts")
        .unwrap();
    let fleet = {
        let dir = dir.clone();
        let url = db.url().to_owned();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_migrate"))
                .args([
                    "apply",
                    "--each-schema",
                    "SELECT unnest(ARRAY['mandant_a', 'mandant_b'])",
                    "--jobs",
                    "2",
                ])
                .arg("--dir")
                .arg(&dir)
                .env("DATABASE_URL", url)
                .env_remove("MIGRATION_DATABASE_URL")
                .env("MIGRATE_PROGRESS_AFTER", "100ms")
                .output()
                .unwrap()
        })
    };
    let mut observer = db.client();
    common::wait_for(Duration::from_secs(10), "both ALTERs wait", || {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE accounts%' AND datname = current_database()",
                &[],
            )
            .unwrap()
            .get(0);
        (waiting == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(700));
    traffic.batch_execute("COMMIT").unwrap();
    let run = fleet.join().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let readings: Vec<String> = stderr(&run)
        .lines()
        .filter(|l| l.contains(" running for "))
        .map(str::to_owned)
        .collect();
    for tenant in ["mandant_a", "mandant_b"] {
        assert!(
            readings
                .iter()
                .any(|l| l.starts_with(&format!("{tenant}: 0001 statement 1 ("))),
            "{readings:#?}"
        );
    }
}

/// A fleet through PgBouncer in transaction mode (2 server connections, 3 targets at a time):
/// the transactional migrations apply once per tenant, a no-transaction one is refused on each
/// tenant with the pointer to a direct connection, no lock is left, and no tenant's
/// `search_path` reaches the next client of a pooled connection.
#[test]
fn a_fleet_through_a_transaction_pooler() {
    let root = TempDir::new("fleet-pooler");
    let db = test_database();
    let bouncer = pg_harness::Pgbouncer::start(pg_harness::shared_cluster(), "transaction", 2);
    let pooled = bouncer.url(db.name());
    let mut client = db.client();
    let tenants: Vec<String> = (1..=6).map(|i| format!("kunde_{i}")).collect();
    for tenant in &tenants {
        client
            .batch_execute(&format!("CREATE SCHEMA {tenant}"))
            .unwrap();
    }
    let listing = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'kunde\\_%' ORDER BY 1";
    let pooler = [("MIGRATE_POOLER", "transaction")];
    let run_through = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_migrate"))
            .args(["apply", "--each-schema", listing, "--jobs", "3"])
            .arg("--dir")
            .arg(dir)
            .env("DATABASE_URL", &pooled)
            .env_remove("MIGRATION_DATABASE_URL")
            .envs(pooler)
            .output()
            .unwrap()
    };
    let two = directory(&root, "two", 2, None);
    let run = run_through(&two);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("6 migrated, 0 up to date, 0 failed, 0 skipped, of 6 schema(s)"),
        "{}",
        stdout(&run)
    );
    // 0003 builds its index CONCURRENTLY, outside a transaction: refused on each tenant.
    let three = directory(&root, "three", 3, None);
    let run = run_through(&three);
    assert_eq!(run.status.code(), Some(1), "{}", stdout(&run));
    assert!(
        stderr(&run).ends_with(
            "error: 6 schema(s) failed: kunde_1, kunde_2, kunde_3, kunde_4, kunde_5, kunde_6\n  help: the others are done; run the command again to resume the failed ones\n"
        ),
        "{}",
        stderr(&run)
    );
    assert!(
        stdout(&run).contains("is marked no-transaction and needs a session lock, which a transaction-mode pooler cannot hold"),
        "{}",
        stdout(&run)
    );
    for tenant in &tenants {
        assert_eq!(
            count(
                &db,
                &format!("SELECT count(*) FROM {tenant}.migrate_history")
            ),
            2,
            "{tenant}"
        );
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = '{tenant}' AND tablename = 'accounts'"
                )
            ),
            1
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        0
    );
    // The pooled server connections carry the server's defaults to their next clients.
    for _ in 0..4 {
        let mut next = postgres::Client::connect(&pooled, postgres::NoTls).unwrap();
        let path: String = next
            .simple_query("SHOW search_path")
            .unwrap()
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap();
        assert_eq!(path, "\"$user\", public");
    }
}
