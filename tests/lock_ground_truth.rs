//! The lock model checked row by row against a live PostgreSQL, with the method of LOCKS.md:
//! each example runs inside BEGIN … ROLLBACK on a fixture with rows, indexes and foreign keys;
//! the session's own `pg_locks` give the modes, a changed `relfilenode` with the rows kept is a
//! rewrite, a rise of `pg_stat_xact_user_tables.seq_scan` is a scan. Statements that cannot run
//! in a transaction block must fail there with 25001; their lock mode is read from `pg_locks` as
//! the request they queue while another session holds ACCESS EXCLUSIVE on the table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use migrate::lint::ground_truth::{
    GROUND_TRUTH_FIXTURE, GROUND_TRUTH_TABLESPACE, example_relations,
};
use migrate::lint::locks::{ALL_MODES, Cost, LOCK_MODEL, LockMode, LockRow};
use pg_harness::test_database;
use postgres::{Client, SimpleQueryMessage};

const RELATIONS: &[&str] = &["t", "u", "mv", "pt", "p1", "p2", "q", "t_a_idx", "tv", "w"];

fn rows(client: &mut Client, query: &str) -> Vec<Vec<String>> {
    client
        .simple_query(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// relation name -> (oid, relfilenode, seq_scan in this transaction, row count)
fn snapshot(client: &mut Client) -> BTreeMap<String, (String, String, i64)> {
    let list = RELATIONS
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(",");
    rows(
        client,
        &format!(
            "SELECT c.relname, c.oid::text, c.relfilenode::text, coalesce(s.seq_scan, 0)::text FROM pg_class c LEFT JOIN pg_stat_xact_user_tables s ON s.relid = c.oid WHERE c.relname IN ({list}) AND c.relnamespace = 'public'::regnamespace"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone(), r[3].parse().unwrap_or(0))))
    .collect()
}

/// The strongest lock this session holds on each relation oid.
fn own_locks(client: &mut Client) -> BTreeMap<String, LockMode> {
    let mut held: BTreeMap<String, LockMode> = BTreeMap::new();
    for r in rows(
        client,
        "SELECT relation::text, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted",
    ) {
        if let Some(mode) = LockMode::from_pg_name(&r[1]) {
            let entry = held.entry(r[0].clone()).or_insert(mode);
            *entry = (*entry).max(mode);
        }
    }
    held
}

struct Observed {
    table: Option<LockMode>,
    other: Option<LockMode>,
    cost: Cost,
}

fn observe_in_transaction(client: &mut Client, row: &LockRow) -> Observed {
    let (table, other) = example_relations(row.op);
    client.batch_execute("BEGIN").unwrap();
    let before = snapshot(client);
    client
        .batch_execute(row.example)
        .unwrap_or_else(|e| panic!("{}: {e:?}", row.example));
    let locks = own_locks(client);
    let after = snapshot(client);
    let mode_of = |rel: &str| {
        before
            .get(rel)
            .and_then(|(oid, _, _)| locks.get(oid).copied())
    };
    // Work proportional to the rows is only work on a relation that still has them: TRUNCATE
    // gets a new relfilenode and rebuilds its indexes over an empty heap, in constant time.
    let mut with_rows = Vec::new();
    for rel in [table]
        .into_iter()
        .chain(other)
        .filter(|rel| after.contains_key(*rel))
    {
        let count = rows(client, &format!("SELECT count(*) FROM {rel}"));
        if count.first().is_some_and(|c| c[0] != "0") {
            with_rows.push(rel);
        }
    }
    let rewritten = with_rows
        .iter()
        .any(|rel| before.get(*rel).map(|b| &b.1) != after.get(*rel).map(|a| &a.1));
    let scanned = with_rows
        .iter()
        .any(|rel| match (before.get(*rel), after.get(*rel)) {
            (Some((_, _, old)), Some((_, _, new))) => new > old,
            _ => false,
        });
    client.batch_execute("ROLLBACK").unwrap();
    Observed {
        table: mode_of(table),
        other: other.and_then(mode_of),
        cost: if rewritten {
            Cost::Rewrite
        } else if scanned {
            Cost::Scan
        } else {
            Cost::Instant
        },
    }
}

/// For statements that refuse transaction blocks: the mode they request, seen while blocked.
fn observe_outside_transaction(url: &str, client: &mut Client, row: &LockRow) -> Observed {
    let (table, _) = example_relations(row.op);
    let err = client
        .batch_execute(&format!("BEGIN; {}", row.example))
        .unwrap_err();
    assert_eq!(
        err.code().map(|c| c.code()),
        Some("25001"),
        "{} inside BEGIN: {err}",
        row.example
    );
    client.batch_execute("ROLLBACK").unwrap();

    // Hold the weakest mode that conflicts with the predicted one: a statement asking for a
    // weaker lock would not queue (and the test fails below); one asking for the predicted mode
    // queues, and pg_locks shows what it asked for.
    let probe = match row.table {
        Some(LockMode::AccessExclusive) => "ACCESS SHARE",
        Some(LockMode::Exclusive) => "ROW SHARE",
        Some(LockMode::ShareRowExclusive | LockMode::Share) => "ROW EXCLUSIVE",
        Some(LockMode::ShareUpdateExclusive) => "SHARE UPDATE EXCLUSIVE",
        Some(LockMode::RowExclusive) => "SHARE",
        _ => "ACCESS EXCLUSIVE",
    };
    let mut blocker = Client::connect(url, postgres::NoTls).unwrap();
    blocker
        .batch_execute(&format!("BEGIN; LOCK TABLE {table} IN {probe} MODE"))
        .unwrap();
    let before = snapshot(client);
    let url = url.to_owned();
    let example = row.example;
    let runner = std::thread::spawn(move || {
        let mut c = Client::connect(&url, postgres::NoTls).unwrap();
        let pid = rows(&mut c, "SELECT pg_backend_pid()::text")
            .remove(0)
            .remove(0);
        let done = c.batch_execute(example);
        (pid, done)
    });
    let oid = before.get(table).map(|(oid, _, _)| oid.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let requested = loop {
        let waiting = rows(
            client,
            &format!("SELECT mode FROM pg_locks WHERE relation = {oid} AND NOT granted"),
        );
        if let Some(mode) = waiting.first().and_then(|r| LockMode::from_pg_name(&r[0])) {
            break Some(mode);
        }
        if Instant::now() > deadline || runner.is_finished() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    blocker.batch_execute("ROLLBACK").unwrap();
    let (_, done) = runner.join().unwrap();
    done.unwrap_or_else(|e| panic!("{}: {e:?}", row.example));
    let after = snapshot(client);
    let rewritten = before.get(table).map(|b| &b.1) != after.get(table).map(|a| &a.1);
    Observed {
        table: requested,
        other: None,
        cost: if rewritten { Cost::Rewrite } else { row.cost },
    }
}

#[test]
fn every_row_of_the_lock_model_matches_a_live_server() {
    // The tablespace belongs to the server, not to a database: made once, kept by later runs.
    let admin_db = test_database();
    let mut admin = admin_db.client();
    for statement in GROUND_TRUTH_TABLESPACE {
        if let Err(e) = admin.batch_execute(statement)
            && e.code().map(|c| c.code()) != Some("42710")
        {
            panic!("{statement}: {e:?}");
        }
    }
    let mut mismatches = Vec::new();
    let major = server_lint().target_version;
    for row in LOCK_MODEL
        .iter()
        .filter(|r| migrate::lint::locks::first_version(r.op) <= major)
    {
        // A fresh fixture per row: some examples change or drop it even after a rollback
        // (CONCURRENTLY statements commit).
        let db = test_database();
        let mut client = db.client();
        client.batch_execute(GROUND_TRUTH_FIXTURE).unwrap();
        let observed = if row.transactional {
            observe_in_transaction(&mut client, row)
        } else {
            observe_outside_transaction(db.url(), &mut client, row)
        };
        let other_matches = !row.transactional || observed.other == row.other;
        if observed.table != row.table || !other_matches || observed.cost != row.cost {
            mismatches.push(format!(
                "{:?} `{}`: model says {:?}/{:?}/{:?}, server did {:?}/{:?}/{:?}",
                row.op,
                row.example,
                row.table,
                row.other,
                row.cost,
                observed.table,
                observed.other,
                observed.cost
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "the lock model differs from PostgreSQL:\n{}",
        mismatches.join("\n")
    );
}

/// Which column type changes rewrite the table, as the linter judges them, against the server.
#[test]
fn type_changes_rewrite_exactly_when_the_linter_says() {
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute("SET TimeZone = 'UTC'; CREATE TABLE w (a int, b varchar(10), c numeric(10,2), d text, e timestamp, f int, g varchar(20)[], h int[], i timestamptz(3), j double precision); INSERT INTO w SELECT g, 'x', 1.5, 'y', now(), g, ARRAY['z'], ARRAY[g], now(), g FROM generate_series(1, 500) AS g")
        .unwrap();
    let cases = [
        ("a", "int", "bigint"),
        ("a", "int", "integer"),
        ("b", "varchar(10)", "varchar(20)"),
        ("b", "varchar(10)", "varchar(5)"),
        ("b", "varchar(10)", "text"),
        ("c", "numeric(10,2)", "numeric(12,2)"),
        ("c", "numeric(10,2)", "numeric(12,3)"),
        ("d", "text", "varchar(5)"),
        ("d", "text", "varchar"),
        ("f", "int", "text"),
        ("g", "varchar(20)[]", "varchar(40)[]"),
        ("g", "varchar(20)[]", "text[]"),
        ("g", "varchar(20)[]", "varchar(20)[]"),
        ("h", "int[]", "bigint[]"),
        ("h", "int[]", "integer[]"),
        // The same type in another spelling.
        ("e", "timestamp", "timestamp without time zone"),
        ("i", "timestamptz(3)", "timestamp(3) with time zone"),
        ("i", "timestamptz(3)", "timestamptz(6)"),
        ("i", "timestamptz(3)", "timestamptz"),
        ("i", "timestamptz(3)", "timestamptz(1)"),
        ("e", "timestamp", "timestamp(2)"),
        ("j", "double precision", "float8"),
        ("j", "double precision", "real"),
    ];
    let mut mismatches = Vec::new();
    for (column, old, new) in cases {
        client.batch_execute("BEGIN").unwrap();
        let before = rows(
            &mut client,
            "SELECT relfilenode::text FROM pg_class WHERE relname = 'w'",
        );
        client
            .batch_execute(&format!("ALTER TABLE w ALTER COLUMN {column} TYPE {new}"))
            .unwrap();
        let after = rows(
            &mut client,
            "SELECT relfilenode::text FROM pg_class WHERE relname = 'w'",
        );
        client.batch_execute("ROLLBACK").unwrap();
        let rewrote = before != after;
        if rewrote == migrate::lint::type_change_is_compatible(old, new) {
            mismatches.push(format!("{old} -> {new}: server rewrote = {rewrote}"));
        }
    }
    // timestamp -> timestamptz keeps its rows when the session is in UTC, and only then.
    for (zone, utc) in [("UTC", true), ("Europe/Paris", false)] {
        client
            .batch_execute(&format!("BEGIN; SET LOCAL TimeZone = '{zone}'"))
            .unwrap();
        let relfilenode = "SELECT relfilenode::text FROM pg_class WHERE relname = 'w'";
        let before = rows(&mut client, relfilenode);
        client
            .batch_execute("ALTER TABLE w ALTER COLUMN e TYPE timestamptz USING e")
            .unwrap();
        let rewrote = before != rows(&mut client, relfilenode);
        client.batch_execute("ROLLBACK").unwrap();
        assert_eq!(
            rewrote,
            !migrate::lint::type_change_is_compatible_in("timestamp", "timestamptz", utc),
            "{zone}"
        );
    }
    // In UTC the heap keeps its bytes, but an index on the column is built again: a scan.
    client
        .batch_execute("BEGIN; CREATE INDEX w_e_idx ON w (e); SET LOCAL TimeZone = 'UTC'")
        .unwrap();
    let scans =
        "SELECT coalesce(seq_scan, 0)::text FROM pg_stat_xact_user_tables WHERE relname = 'w'";
    let before = rows(&mut client, scans);
    client
        .batch_execute("ALTER TABLE w ALTER COLUMN e TYPE timestamptz USING e")
        .unwrap();
    let rebuilt = before != rows(&mut client, scans);
    client.batch_execute("ROLLBACK").unwrap();
    assert!(rebuilt, "the index on w.e was not rebuilt");
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

/// A USING clause: the column itself or a cast of it changes nothing to the judgement; an
/// expression that computes the values anew rewrites. The linter's verdict on each statement
/// against the server's relfilenode.
#[test]
fn using_expressions_rewrite_exactly_when_the_linter_says() {
    let db = test_database();
    let mut client = db.client();
    let create = "CREATE TABLE w (title varchar(50))";
    client
        .batch_execute(&format!(
            "{create}; INSERT INTO w SELECT 'x' || g FROM generate_series(1, 500) AS g"
        ))
        .unwrap();
    let mut mismatches = Vec::new();
    for change in [
        "varchar(80) USING title",
        "varchar(80) USING title::varchar(80)",
        "text USING CAST(title AS text)",
        "text USING (title)::text",
        "text USING lower(title)",
        "varchar(80) USING title || ''",
    ] {
        let statement = format!("ALTER TABLE w ALTER COLUMN title TYPE {change}");
        let (rewrote, flagged) = server_and_linter(
            &mut client,
            &format!("{create};"),
            "w",
            &statement,
            "changing-column-type",
        );
        if flagged != rewrote {
            mismatches.push(format!(
                "{statement}: server rewrote = {rewrote}, flagged = {flagged}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

/// The lint for the server the tests run on: its version-dependent facts follow that server.
fn server_lint() -> &'static migrate::LintConfig {
    static CONFIG: std::sync::OnceLock<migrate::LintConfig> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let major: i32 = test_database()
            .client()
            .query_one(
                "SELECT current_setting('server_version_num')::int / 10000",
                &[],
            )
            .unwrap()
            .get(0);
        migrate::LintConfig {
            target_version: major as u32,
            ..migrate::LintConfig::default()
        }
    })
}

/// Whether `statement` rewrites `table` on the server (run in a transaction rolled back after),
/// and whether the linter flags it with `rule` in a migration that follows one running `setup`.
fn server_and_linter(
    client: &mut Client,
    setup: &str,
    table: &str,
    statement: &str,
    rule: &str,
) -> (bool, bool) {
    client.batch_execute("BEGIN").unwrap();
    let relfilenode = format!("SELECT relfilenode::text FROM pg_class WHERE relname = '{table}'");
    let before = rows(client, &relfilenode);
    client.batch_execute(statement).unwrap();
    let rewrote = before != rows(client, &relfilenode);
    client.batch_execute("ROLLBACK").unwrap();

    let flagged = in_migration_dir(setup, &format!("{statement};"), |dir| {
        migrate::lint_dir(dir, server_lint())
            .iter()
            .any(|d| d.check == rule)
    });
    (rewrote, flagged)
}

/// PG12+: a valid CHECK (col IS NOT NULL) lets SET NOT NULL skip its scan; without it the
/// scan happens. And ADD COLUMN NOT NULL without a default fails on a non-empty table.
#[test]
fn set_not_null_shortcut_and_required_column_failure() {
    let db = test_database();
    let mut client = db.client();
    client.batch_execute("CREATE TABLE n (a int, b int); INSERT INTO n SELECT g, g FROM generate_series(1, 500) AS g; ANALYZE n").unwrap();
    let scans = |client: &mut Client, setup: &str| -> i64 {
        client.batch_execute(&format!("BEGIN; {setup}")).unwrap();
        let before: i64 = rows(
            client,
            "SELECT coalesce(seq_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = 'n'",
        )[0][0]
            .parse()
            .unwrap();
        client
            .batch_execute("ALTER TABLE n ALTER COLUMN a SET NOT NULL")
            .unwrap();
        let after: i64 = rows(
            client,
            "SELECT coalesce(seq_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = 'n'",
        )[0][0]
            .parse()
            .unwrap();
        client.batch_execute("ROLLBACK").unwrap();
        after - before
    };
    assert!(
        scans(&mut client, "SELECT 1") > 0,
        "SET NOT NULL scans without a proof"
    );
    client.batch_execute("ALTER TABLE n ADD CONSTRAINT n_a_nn CHECK (a IS NOT NULL) NOT VALID; ALTER TABLE n VALIDATE CONSTRAINT n_a_nn").unwrap();
    assert_eq!(
        scans(&mut client, "SELECT 1"),
        0,
        "a valid CHECK (a IS NOT NULL) skips the scan"
    );

    let err = client
        .batch_execute("ALTER TABLE n ADD COLUMN c int NOT NULL")
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23502"));
}

/// `LOCK TABLE … IN <mode> MODE` holds exactly the mode it names, as the walker predicts.
#[test]
fn lock_table_holds_the_mode_it_names() {
    let db = test_database();
    let mut client = db.client();
    client.batch_execute(GROUND_TRUTH_FIXTURE).unwrap();
    let oid = rows(&mut client, "SELECT 't'::regclass::oid::text")
        .remove(0)
        .remove(0);
    for mode in ALL_MODES {
        let statement = format!("LOCK TABLE t IN {} MODE", mode.sql_name());
        let setup = migrate::analysis::analyze_text(
            "m/0.sql",
            &format!("-- revision: a\n-- parents: none\n{GROUND_TRUTH_FIXTURE};"),
        )
        .unwrap();
        let migration = migrate::analysis::analyze_text(
            "m/1.sql",
            &format!("-- revision: b\n-- parents: a\n{statement};"),
        )
        .unwrap();
        let plan = migrate::lint::lock_plan(&[setup, migration], &Default::default());
        let predicted = plan[1][0].effects[0].row.table;
        client
            .batch_execute(&format!("BEGIN; {statement}"))
            .unwrap();
        let held = own_locks(&mut client).get(&oid).copied();
        client.batch_execute("ROLLBACK").unwrap();
        assert_eq!(held, Some(mode), "{statement}");
        assert_eq!(predicted, Some(mode), "{statement}");
    }
}

/// A default calling a function the migrations created: VOLATILE (PostgreSQL's default for a
/// function) rewrites the table, IMMUTABLE does not, as the linter says. (PL/pgSQL: a SQL
/// function whose body is a constant is inlined and evaluated once; the linter cannot see that
/// and judges it by its declared volatility.)
#[test]
fn a_default_calling_a_created_function_rewrites_unless_it_is_immutable() {
    let db = test_database();
    let mut client = db.client();
    let setup = "CREATE TABLE f (id int); INSERT INTO f SELECT g FROM generate_series(1, 100) AS g;\nCREATE FUNCTION plain() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\nCREATE FUNCTION pinned() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN 1; END $$;";
    client.batch_execute(setup).unwrap();
    for function in ["plain", "pinned"] {
        let statement = format!("ALTER TABLE f ADD COLUMN c int DEFAULT {function}()");
        let (rewrote, flagged) = server_and_linter(
            &mut client,
            setup,
            "f",
            &statement,
            "adding-field-with-volatile-default",
        );
        assert_eq!(flagged, rewrote, "{function}: server rewrote = {rewrote}");
    }
}

/// Type changes into and out of domains: the linter's verdict on each against the server's
/// relfilenode.
#[test]
fn domain_type_changes_rewrite_exactly_when_the_linter_says() {
    let db = test_database();
    let mut client = db.client();
    let setup = "CREATE DOMAIN plain_text AS text;\nCREATE DOMAIN checked_text AS text CHECK (VALUE <> '');\nCREATE TABLE d (a text, b plain_text, c checked_text);\nINSERT INTO d SELECT 'x' || g, 'y', 'z' FROM generate_series(1, 200) AS g;";
    client.batch_execute(setup).unwrap();
    let mut mismatches = Vec::new();
    for change in [
        "a TYPE plain_text",
        "a TYPE checked_text",
        "b TYPE text",
        "b TYPE varchar(20)",
        "c TYPE text",
        "c TYPE plain_text",
    ] {
        let statement = format!("ALTER TABLE d ALTER COLUMN {change}");
        let (rewrote, flagged) =
            server_and_linter(&mut client, setup, "d", &statement, "changing-column-type");
        if flagged != rewrote {
            mismatches.push(format!(
                "{statement}: server rewrote = {rewrote}, flagged = {flagged}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

/// `f` on a fresh directory holding two migrations: `setup`, then `change`.
fn in_migration_dir<T>(setup: &str, change: &str, f: impl FnOnce(&std::path::Path) -> T) -> T {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "migrate-verdict-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0001_setup.sql"),
        format!("-- revision: 0001\n-- parents: none\n{setup}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("0002_change.sql"),
        format!("-- revision: 0002\n-- parents: 0001\n{change}\n"),
    )
    .unwrap();
    let result = f(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Whether the lint judges `body`, run after the fixture, a self-contained migration.
fn judged_self_contained(body: &str) -> bool {
    let analysis = in_migration_dir(GROUND_TRUTH_FIXTURE, body, |dir| {
        migrate::analysis::check::analyze_dir(dir, "m")
    });
    assert_eq!(
        analysis.migrations.len(),
        2,
        "{body}: {:?}",
        analysis.diagnostics
    );
    analysis.migrations[1].self_contained
}

/// The relations of the fixture's schema (tables, indexes, views, sequences) this session
/// holds a lock on, by name.
fn locked_existing(client: &mut Client, existing: &[String]) -> Vec<String> {
    let list = existing.join(", ");
    rows(
        client,
        &format!(
            "SELECT DISTINCT c.relname || ' ' || l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.relation IN ({list}) ORDER BY 1"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// A migration the lint judges self-contained (committed together with its neighbours) takes
/// no lock, by the server's own account, on any relation that existed before it: live traffic
/// cannot queue behind it however long the shared transaction stays open. The bodies it does not
/// judge so include ones that do lock an existing relation, so the check cannot pass by judging
/// everything alike.
#[test]
fn a_self_contained_migration_locks_no_relation_that_existed_before_it() {
    let db = test_database();
    let mut client = db.client();
    client.batch_execute(GROUND_TRUTH_FIXTURE).unwrap();
    let existing: Vec<String> = rows(
        &mut client,
        "SELECT oid::text FROM pg_class WHERE relnamespace = 'public'::regnamespace",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let qualifying = [
        "CREATE TABLE fresh (id bigint PRIMARY KEY, v text);",
        "CREATE TABLE fresh (id bigint PRIMARY KEY, v text UNIQUE);\nCREATE INDEX fresh_v ON fresh (v);\nINSERT INTO fresh VALUES (1, 'Grüße, Zoë 🎉');\nALTER TABLE fresh ADD COLUMN w int NOT NULL DEFAULT 0;\nUPDATE fresh SET w = 1;\nDELETE FROM fresh WHERE w = 2;",
        "CREATE TABLE a (id bigint PRIMARY KEY);\nCREATE TABLE b (id bigint PRIMARY KEY, a_id bigint REFERENCES a (id));\nCREATE INDEX b_a ON b (a_id);",
        "CREATE TYPE mood AS ENUM ('gut', 'très bien');\nCREATE DOMAIN positive AS int CHECK (VALUE > 0);\nCREATE SEQUENCE fresh_seq;\nCREATE SCHEMA elsewhere;\nCREATE TABLE elsewhere.fresh (m mood, p positive, n bigint DEFAULT nextval('fresh_seq'));",
        "CREATE TABLE fresh AS SELECT g AS id FROM generate_series(1, 10) AS g;\nCREATE UNIQUE INDEX fresh_id ON fresh (id);",
    ];
    let locking = [
        "CREATE TABLE fresh (id int, u_id int REFERENCES u (id));",
        "INSERT INTO t (id) VALUES (100000);",
        "ALTER TABLE t ADD COLUMN note text;",
        "CREATE TABLE fresh AS SELECT * FROM t;",
        "CREATE TABLE fresh (LIKE t);",
        "CREATE INDEX t_v_idx ON t (v);",
        "CREATE TABLE fresh (id int);\nUPDATE t SET a = a WHERE id = 1;",
    ];
    for body in qualifying.iter().chain(&locking) {
        client.batch_execute("BEGIN").unwrap();
        client
            .batch_execute(body)
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        let locked = locked_existing(&mut client, &existing);
        client.batch_execute("ROLLBACK").unwrap();
        let judged = judged_self_contained(body);
        if qualifying.contains(body) {
            assert!(judged, "the lint should judge it self-contained: {body}");
            assert_eq!(locked, Vec::<String>::new(), "{body}");
        } else {
            assert!(!judged, "{body}");
            assert!(
                !locked.is_empty(),
                "the server should show a lock on an existing relation: {body}"
            );
        }
    }
}

/// What `session-setting` flags outlives the migration's transaction on the server, and what it
/// proposes does not: each statement runs in a transaction that commits, and the session is
/// read afterwards. The linter flags exactly the statements whose effect is still there.
#[test]
fn session_settings_outlive_the_commit_exactly_when_the_linter_says() {
    let db = test_database();
    let mut admin = db.client();
    admin
        .batch_execute("DO $$ BEGIN CREATE ROLE migrate_gt_owner; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        .unwrap();
    for (statement, probe, session_default) in [
        (
            "SET lock_timeout = 4321",
            "current_setting('lock_timeout')",
            "0",
        ),
        (
            "SET LOCAL lock_timeout = 4321",
            "current_setting('lock_timeout')",
            "0",
        ),
        (
            "SET search_path TO pg_catalog",
            "current_setting('search_path')",
            "\"$user\", public",
        ),
        (
            "SET LOCAL search_path TO pg_catalog",
            "current_setting('search_path')",
            "\"$user\", public",
        ),
        (
            "SET ROLE migrate_gt_owner",
            "current_user::text",
            "postgres",
        ),
        (
            "SET LOCAL ROLE migrate_gt_owner",
            "current_user::text",
            "postgres",
        ),
        (
            "SET TIME ZONE 'Asia/Kolkata'",
            "current_setting('TimeZone')",
            "UTC",
        ),
        (
            "SET LOCAL TIME ZONE 'Asia/Kolkata'",
            "current_setting('TimeZone')",
            "UTC",
        ),
    ] {
        let mut client = db.client();
        client
            .batch_execute(&format!("SET TIME ZONE 'UTC'; BEGIN; {statement}; COMMIT"))
            .unwrap();
        let after = rows(&mut client, &format!("SELECT {probe}"))[0][0].clone();
        let outlives = after != session_default;
        let flagged = in_migration_dir(
            "CREATE TABLE t (id int);",
            &format!("{statement};"),
            |dir| {
                migrate::lint_dir(dir, server_lint())
                    .iter()
                    .any(|d| d.check == "session-setting")
            },
        );
        assert_eq!(
            flagged, outlives,
            "{statement}: after the commit {probe} is {after}; flagged: {flagged}"
        );
        assert_eq!(
            outlives,
            !statement.contains("LOCAL"),
            "{statement}: {after}"
        );
    }
}
