//! The runtime at the edges of its inputs: connection strings in every form libpq accepts, a
//! retried `CREATE INDEX CONCURRENTLY` on tables with odd names and near other INVALID indexes,
//! and what a no-transaction migration sets on a borrowed client.

use std::time::Duration;

use migrate::Migrator;
use pg_harness::test_database;

/// Migrations built at run time from inline files, through the real analysis and packed format.
fn load(files: &[(&str, &str)]) -> &'static migrate::Migrations {
    let dir = std::env::temp_dir().join(format!(
        "migrate_edges_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let analysis =
        migrate::analysis::check::analyze_dir_with(&dir, "m", &migrate::LintConfig::default());
    assert_eq!(
        analysis.migrations.len(),
        files.len(),
        "{:?}",
        analysis.diagnostics
    );
    let index: &'static str =
        Box::leak(migrate::__private::pack(&analysis.migrations).into_boxed_str());
    let sql: Vec<&'static str> = analysis
        .migrations
        .iter()
        .map(|m| &*Box::leak(m.sql.clone().into_boxed_str()))
        .collect();
    let sql: &'static [&'static str] = Vec::leak(sql);
    let packed: &'static migrate::__private::Packed =
        Box::leak(Box::new(migrate::__private::Packed::new(index, sql)));
    let digest = migrate::__private::history_digest_hex(
        analysis
            .migrations
            .iter()
            .map(|m| (m.header.revision.as_str(), m.checksum.as_str())),
    );
    let digest: &'static str = Box::leak(digest.into_boxed_str());
    Box::leak(Box::new(migrate::__private::migrations_embedded(
        packed, 15, None, digest,
    )))
}

fn first(m: &'static migrate::Migrations) -> &'static migrate::Migrations {
    Box::leak(Box::new(migrate::__private::migrations(&m.as_slice()[..1])))
}

fn values(client: &mut postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_owned()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Connection strings
// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_value_password_in_another_case_is_never_shown() {
    let err = migrate::connect("host=127.0.0.1 port=1 PASSWORD=hunter2", "edges")
        .err()
        .expect("should fail");
    let text = format!("{err} / {err:?}");
    println!("{text}");
    assert!(!text.contains("hunter2"), "password shown: {text}");
}

#[test]
fn a_url_password_parameter_in_another_case_is_never_shown() {
    let err = migrate::connect("postgres://u@127.0.0.1:1/db?Password=hunter2", "edges")
        .err()
        .expect("should fail");
    let text = format!("{err} / {err:?}");
    println!("{text}");
    assert!(!text.contains("hunter2"), "password shown: {text}");
}

/// libpq and the driver accept several hosts in a URL.
#[test]
fn a_url_with_several_hosts_is_accepted() {
    let db = test_database();
    let url = db.url().to_owned(); // postgres://postgres@127.0.0.1:PORT/NAME
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let multi = url.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{port},127.0.0.1:{port}"),
    );
    println!("{multi}");
    let result = migrate::connect(&multi, "edges");
    assert!(result.is_ok(), "{:?}", result.err().map(|e| e.to_string()));
}

/// An option with a space, percent-encoded as libpq documents (`%20`).
#[test]
fn a_percent_encoded_space_in_a_url_option_survives() {
    let db = test_database();
    let url = format!("{}?application_name=my%20app", db.url());
    let mut client = migrate::connect(&url, "edges").unwrap();
    let name = values(&mut client, "SHOW application_name");
    assert_eq!(name, ["my app"]);
}

// ---------------------------------------------------------------------------------------------
// Retried concurrent index builds
// ---------------------------------------------------------------------------------------------

const TABLE: &str = "-- revision: 0001\n-- parents: none\n-- message: t\nCREATE TABLE t (id bigint PRIMARY KEY, c integer);\nINSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;\n";
const UNNAMED: &str = "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY ON t (c);\n";

