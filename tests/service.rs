//! The example service as a platform sees it: liveness, readiness through every phase, the
//! operator CLI, and a database that goes away and comes back. Real HTTP, real PostgreSQL.

mod common;

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pg_harness::{Cluster, TestDatabase, free_port, test_database};

static SERVICE_MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("migrations");

fn binary() -> std::path::PathBuf {
    common::example_binary("service")
}

struct Service {
    child: Child,
    port: u16,
    started: Instant,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let child = Command::new(binary())
            .env_clear()
            .env("PORT", port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Service {
            child,
            port,
            started: Instant::now(),
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String, String)> {
        get(self.port, path)
    }

    /// Polls until `path` answers with `status`; returns the body and when it first did.
    fn wait_for(&self, path: &str, status: u16, within: Duration) -> (String, Instant) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((code, _, body)) = self.get(path)
                && code == status
            {
                return (body, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "{path} did not answer {status} within {within:?}: last {:?}",
                self.get(path)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One GET on the service at `port`: status, content type and body.
fn get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()
        .ok()?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut body = String::new();
    response
        .body_mut()
        .as_reader()
        .read_to_string(&mut body)
        .ok()?;
    Some((response.status().as_u16(), content_type, body))
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn fresh_database_liveness_at_once_then_ready_after_migrating() {
    let db = test_database();
    let service = Service::start(&[("DATABASE_URL", db.url())]);
    let (body, live_at) = service.wait_for("/health", 200, Duration::from_secs(5));
    assert!(
        live_at - service.started < Duration::from_secs(1),
        "liveness took {:?}",
        live_at - service.started
    );
    assert_eq!(body, r#"{"status":"pass"}"#);
    let (_, content_type, _) = service.get("/health").unwrap();
    assert_eq!(content_type, "application/health+json");

    let (body, _) = service.wait_for("/health/ready", 200, Duration::from_secs(30));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "pass", "{body}");
    assert_eq!(json["checks"]["migrations:pending"][0]["status"], "pass");
    assert_eq!(json["checks"]["database:connection"][0]["status"], "pass");
    assert_eq!(
        json["checks"]["database:connection"][0]["componentType"],
        "datastore"
    );

    // migrations/schema.snapshot is embedded: the live schema is compared with it.
    assert_eq!(
        json["checks"]["schema:drift"][0]["status"], "pass",
        "{body}"
    );

    let status = cli(&["status"], &[("DATABASE_URL", db.url())]);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&status.stdout).ends_with("pass: 12 applied, 0 pending, 0 ahead\n")
    );

    // Someone changes the schema by hand: still ready, with the drift named.
    db.client()
        .batch_execute("ALTER TABLE user_profiles DROP COLUMN display_name")
        .unwrap();
    let (body, _) = service.wait_for("/health/ready", 200, Duration::from_secs(5));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "warn", "{body}");
    assert_eq!(json["checks"]["schema:drift"][0]["status"], "warn");
    assert_eq!(
        json["checks"]["schema:drift"][0]["output"],
        "differs from the migrations' snapshot: column public.user_profiles.display_name"
    );
    let status = cli(&["status"], &[("DATABASE_URL", db.url())]);
    assert_eq!(status.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        printed.ends_with("drift: column public.user_profiles.display_name [safe]: migrations build text; the database has (absent)\nwarn: 12 applied, 0 pending, 0 ahead, the schema differs from the snapshot in 1 place(s) (`migrate diff` reconciles it)\n"),
        "{printed}"
    );
    // The mounted CLI has the drift commands too, on the migrations the binary embeds.
    let diff = cli(&["diff"], &[("DATABASE_URL", db.url())]);
    assert_eq!(diff.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "table public.user_profiles\n  column public.user_profiles.display_name [safe]: migrations build text; the database has (absent)\ndrift: 1 difference(s) against the 12 applied revision(s)\n"
    );
}

#[test]
fn skipped_with_pending_work_is_not_ready_and_status_exits_1() {
    let db = test_database();
    let service = Service::start(&[("DATABASE_URL", db.url()), ("MIGRATE_SKIP", "1")]);
    service.wait_for("/health", 200, Duration::from_secs(5));
    let (body, _) = service.wait_for("/health/ready", 503, Duration::from_secs(10));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(
        json["checks"]["migrations:pending"][0]["output"],
        "pending: 0001, 0002, 0003a, 0003b, 0004, 0005, 0006, 0007, 0008, 0009, 0010, 0011 (MIGRATE_SKIP is set)"
    );
    assert_eq!(json["checks"]["database:connection"][0]["status"], "pass");

    let status = cli(&["status"], &[("DATABASE_URL", db.url())]);
    assert_eq!(status.status.code(), Some(1), "pending work");
    let json = cli(&["status", "--json"], &[("DATABASE_URL", db.url())]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["pending"].as_array().map(Vec::len), Some(12));

    // The operator applies them with the same binary; readiness turns green without a restart.
    let migrate = cli(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert_eq!(
        migrate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(
        String::from_utf8_lossy(&migrate.stdout).ends_with("up to date at 0011 (12 applied now)\n")
    );
    service.wait_for("/health/ready", 200, Duration::from_secs(5));
}

#[test]
fn without_database_url_liveness_passes_and_readiness_says_not_configured() {
    let service = Service::start(&[]);
    service.wait_for("/health", 200, Duration::from_secs(5));
    let (status, content_type, body) = service.get("/health/ready").unwrap();
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/health+json");
    assert_eq!(
        body,
        r#"{"checks":{"database:connection":[{"output":"not configured","status":"fail"}],"migrations:pending":[{"output":"not configured","status":"fail"}]},"output":"not configured: set DATABASE_URL","status":"fail"}"#
    );
    let status = cli(&["status"], &[]);
    assert_eq!(status.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&status.stderr),
        "error: no database configured\n  help: set MIGRATION_DATABASE_URL (or DATABASE_URL) to the database's URL\n"
    );
}

#[test]
fn database_stopped_and_back_readiness_follows_liveness_stays() {
    let mut cluster = Cluster::start();
    let db = cluster.create_database();
    let service = Service::start(&[("DATABASE_URL", db.url())]);
    service.wait_for("/health/ready", 200, Duration::from_secs(30));

    cluster.stop();
    let stopped = Instant::now();
    let (body, at) = service.wait_for("/health/ready", 503, Duration::from_secs(5));
    assert!(
        at - stopped < Duration::from_secs(2),
        "readiness noticed after {:?}",
        at - stopped
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        json["checks"]["database:connection"][0]["output"]
            .as_str()
            .unwrap()
            .starts_with("unreachable: cannot connect to postgres://postgres@127.0.0.1:")
    );
    let (live, _, _) = service.get("/health").unwrap();
    assert_eq!(live, 200, "liveness never depends on the database");

    cluster.restart();
    service.wait_for("/health/ready", 200, Duration::from_secs(10));
    drop(db);
}

#[test]
fn a_migration_waiting_behind_a_lock_reads_migrating_while_live() {
    let db = test_database();
    // Everything but the last migration is applied; the last one drops a foreign key and needs
    // ACCESS EXCLUSIVE on user_personalization, which a long transaction blocks.
    let all = SERVICE_MIGRATIONS.as_slice();
    let mut client = db.client();
    let _ = migrate::Migrator::new(&migrate::__private::migrations(&all[..all.len() - 1]))
        .run(&mut client)
        .unwrap();
    let mut holder = db.client();
    let holder_pid = common::values(&mut holder, "SELECT pg_backend_pid()")[0].clone();
    // (The server shows only ASCII in application_name.)
    for step in [
        "SET application_name = 'live traffic'",
        "BEGIN",
        "SELECT count(*) FROM user_personalization",
    ] {
        holder.batch_execute(step).unwrap();
    }

    let service = Service::start(&[
        ("DATABASE_URL", db.url()),
        ("MIGRATE_PROGRESS_AFTER", "100ms"),
    ]);
    service.wait_for("/health", 200, Duration::from_secs(5));
    let (body, _) = service.wait_for("/health/ready", 503, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let (code, _, body_later) = service.get("/health/ready").unwrap();
    assert_eq!(code, 503);
    for body in [body, body_later] {
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["checks"]["migrations:pending"][0]["output"], "migrating",
            "{body}"
        );
        assert_eq!(json["checks"]["database:connection"][0]["status"], "pass");
    }
    assert_eq!(service.get("/health").unwrap().0, 200);
    // Each attempt waits up to its lock timeout (1 s); past 100 ms readiness names the session
    // it waits for.
    let deadline = Instant::now() + Duration::from_secs(10);
    let progress = loop {
        let (_, _, body) = service.get("/health/ready").unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(reading) = json["checks"]["migrations:progress"].get(0) {
            break reading["output"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no progress in readiness: {body}"
        );
        std::thread::sleep(Duration::from_millis(30));
    };
    assert!(
        progress.starts_with("0011 statement 1 (migrations/0011_personalization_fk_drop_old.sql:")
            && progress.ends_with(&format!(
                "; waiting for pid {holder_pid} (live traffic): SELECT count(*) FROM user_personalization"
            )),
        "{progress}"
    );

    holder.batch_execute("COMMIT").unwrap();
    service.wait_for("/health/ready", 200, Duration::from_secs(15));
}

/// The example's concurrent unique index (0006) built over 2 million rows: while it runs,
/// readiness carries what it is doing and how far it got, from `pg_stat_progress_create_index`.
#[test]
fn a_long_index_build_shows_its_progress_in_readiness() {
    let db = test_database();
    let all = SERVICE_MIGRATIONS.as_slice();
    let before_index = all.iter().position(|m| m.revision() == "0006").unwrap();
    let mut client = db.client();
    let _ = migrate::Migrator::new(&migrate::__private::migrations(&all[..before_index]))
        .run(&mut client)
        .unwrap();
    // 1,000 users × 667 days × 3 ranks; the foreign key's per-row checks are skipped while
    // loading (replication role), the rows satisfy it.
    client
        .batch_execute(
            "INSERT INTO user_profiles (email) SELECT 'lecteur' || u || '@exemple.fr' FROM generate_series(1, 1000) u; \
             SET session_replication_role = replica; \
             INSERT INTO daily_top_articles \
             SELECT u, date '2024-01-01' + d, r, 'Titre n° ' || r, 'https://exemple.fr/' || u || '/' || d \
             FROM generate_series(1, 1000) u, generate_series(0, 666) d, generate_series(1, 3) r; \
             RESET session_replication_role",
        )
        .unwrap();

    let service = Service::start(&[
        ("DATABASE_URL", db.url()),
        ("MIGRATE_PROGRESS_AFTER", "100ms"),
    ]);
    // Each reading of the build while readiness says "migrating": its text and share done.
    let mut readings: Vec<(String, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let Some((code, _, body)) = service.get("/health/ready") else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready within 120 s: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(progress) = json["checks"]["migrations:progress"].as_array() {
            assert_eq!(
                json["checks"]["migrations:pending"][0]["output"], "migrating",
                "{body}"
            );
            for reading in progress {
                assert_eq!(reading["status"], "warn", "{body}");
                let output = reading["output"].as_str().unwrap().to_owned();
                if let Some(share) = reading["observedValue"].as_f64() {
                    assert_eq!(reading["observedUnit"], "%", "{body}");
                    readings.push((output, share));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("{readings:#?}");
    assert!(readings.len() >= 2, "{readings:?}");
    for (output, _) in &readings {
        assert!(
            output.starts_with(
                "0006 statement 1 (migrations/0006_daily_top_unique_index.sql:5) running for "
            ),
            "{output}"
        );
    }
    // The same phase read twice, further along the second time.
    let phase = |output: &str| {
        output
            .split(": ")
            .nth(1)
            .and_then(|p| p.split(", blocks").next())
            .map(str::to_owned)
    };
    assert!(
        readings
            .windows(2)
            .any(|w| phase(&w[0].0) == phase(&w[1].0) && w[1].1 > w[0].1),
        "no share rising within a phase: {readings:?}"
    );
    let indexes = common::values(
        &mut client,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'daily_top_articles' ORDER BY 1",
    );
    assert!(!indexes.is_empty(), "{indexes:?}");
}

/// A schema per tenant (`MIGRATE_EACH_SCHEMA`): readiness counts the tenants done while one of
/// them waits behind live traffic, then reports each tenant's pending count; a tenant added
/// later is named with its pending migrations until it is migrated.
#[test]
fn tenant_schemas_are_migrated_at_startup_and_readiness_counts_each_tenant() {
    let db = test_database();
    let mut admin = db.client();
    let tenants: Vec<String> = (1..=12).map(|i| format!("tenant_{i:02}")).collect();
    for tenant in &tenants {
        admin
            .batch_execute(&format!("CREATE SCHEMA {tenant}"))
            .unwrap();
    }
    // tenant_01 ran all but the last migration, which needs ACCESS EXCLUSIVE on its
    // user_personalization: live traffic holds it back.
    let all = SERVICE_MIGRATIONS.as_slice();
    let settings = migrate::Settings {
        schema: "tenant_01".to_owned(),
        search_path: Some("tenant_01, public".to_owned()),
        ..Default::default()
    };
    let _ = migrate::Migrator::with_settings(
        &migrate::__private::migrations(&all[..all.len() - 1]),
        settings,
    )
    .run(&mut admin)
    .unwrap();
    let mut traffic = db.client();
    traffic
        .batch_execute("BEGIN; SELECT count(*) FROM tenant_01.user_personalization")
        .unwrap();

    let listing = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1";
    let service = Service::start(&[
        ("DATABASE_URL", db.url()),
        ("MIGRATE_EACH_SCHEMA", listing),
        ("MIGRATE_JOBS", "3"),
    ]);
    // The 11 others finish; tenant_01 is still in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    let migrating = loop {
        let (code, _, body) = service.get("/health/ready").unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if json["checks"]["migrations:pending"][0]["observedValue"] == 11 {
            assert_eq!(code, 503, "{body}");
            break json;
        }
        assert!(Instant::now() < deadline, "never 11 tenants done: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = migrating["checks"]["migrations:pending"][0]["output"]
        .as_str()
        .unwrap();
    assert!(
        output.starts_with("migrating: tenants 11/12 done; slowest in flight: tenant_01 ("),
        "{output}"
    );
    assert_eq!(
        migrating["checks"]["migrations:pending"][0]["observedUnit"],
        "tenants done"
    );

    traffic.batch_execute("COMMIT").unwrap();
    let (body, _) = service.wait_for("/health/ready", 200, Duration::from_secs(30));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "pass", "{body}");
    let each = json["checks"]["migrations:pending"].as_array().unwrap();
    let named: Vec<&str> = each
        .iter()
        .map(|c| c["componentId"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        tenants.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        each.iter()
            .all(|c| c["status"] == "pass" && c["observedValue"] == 0),
        "{body}"
    );
    // One history per tenant, the tables inside each tenant's schema, nothing in public.
    for tenant in &tenants {
        assert_eq!(
            common::values(
                &mut admin,
                &format!("SELECT count(*) FROM {tenant}.migrate_history")
            ),
            ["12"]
        );
    }
    assert_eq!(
        common::values(
            &mut admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        ["0"]
    );

    // A tenant signs up after the deploy: readiness names it with what it lacks.
    admin.batch_execute("CREATE SCHEMA tenant_13").unwrap();
    // (A fleet's check serves the probes for 10 s.)
    let (body, _) = service.wait_for("/health/ready", 503, Duration::from_secs(25));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let last = &json["checks"]["migrations:pending"][12];
    assert_eq!(last["componentId"], "tenant_13", "{body}");
    assert_eq!(last["status"], "fail");
    assert_eq!(last["observedValue"], 12);
    assert!(
        last["output"]
            .as_str()
            .unwrap()
            .starts_with("pending: 0001, "),
        "{body}"
    );
    // The operator CLI migrates the fleet the same way.
    let migrate = cli(
        &["migrate", "--each-schema", listing],
        &[("DATABASE_URL", db.url())],
    );
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    service.wait_for("/health/ready", 200, Duration::from_secs(25));

    // A tenant's history held by a session: the next fleet check cannot end, and each probe
    // answers from the last one that did, within its budget, instead of failing.
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE tenant_05.migrate_history IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    std::thread::sleep(Duration::from_secs(11));
    for _ in 0..3 {
        let asked = Instant::now();
        let (code, _, body) = service.get("/health/ready").unwrap();
        assert_eq!(code, 200, "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
    }
    holder.batch_execute("COMMIT").unwrap();
}

/// A tenant query that lists nothing leaves the service ready with a warning; one that fails
/// fails startup's migrations, and readiness says why while the database answers.
#[test]
fn a_tenant_query_listing_nothing_warns_and_a_failing_one_fails() {
    let db = test_database();
    let service = Service::start(&[
        ("DATABASE_URL", db.url()),
        (
            "MIGRATE_EACH_SCHEMA",
            "SELECT nspname FROM pg_namespace WHERE false",
        ),
    ]);
    let (body, _) = service.wait_for("/health/ready", 200, Duration::from_secs(15));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "warn", "{body}");
    assert_eq!(
        json["checks"]["migrations:pending"][0]["output"],
        "the query lists no tenant schema"
    );
    drop(service);

    let service = Service::start(&[
        ("DATABASE_URL", db.url()),
        ("MIGRATE_EACH_SCHEMA", "SELECT name FROM tenants"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let json = loop {
        let (code, _, body) = service.get("/health/ready").unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let output = json["checks"]["migrations:pending"][0]["output"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if output.starts_with("migrations failed: ") {
            assert_eq!(code, 503);
            break json;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        json["checks"]["database:connection"][0]["status"], "pass",
        "{json}"
    );
    assert!(
        json["checks"]["migrations:pending"][0]["output"]
            .as_str()
            .unwrap()
            .contains("listing the fleet's targets"),
        "{json}"
    );
}

#[test]
fn the_example_migrations_lint_clean_and_plan_shows_locks() {
    let findings = migrate::lint_dir(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        &migrate::LintConfig::default(),
    );
    assert!(findings.is_empty(), "{findings:?}");
    let lint = cli(&["lint", "migrations", "--json"], &[]);
    assert_eq!(lint.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&lint.stdout), "[]\n");

    let db: TestDatabase = test_database();
    let plan = cli(&["plan"], &[("DATABASE_URL", db.url())]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("0006 migrations/0006_daily_top_unique_index.sql (no-transaction, statement by statement)"), "{text}");
    assert!(
        text.contains("SHARE UPDATE EXCLUSIVE on daily_top_articles (scan)"),
        "{text}"
    );
    assert!(
        text.contains(
            "ACCESS EXCLUSIVE on user_personalization (instant), ACCESS EXCLUSIVE on user_profiles"
        ),
        "{text}"
    );
}

#[test]
fn lint_json_reports_each_finding_for_ci() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/ui/fixtures/lint/backfill-after-alter"
    );
    let out = cli(&["lint", dir, "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = &json[0];
    assert_eq!(finding["rule"], "lock-held-across-slow-statement");
    assert_eq!(finding["line"], 4);
    assert_eq!(finding["column"], 1);
    assert_eq!(finding["severity"], "error");
    assert!(
        finding["file"]
            .as_str()
            .unwrap()
            .ends_with("backfill-after-alter/0002_change.sql")
    );
}

/// Threads of a running process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[test]
fn probes_against_a_hanging_database_share_one_check() {
    // A server that accepts connections and never answers: every login hangs until the connect
    // timeout (5 s), longer than a probe waits.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "postgres://app@127.0.0.1:{}/app",
        hung.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        let _held: Vec<_> = hung.incoming().collect();
    });
    let service = Service::start(&[("DATABASE_URL", &url), ("MIGRATE_SKIP", "1")]);
    service.wait_for("/health", 200, Duration::from_secs(30));
    let before = threads(service.child.id());
    let probes: Vec<_> = (0..16)
        .map(|_| {
            let port = service.port;
            std::thread::spawn(move || {
                get(port, "/health/ready").map(|(code, _, body)| (code, body))
            })
        })
        .collect();
    let answers: Vec<_> = probes.into_iter().map(|p| p.join().unwrap()).collect();
    let during = threads(service.child.id());
    for answer in &answers {
        let (code, body) = answer.as_ref().unwrap();
        assert_eq!(*code, 503, "{body}");
        assert!(body.contains("no answer within 1500 ms"), "{body}");
    }
    assert!(
        during <= before + 2,
        "16 probes of a hanging database: {before} threads before, {during} after"
    );
}