/// An operator's own, unrelated build that failed (a lock timeout) left an INVALID index that
/// merely looks like the migration's: it is not the migration's to drop, and the migration's
/// index still gets a clean build's name (`t_c_idx`), the one later migrations refer to.
#[test]
fn an_unrelated_invalid_index_is_left_alone() {
    let migrations = load(&[("0001_t.sql", TABLE), ("0002_idx.sql", UNNAMED)]);
    let db = test_database();
    let mut setup = db.client();
    let _ = Migrator::new(first(migrations)).run_url(db.url()).unwrap();
    // A writer with an open transaction makes the operator's concurrent build time out after
    // it entered the catalog: INVALID `ops_c_tmp`.
    let mut writer = db.client();
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (100000, 1)")
        .unwrap();
    setup.batch_execute("SET lock_timeout = '200ms'").unwrap();
    let failed = setup.batch_execute("CREATE INDEX CONCURRENTLY ops_c_tmp ON t (c)");
    setup.batch_execute("RESET lock_timeout").unwrap();
    assert!(failed.is_err());
    writer.batch_execute("ROLLBACK").unwrap();
    drop(writer);
    let before = values(
        &mut setup,
        "SELECT relname || ' ' || indisvalid FROM pg_index JOIN pg_class ON oid = indexrelid WHERE indrelid = 't'::regclass ORDER BY 1",
    );
    println!("before: {before:?}");
    let _ = Migrator::new(migrations).run_url(db.url()).unwrap();
    let after = values(
        &mut setup,
        "SELECT relname || ' ' || indisvalid FROM pg_index JOIN pg_class ON oid = indexrelid WHERE indrelid = 't'::regclass ORDER BY 1",
    );
    println!("after: {after:?}");
    assert!(
        after.contains(&"t_c_idx true".to_owned()),
        "the migration's index should have a clean build's name: {after:?}"
    );
}

/// A build whose automatic name is cut to 63 bytes, failed in one run (an open writer), then run
/// again in the next: one index, with a clean build's name.
#[test]
fn a_failed_build_on_a_long_table_name_is_replaced_across_runs() {
    let long = "a".repeat(60);
    let table = format!(
        "-- revision: 0001\n-- parents: none\n-- message: t\nCREATE TABLE {long} (id bigint PRIMARY KEY, c integer);\nINSERT INTO {long} SELECT g, g FROM generate_series(1, 1000) g;\n"
    );
    let index = format!(
        "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\n-- migrate:lock-timeout 100ms\nCREATE INDEX CONCURRENTLY ON {long} (c);\n"
    );
    let table: &'static str = Box::leak(table.into_boxed_str());
    let index: &'static str = Box::leak(index.into_boxed_str());
    let migrations = load(&[("0001_t.sql", table), ("0002_idx.sql", index)]);
    let db = test_database();
    let mut setup = db.client();
    let _ = Migrator::new(first(migrations)).run_url(db.url()).unwrap();
    // A clean build's name, on a scratch copy of the table.
    let clean = values(
        &mut setup,
        &format!("CREATE TABLE {long}_x (c int); DROP TABLE {long}_x; SELECT 'x'"),
    );
    let _ = clean;
    // Two failed attempts (an open writer makes each time out after entering the catalog).
    let mut writer = db.client();
    writer
        .batch_execute(&format!("BEGIN; INSERT INTO {long} VALUES (100000, 1)"))
        .unwrap();
    let failed = Migrator::new(migrations)
        .wait_budget(Duration::from_millis(900))
        .run_url(db.url());
    println!(
        "with a writer: {:?}",
        failed.as_ref().err().map(ToString::to_string)
    );
    writer.batch_execute("ROLLBACK").unwrap();
    drop(writer);
    let list = format!(
        "SELECT relname || ' ' || indisvalid FROM pg_index JOIN pg_class ON oid = indexrelid WHERE indrelid = '{long}'::regclass AND NOT indisprimary ORDER BY 1"
    );
    let before = values(&mut setup, &list);
    println!("before: {before:#?}");
    assert_eq!(
        before.len(),
        1,
        "the failed attempt left its INVALID index: {before:?}"
    );
    let _ = Migrator::new(migrations).run_url(db.url()).unwrap();
    let after = values(&mut setup, &list);
    println!("after: {after:#?}");
    let first = format!("{}_c_idx true", &long[..57]);
    assert_eq!(after, [first]);
}

/// The same on a non-ASCII, quoted, schema-qualified table, with an expression, INCLUDE and a
/// predicate: after retries, one index with the clean build's name.
#[test]
fn a_failed_build_on_a_quoted_non_ascii_table_is_replaced_across_runs() {
    let table = "-- revision: 0001\n-- parents: none\n-- message: t\nCREATE SCHEMA \"Grüße\";\nCREATE TABLE \"Grüße\".\"tä b\" (id bigint PRIMARY KEY, \"Spä lte\" integer);\nINSERT INTO \"Grüße\".\"tä b\" SELECT g, g FROM generate_series(1, 1000) g;\n";
    let index = "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\n-- migrate:lock-timeout 100ms\nCREATE INDEX CONCURRENTLY ON \"Grüße\".\"tä b\" ((\"Spä lte\" + 1)) INCLUDE (id) WHERE \"Spä lte\" > 3;\n";
    let migrations = load(&[("0001_t.sql", table), ("0002_idx.sql", index)]);
    let db = test_database();
    let mut setup = db.client();
    let _ = Migrator::new(first(migrations)).run_url(db.url()).unwrap();
    let mut writer = db.client();
    writer
        .batch_execute("BEGIN; INSERT INTO \"Grüße\".\"tä b\" VALUES (100000, 1)")
        .unwrap();
    let _ = Migrator::new(migrations)
        .wait_budget(Duration::from_millis(700))
        .run_url(db.url());
    writer.batch_execute("ROLLBACK").unwrap();
    drop(writer);
    let list = "SELECT relname || ' ' || indisvalid FROM pg_index JOIN pg_class ON oid = indexrelid WHERE indrelid = '\"Grüße\".\"tä b\"'::regclass AND NOT indisprimary ORDER BY 1";
    println!("before: {:?}", values(&mut setup, list));
    let _ = Migrator::new(migrations).run_url(db.url()).unwrap();
    let after = values(&mut setup, list);
    println!("after: {after:?}");
    assert_eq!(after, ["tä b_expr_id_idx true"]);
}

// ---------------------------------------------------------------------------------------------
// The borrowed client's settings
// ---------------------------------------------------------------------------------------------

/// A no-transaction migration that sets what index builds usually set: the caller's client
/// comes back with its own settings.
#[test]
fn a_borrowed_client_gets_its_own_settings_back_after_a_migrations_set() {
    let index = "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\nSET maintenance_work_mem = '77MB';\nSET search_path = pg_catalog;\nCREATE INDEX CONCURRENTLY t_c ON public.t (c);\n";
    let migrations = load(&[("0001_t.sql", TABLE), ("0002_idx.sql", index)]);
    let db = test_database();
    let mut client = db.client();
    client
        .batch_execute("SET maintenance_work_mem = '5MB'; SET search_path = public")
        .unwrap();
    let _ = Migrator::new(migrations).run(&mut client).unwrap();
    let seen = values(
        &mut client,
        "SELECT current_setting('maintenance_work_mem') || ' ' || current_setting('search_path')",
    );
    assert_eq!(seen, ["5MB public"]);
}

/// A comment inside the table name as written: valid SQL, which the runner's own catalog probes
/// must not turn into a failed migration.
#[test]
fn a_concurrent_index_on_a_table_written_with_a_comment_applies() {
    let index = "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_c ON public./* the table */t (c);\n";
    let migrations = load(&[("0001_t.sql", TABLE), ("0002_idx.sql", index)]);
    let db = test_database();
    let result = Migrator::new(migrations).run_url(db.url());
    assert!(result.is_ok(), "{}", result.err().unwrap());
}

/// What the runtime gets as the table "as written" for forms PostgreSQL accepts.
#[test]
fn the_table_of_a_concurrent_build_is_recorded_as_the_server_resolves_it() {
    let index = "-- revision: 0002\n-- parents: 0001\n-- message: idx\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY a ON ONLY t (c);\nCREATE INDEX CONCURRENTLY b ON U&\"t\" (c);\nCREATE INDEX CONCURRENTLY c ON public\n  .t (c);\n";
    let migrations = load(&[("0001_t.sql", TABLE), ("0002_idx.sql", index)]);
    let m = &migrations.as_slice()[1];
    for s in m.statements() {
        println!("{:?} -> {:?}", m.statement_sql(s), s.concurrent_table);
    }
    let db = test_database();
    let result = Migrator::new(migrations).run_url(db.url());
    assert!(result.is_ok(), "{}", result.err().unwrap());
}
