//! `migrate diff` and `migrate baseline` on a real server: the seed incident of a database built
//! by hand (found, written as a migration, reconciled), no false drift on databases the
//! migrations built, a baseline judged by `pg_dump`, and the shadow database's life cycle.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use common::{TempDir, stderr, stdout, wait_for};
use pg_harness::{TestDatabase, test_database};

/// The tests count the shadow databases left on the server: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn repository(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A migrations directory of the test's own.
struct Dir(TempDir);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(TempDir::new(name))
    }

    /// A directory holding copies of `source`'s migrations, `keep` deciding which.
    fn copy_of(name: &str, source: &str, keep: impl Fn(&str) -> bool) -> Dir {
        let dir = Dir::new(name);
        for entry in std::fs::read_dir(repository(source)).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_owned();
            if file.ends_with(".sql") && keep(&file) {
                std::fs::copy(&path, dir.0.join(&file)).unwrap();
            }
        }
        dir
    }

    fn migrate(&self, db: &TestDatabase, args: &[&str]) -> Output {
        migrate_on(&self.0, db, args)
    }

    fn files(&self, ending: &str) -> Vec<PathBuf> {
        files_in(&self.0, ending)
    }
}

/// The `migrate` command on the migrations in `dir` and the database `db`.
fn migrate_on(dir: &Path, db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("DATABASE_URL", db.url())
        .env_remove("MIGRATION_DATABASE_URL")
        .output()
        .unwrap()
}

fn files_in(dir: &Path, ending: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ending))
        .collect();
    files.sort();
    files
}

/// Asserts that a run of the binary succeeded, showing what it printed when it did not.
fn succeeded(run: &Output) {
    assert!(run.status.success(), "{}{}", stdout(run), stderr(run));
}

/// Asserts that `diff` finds the database to be what its `applied` revisions build.
fn no_drift(dir: &Dir, db: &TestDatabase, applied: usize) {
    let clean = dir.migrate(db, &["diff"]);
    assert_eq!(
        (clean.status.code(), stdout(&clean)),
        (
            Some(0),
            format!("no drift against the {applied} applied revision(s)\n")
        ),
        "{}",
        stderr(&clean)
    );
}

/// Where `needle` starts in `text`; a panic showing `text` when it is not there.
fn offset(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in\n{text}"))
}

/// The shadow databases on the test server.
fn shadows(db: &TestDatabase) -> Vec<String> {
    db.client()
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'migrate_shadow_') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The seed's production database: created by hand, no baseline. Ten columns the code has are
/// missing, two it dropped are still there, the ids are varchar where the code has uuid, and
/// `created_at` has no time zone. The foreign key could not be created: its types disagree.
const HAND_BUILT: &str = "
    CREATE TABLE users (
        id varchar(36) PRIMARY KEY,
        email text NOT NULL,
        username text,
        is_superuser boolean DEFAULT false,
        created_at timestamp NOT NULL DEFAULT now()
    );
    CREATE TABLE user_personalization (
        user_id uuid PRIMARY KEY,
        theme text NOT NULL DEFAULT 'light',
        created_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO users (id, email, username) VALUES
        ('6f1c2a34-8e2b-4c71-9a55-0d3e4b5f6a71', 'zoë@example.fr', 'zoë'),
        ('0b7e9d12-3c4a-4f5e-8d6c-1a2b3c4d5e6f', 'jürgen@example.de', 'jürgen');
    INSERT INTO user_personalization (user_id, theme) VALUES ('6f1c2a34-8e2b-4c71-9a55-0d3e4b5f6a71', 'sombre 🌙');
";

const SEED_REPORT: &str = "\
table public.user_personalization
  constraint public.user_personalization.user_personalization_user_id_fkey [safe]: migrations build FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE; the database has (absent)
table public.users
  column public.users.id [review]: migrations build uuid DEFAULT gen_random_uuid() NOT NULL; the database has character varying(36) NOT NULL
  column public.users.display_name [safe]: migrations build text; the database has (absent)
  column public.users.avatar_url [safe]: migrations build text; the database has (absent)
  column public.users.locale [safe]: migrations build text DEFAULT 'en'::text NOT NULL; the database has (absent)
  column public.users.timezone [safe]: migrations build text DEFAULT 'UTC'::text NOT NULL; the database has (absent)
  column public.users.email_verified [safe]: migrations build boolean DEFAULT false NOT NULL; the database has (absent)
  column public.users.marketing_opt_in [safe]: migrations build boolean DEFAULT false NOT NULL; the database has (absent)
  column public.users.last_login_at [safe]: migrations build timestamp with time zone; the database has (absent)
  column public.users.login_count [safe]: migrations build integer DEFAULT 0 NOT NULL; the database has (absent)
  column public.users.plan [safe]: migrations build text DEFAULT 'free'::text NOT NULL; the database has (absent)
  column public.users.deleted_at [safe]: migrations build timestamp with time zone; the database has (absent)
  column public.users.created_at [review]: migrations build timestamp with time zone DEFAULT now() NOT NULL; the database has timestamp without time zone DEFAULT now() NOT NULL
  column public.users.username [destructive]: migrations build (absent); the database has text
  column public.users.is_superuser [destructive]: migrations build (absent); the database has boolean DEFAULT false
  index public.users.users_created_at_idx [safe]: migrations build CREATE INDEX ON public.users USING btree (created_at); the database has (absent)
drift: 16 difference(s) against the 3 applied revision(s)
";

#[test]
fn the_seed_database_built_by_hand_is_reconciled_by_the_migration_diff_writes() {
    let _serial = serial();
    let db = test_database();
    db.client().batch_execute(HAND_BUILT).unwrap();
    let dir = Dir::copy_of("seed", "tests/migrations/drift_seed", |_| true);
    let stamped = dir.migrate(&db, &["stamp", "0003"]);
    assert!(stamped.status.success(), "{}", stderr(&stamped));

    let found = dir.migrate(&db, &["diff"]);
    assert_eq!(found.status.code(), Some(1), "{}", stderr(&found));
    assert_eq!(stdout(&found), SEED_REPORT);
    assert!(shadows(&db).is_empty(), "{:?}", shadows(&db));

    let json = dir.migrate(&db, &["diff", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["status"], "drift");
    assert_eq!(
        value["replayed"],
        serde_json::json!(["0001", "0002", "0003"])
    );
    assert_eq!(value["differences"].as_array().unwrap().len(), 16);
    assert_eq!(value["differences"][1]["object"], "column public.users.id");
    assert_eq!(value["differences"][1]["severity"], "review");

    // The key changes type before the foreign key that needs it is added.
    let written = dir.migrate(&db, &["diff", "--write", dir.0.to_str().unwrap()]);
    assert_eq!(written.status.code(), Some(1), "{}", stderr(&written));
    let [file] = dir.files("_reconcile.sql").try_into().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        stdout(&written).ends_with(&format!(
            "wrote {}: review it, enable the destructive parts you want, then apply it\n",
            file.display()
        )),
        "{}",
        stdout(&written)
    );
    assert!(text.starts_with("-- revision: "), "{text}");
    assert!(text.contains("\n-- parents: 0003\n"), "{text}");
    assert!(text.contains("\n-- migrate:no-transaction\n"), "{text}");
    let position = |needle: &str| offset(&text, needle);
    assert!(
        position("ALTER TABLE public.users ALTER COLUMN id TYPE uuid USING id::uuid;")
            < position(
                "ADD CONSTRAINT user_personalization_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE NOT VALID;"
            )
    );
    assert!(
        position("NOT VALID;") < position("VALIDATE CONSTRAINT user_personalization_user_id_fkey;")
    );
    position(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_at_idx ON public.users USING btree (created_at);",
    );
    // Drops are there for the reviewer, commented out.
    position("\n-- ALTER TABLE public.users DROP COLUMN IF EXISTS username;\n");
    position("\n-- ALTER TABLE public.users DROP COLUMN IF EXISTS is_superuser;\n");
    assert!(
        !text.contains("\nALTER TABLE public.users DROP COLUMN"),
        "{text}"
    );

    // Written as it is, the directory passes the compiler's checks.
    let check = dir.migrate(&db, &["check"]);
    assert!(check.status.success(), "{}", stdout(&check));

    // The reviewer enables the drops, then applies it.
    let reviewed: String = text
        .lines()
        .map(|line| {
            match line.strip_prefix("-- ").filter(|rest| {
                rest.starts_with("ALTER TABLE") || rest.starts_with("-- migrate:allow")
            }) {
                Some(enabled) => format!("{enabled}\n"),
                None => format!("{line}\n"),
            }
        })
        .collect();
    std::fs::write(&file, reviewed).unwrap();
    succeeded(&dir.migrate(&db, &["apply"]));

    let clean = dir.migrate(&db, &["diff"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}{}",
        stdout(&clean),
        stderr(&clean)
    );
    assert_eq!(
        stdout(&clean),
        "no drift against the 4 applied revision(s)\n"
    );
    // The rows came through the type changes.
    let rows = db
        .client()
        .query(
            "SELECT u.email, p.theme FROM users u JOIN user_personalization p ON p.user_id = u.id",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "zoë@example.fr");
    assert_eq!(rows[0].get::<_, String>(1), "sombre 🌙");
    assert!(shadows(&db).is_empty(), "{:?}", shadows(&db));
}

/// Writes `files` (name, text) into a new directory.
fn dir_with(name: &str, files: &[(&str, &str)]) -> Dir {
    let dir = Dir::new(name);
    for (file, text) in files {
        std::fs::write(dir.0.join(file), text).unwrap();
    }
    dir
}

#[test]
fn a_key_dropped_under_a_foreign_key_is_restored_key_first_and_the_fix_replays_as_a_no_op() {
    let _serial = serial();
    let db = test_database();
    let dir = dir_with(
        "key-under-fk",
        &[(
            "0001_users_posts.sql",
            "-- revision: 0001\n-- parents: none\n-- message: users and their posts\n\
             CREATE TABLE users (id bigint PRIMARY KEY, nom text);\n\
             CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint CONSTRAINT posts_user_fk REFERENCES users (id), titre text);\n",
        )],
    );
    let applied = dir.migrate(&db, &["apply"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    // By hand: the key goes, and the foreign key that needs it with it.
    db.client()
        .batch_execute(
            "INSERT INTO users VALUES (1, 'Zoë'); INSERT INTO posts VALUES (1, 1, 'Größe 🧪');
             ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE;",
        )
        .unwrap();

    let written = dir.migrate(&db, &["diff", "--write", dir.0.to_str().unwrap()]);
    assert_eq!(written.status.code(), Some(1), "{}", stderr(&written));
    let [file] = dir.files("_reconcile.sql").try_into().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let at = |needle: &str| offset(&text, needle);
    assert!(
        at("ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey;")
            < at(
                "ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES public.users(id) NOT VALID;"
            ),
        "{text}"
    );
    assert!(!text.contains("DROP CONSTRAINT"), "{text}");
    let check = dir.migrate(&db, &["check"]);
    assert!(check.status.success(), "{}", stdout(&check));

    // Applied as written: no drift, and the next drift check replays it (into a shadow that
    // already has both keys when it runs) without an error.
    succeeded(&dir.migrate(&db, &["apply"]));
    for _ in 0..2 {
        no_drift(&dir, &db, 2);
    }
    // Strictly idempotent: applied again to the database that has the schema, each statement
    // changes nothing, and nothing depending on the key is touched.
    let before = schema_dump(&db);
    let sql = text
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
        db.client()
            .batch_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    assert_eq!(schema_dump(&db), before);
    assert!(shadows(&db).is_empty(), "{:?}", shadows(&db));
}

/// What a reconciling migration recreates comes in the server's dependency order across the
/// kinds of objects: a function before the domain, the check, the default and the index that
/// call it; a default calling a function that reads its own table after that function; a missing
/// table with its foreign keys and indexes.
#[test]
fn a_reconciling_migration_creates_functions_before_what_calls_them() {
    let _serial = serial();
    let db = test_database();
    let dir = dir_with(
        "functions-first",
        &[(
            "0001_mesures.sql",
            "-- revision: 0001\n-- parents: none\n-- message: measures and their checks\n\
             CREATE FUNCTION est_positif(int) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN $1 > 0;\n\
             CREATE DOMAIN positif AS int CHECK (est_positif(VALUE));\n\
             CREATE TABLE base (id int PRIMARY KEY);\n\
             CREATE TABLE mesures (id int CHECK (est_positif(id)), valeur positif, unité text DEFAULT 'mètre', base_id int REFERENCES base);\n\
             CREATE INDEX mesures_valeur ON mesures (valeur);\n\
             CREATE FUNCTION compte() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(*) FROM base; END;\n\
             ALTER TABLE base ADD COLUMN rang bigint DEFAULT compte();\n\
             CREATE INDEX base_positif ON base ((est_positif(id)));\n",
        )],
    );
    succeeded(&dir.migrate(&db, &["apply"]));
    db.client()
        .batch_execute(
            "DROP INDEX base_positif; ALTER TABLE base DROP COLUMN rang; DROP FUNCTION compte();
             DROP TABLE mesures; DROP DOMAIN positif; DROP FUNCTION est_positif(int);",
        )
        .unwrap();
    let written = dir.migrate(&db, &["diff", "--write", dir.0.to_str().unwrap()]);
    assert_eq!(written.status.code(), Some(1), "{}", stderr(&written));
    let [file] = dir.files("_reconcile.sql").try_into().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let function = offset(&text, "CREATE OR REPLACE FUNCTION public.est_positif");
    for user in [
        "CREATE DOMAIN public.positif",
        "CREATE TABLE IF NOT EXISTS public.mesures",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS base_positif",
    ] {
        assert!(function < offset(&text, user), "{user}:\n{text}");
    }
    assert!(
        offset(&text, "CREATE OR REPLACE FUNCTION public.compte")
            < offset(
                &text,
                "ADD COLUMN IF NOT EXISTS rang bigint DEFAULT public.compte()"
            ),
        "{text}"
    );
    succeeded(&dir.migrate(&db, &["apply"]));
    no_drift(&dir, &db, 2);
    no_drift(&dir, &db, 2);
}

#[test]
fn a_role_a_migration_created_is_the_servers_and_the_shadow_replays_around_it() {
    let _serial = serial();
    let db = test_database();
    // Roles belong to the server, not to a database: a name of this run's own.
    let role = format!("lecteur_{}", std::process::id());
    let dir = dir_with(
        "role",
        &[(
            "0001_notes_reader.sql",
            &format!(
                "-- revision: 0001\n-- parents: none\n-- message: notes and a read-only role\n\
                 CREATE TABLE notes (id bigint PRIMARY KEY, texte text DEFAULT 'à lire 📖');\n\
                 CREATE ROLE {role} NOLOGIN;\n\
                 GRANT SELECT ON notes TO {role};\n"
            ),
        )],
    );
    succeeded(&dir.migrate(&db, &["apply"]));
    let diff = dir.migrate(&db, &["diff"]);
    let snapshot = dir.migrate(&db, &["snapshot"]);
    db.client()
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
    assert_eq!(
        (diff.status.code(), stdout(&diff).as_str()),
        (Some(0), "no drift against the 1 applied revision(s)\n"),
        "{}",
        stderr(&diff)
    );
    succeeded(&snapshot);
    assert!(shadows(&db).is_empty(), "{:?}", shadows(&db));
}

#[test]
fn databases_the_migrations_built_show_no_drift_and_pending_revisions_are_not_drift() {
    let _serial = serial();
    for (source, applied) in [("migrations", 12), ("tests/migrations/large", 4)] {
        let db = test_database();
        let dir = Dir::copy_of(source.rsplit('/').next().unwrap(), source, |_| true);
        let apply = dir.migrate(&db, &["apply"]);
        assert!(apply.status.success(), "{source}: {}", stderr(&apply));
        let diff = dir.migrate(&db, &["diff"]);
        assert_eq!(
            stdout(&diff),
            format!("no drift against the {applied} applied revision(s)\n"),
            "{source}: {}",
            stderr(&diff)
        );
        assert_eq!(diff.status.code(), Some(0));
    }

    // The last revision not applied yet: pending, not compared, not drift.
    let db = test_database();
    let first_three = Dir::copy_of("three", "tests/migrations/large", |f| {
        !f.starts_with("0004")
    });
    assert!(first_three.migrate(&db, &["apply"]).status.success());
    let all = Dir::copy_of("four", "tests/migrations/large", |_| true);
    let diff = all.migrate(&db, &["diff"]);
    assert_eq!(diff.status.code(), Some(0), "{}", stderr(&diff));
    assert_eq!(
        stdout(&diff),
        "no drift against the 3 applied revision(s); 1 pending revision(s) not compared: 0004\n"
    );
    assert!(shadows(&db).is_empty());
}

/// The server's major version.
fn server_major(db: &TestDatabase) -> u32 {
    db.client()
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .unwrap()
        .get::<_, i32>(0) as u32
}

/// The schema of a database as a tool other than this one sees it: `pg_dump --schema-only` (the
/// one `MIGRATE_PG_DUMP` names, else the server's own major's) when there is one, else
/// [`catalog_listing`].
fn schema_dump(db: &TestDatabase) -> String {
    let major = server_major(db);
    // `MIGRATE_PG_DUMP`: a pg_dump at least as new as every server (scripts/postgres-versions).
    let candidates = [
        std::env::var_os("MIGRATE_PG_DUMP").map(PathBuf::from),
        Some(pg_harness::server_bin_dir().join("pg_dump")),
        Some(PathBuf::from(format!(
            "/usr/lib/postgresql/{major}/bin/pg_dump"
        ))),
    ];
    match candidates.iter().flatten().find(|p| p.exists()) {
        Some(pg_dump) => pg_dump_schema(pg_dump, db),
        None => catalog_listing(db),
    }
}

/// `pg_dump --schema-only` of a database, without its comment and blank lines, the per-run random key
/// of its `\restrict` guard, and the runtime's own objects: the history table, the sequence that
/// holds its digest and the function that resets it. A run that applies migrations creates the
/// last two; `baseline --stamp` only writes a row, so they are no difference between the two
/// databases' schemas.
fn pg_dump_schema(pg_dump: &Path, db: &TestDatabase) -> String {
    let out = Command::new(pg_dump)
        .args([
            "--schema-only",
            "--no-owner",
            "--exclude-table=public.migrate_history*",
        ])
        .arg(db.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", stderr(&out));
    let mut in_runtime_function = false;
    let mut dump = String::new();
    for line in stdout(&out).lines() {
        if line.starts_with("CREATE FUNCTION public.migrate_history_changed()") {
            in_runtime_function = true;
        }
        if in_runtime_function {
            in_runtime_function = !line.ends_with("$$;");
            continue;
        }
        if !line.is_empty()
            && !line.starts_with("--")
            && !line.starts_with("\\restrict")
            && !line.starts_with("\\unrestrict")
        {
            dump.push_str(line);
            dump.push('\n');
        }
    }
    dump
}

/// Where no `pg_dump` that reads the server is at hand (the npm registry's server packages ship
/// none, and an older `pg_dump` refuses a newer server): every user object with the
/// server's own description of it, one per line, written here independently of the catalog
/// reader under test. The runtime's own objects are left out as in [`pg_dump_schema`].
fn catalog_listing(db: &TestDatabase) -> String {
    let user = "NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'";
    let sql = format!(
        "SET search_path = pg_catalog;
         SELECT line FROM (
           SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || c.relpersistence::text || coalesce(' ' || pg_get_partkeydef(c.oid), '')
                  || coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '') AS line
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname {user} AND c.relkind <> 't'
               AND c.relname NOT LIKE 'migrate_history%'
           UNION ALL SELECT 'column ' || c.oid::regclass || '.' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
                  || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname {user} AND c.relname NOT LIKE 'migrate_history%'
           UNION ALL SELECT 'constraint ' || coalesce(k.conrelid::regclass::text, k.contypid::regtype::text) || ' ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
             FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname {user}
           UNION ALL SELECT 'index ' || pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname {user} AND c.relname NOT LIKE 'migrate_history%'
           UNION ALL SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname {user} AND p.prokind IN ('f', 'p') AND p.proname <> 'migrate_history_changed'
           UNION ALL SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('v', 'm') AND n.nspname {user}
           UNION ALL SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text || ' ' || format_type(t.typbasetype, t.typtypmod) || coalesce(' DEFAULT ' || t.typdefault, '')
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname {user} AND t.typtype IN ('e', 'd')
           UNION ALL SELECT 'sequence ' || schemaname || '.' || sequencename || ' ' || data_type || ' ' || start_value || ' ' || increment_by
             FROM pg_sequences WHERE sequencename NOT LIKE 'migrate_history%'
           UNION ALL SELECT 'trigger ' || pg_get_triggerdef(g.oid) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal AND n.nspname {user} AND c.relname NOT LIKE 'migrate_history%'
         ) x ORDER BY line"
    );
    let mut listing = String::new();
    for message in db.client().simple_query(&sql).unwrap() {
        if let postgres::SimpleQueryMessage::Row(row) = message {
            listing.push_str(row.get(0).unwrap_or_default());
            listing.push('\n');
        }
    }
    listing
}

/// Writes the baseline of `live` (stamped), applies it to a new database, and judges the two
/// with [`schema_dump`]. Returns the baseline's text and what `baseline` printed.
fn baseline_round_trip(live: &TestDatabase, name: &str) -> (String, String) {
    let dir = Dir::new(name);
    let target = dir.0.join("migrations");
    let baseline = dir.migrate(
        live,
        &["baseline", "--into", target.to_str().unwrap(), "--stamp"],
    );
    assert!(baseline.status.success(), "{}", stderr(&baseline));
    let [file] = files_in(&target, "_baseline.sql").try_into().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let revision = file
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches("_baseline.sql")
        .to_owned();
    let printed = stdout(&baseline).replace(&file.display().to_string(), "FILE");

    // The oracle: the schema of the live database and of one the baseline built.
    let rebuilt = test_database();
    let apply = migrate_on(&target, &rebuilt, &["apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let (expected, actual) = (schema_dump(live), schema_dump(&rebuilt));
    if expected != actual {
        let differing: Vec<_> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .collect();
        panic!("the dumps differ: {differing:#?}\n{expected}");
    }
    assert_eq!(
        printed.lines().nth(1),
        Some(&*format!("stamped {revision} as applied"))
    );

    // Stamped: the live database is up to date with the baseline and does not drift from it.
    let status = migrate_on(&target, live, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let diff = migrate_on(&target, live, &["diff"]);
    assert_eq!(
        stdout(&diff),
        "no drift against the 1 applied revision(s)\n",
        "{}",
        stderr(&diff)
    );
    drop(dir);
    assert!(shadows(live).is_empty());
    (text, printed)
}

#[test]
fn a_baseline_of_the_large_schema_rebuilds_what_pg_dump_sees() {
    let _serial = serial();
    // Built without any migration tool, as a database adopted late is.
    let live = test_database();
    let mut client = live.client();
    let sources = Dir::copy_of("large-sources", "tests/migrations/large", |_| true);
    for file in sources.files(".sql") {
        client
            .batch_execute(&std::fs::read_to_string(file).unwrap())
            .unwrap();
    }
    let dump = schema_dump(&live);
    assert!(dump.contains("billing.monthly_revenue"), "{dump}");
    assert!(dump.contains("billing.invoices_2025"), "{dump}");
    let (_, printed) = baseline_round_trip(&live, "baseline");
    assert_eq!(
        printed.lines().next(),
        Some(
            "wrote FILE: 8 table(s), 35 other object(s); a database built from it has the live schema"
        )
    );
}

/// Functions that defaults, checks, generated columns, indexes and domains call, created before
/// the tables that use them (tables before functions fails: "function … does not exist"); a
/// SQL-standard function over a table under a view; a function returning a table's rows; and a
/// default that calls a function reading its own table, the cycle pg_dump breaks with
/// `ALTER … SET DEFAULT`; an older table with a column of a newer table's row type, in an array.
const FUNCTIONS_EVERYWHERE: &str = "
    CREATE SCHEMA boutique;
    CREATE FUNCTION boutique.code_aléatoire(len integer) RETURNS text LANGUAGE sql VOLATILE
        AS $$ SELECT substr(md5(random()::text), 1, len) $$;
    CREATE FUNCTION boutique.normalisé(t text) RETURNS text LANGUAGE sql IMMUTABLE RETURN lower(btrim(t));
    CREATE FUNCTION boutique.positif(n numeric) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN n > 0;
    CREATE DOMAIN boutique.sku AS text CHECK (boutique.normalisé(VALUE) = VALUE);
    CREATE TABLE boutique.article (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        code text NOT NULL DEFAULT boutique.code_aléatoire(8),
        nom text NOT NULL,
        clé text GENERATED ALWAYS AS (boutique.normalisé(nom)) STORED,
        prix numeric CONSTRAINT prix_positif CHECK (boutique.positif(prix))
    );
    CREATE UNIQUE INDEX article_nom_unique ON boutique.article (boutique.normalisé(nom));
    CREATE TABLE boutique.stock (sku boutique.sku PRIMARY KEY, article_id bigint REFERENCES boutique.article);
    CREATE FUNCTION boutique.nombre_d_articles() RETURNS bigint LANGUAGE sql STABLE
        BEGIN ATOMIC SELECT count(*) FROM boutique.article; END;
    CREATE VIEW boutique.état AS SELECT boutique.nombre_d_articles() AS articles;
    CREATE FUNCTION boutique.bon_marché(plafond numeric) RETURNS SETOF boutique.article LANGUAGE sql STABLE
        AS $$ SELECT * FROM boutique.article WHERE prix < plafond $$;
    CREATE VIEW boutique.petits_prix AS SELECT id, nom FROM boutique.bon_marché(10);
    CREATE TABLE boutique.historique (id int);
    CREATE TABLE boutique.ticket (n integer, libellé text DEFAULT 'caisse 🧾');
    CREATE FUNCTION boutique.ticket_suivant() RETURNS integer LANGUAGE sql
        BEGIN ATOMIC SELECT coalesce(max(n), 0) + 1 FROM boutique.ticket; END;
    ALTER TABLE boutique.ticket ALTER COLUMN n SET DEFAULT boutique.ticket_suivant();
    ALTER TABLE boutique.historique ADD COLUMN paniers boutique.article[];
";

#[test]
fn a_baseline_creates_what_defaults_checks_indexes_and_views_call_before_them() {
    let _serial = serial();
    let live = test_database();
    live.client().batch_execute(FUNCTIONS_EVERYWHERE).unwrap();
    let (text, printed) = baseline_round_trip(&live, "functions-everywhere");
    assert_eq!(
        printed.lines().next(),
        Some(
            "wrote FILE: 4 table(s), 11 other object(s); a database built from it has the live schema"
        ),
        "{text}"
    );
    for (first, then) in [
        // The function before the table whose default calls it.
        (
            "CREATE OR REPLACE FUNCTION boutique.\"code_aléatoire\"",
            "CREATE TABLE boutique.article",
        ),
        // The cycle: the table without the default, the function, then the default.
        (
            "CREATE TABLE boutique.ticket",
            "CREATE OR REPLACE FUNCTION boutique.ticket_suivant",
        ),
        (
            "CREATE OR REPLACE FUNCTION boutique.ticket_suivant",
            "ALTER TABLE boutique.ticket ALTER COLUMN n SET DEFAULT boutique.ticket_suivant();",
        ),
        // The view after the function it calls, the function after the table it reads.
        (
            "CREATE TABLE boutique.article",
            "CREATE OR REPLACE FUNCTION boutique.nombre_d_articles",
        ),
        (
            "CREATE OR REPLACE FUNCTION boutique.nombre_d_articles",
            "CREATE VIEW boutique.\"état\"",
        ),
    ] {
        assert!(
            offset(&text, first) < offset(&text, then),
            "{first} after {then}:\n{text}"
        );
    }
}

/// PostgreSQL 18's virtual generated columns (`VIRTUAL`, the kind a column gets when it names
/// none): a baseline makes them virtual again, and `diff --write` adds a missing one as virtual
/// (instant: nothing is written), which the lint accepts for a target of 18. The servers before
/// 18 have no such column: there the test says so and checks nothing.
#[test]
fn virtual_generated_columns_stay_virtual_in_a_baseline_and_a_reconciling_migration() {
    let _serial = serial();
    let live = test_database();
    if server_major(&live) < 18 {
        eprintln!(
            "PostgreSQL {} has no virtual generated column",
            server_major(&live)
        );
        return;
    }
    live.client()
        .batch_execute(
            "CREATE TABLE ligne (prix numeric, quantité int,
                 total numeric GENERATED ALWAYS AS (prix * quantité) VIRTUAL,
                 double numeric GENERATED ALWAYS AS (prix * 2),
                 taxe numeric GENERATED ALWAYS AS (prix / 5) STORED);",
        )
        .unwrap();
    let (text, _) = baseline_round_trip(&live, "virtual");
    assert_eq!(text.matches(") VIRTUAL").count(), 2, "{text}");
    assert_eq!(text.matches(") STORED").count(), 1, "{text}");

    let db = test_database();
    let dir = dir_with(
        "virtual-reconcile",
        &[
            ("migrate.toml", "target_postgres = 18\n"),
            (
                "0001_ligne.sql",
                "-- revision: 0001\n-- parents: none\n-- message: lines and their total\n\
                 CREATE TABLE ligne (prix numeric, quantité int, total numeric GENERATED ALWAYS AS (prix * quantité) VIRTUAL);\n",
            ),
        ],
    );
    succeeded(&dir.migrate(&db, &["apply"]));
    db.client()
        .batch_execute("ALTER TABLE ligne DROP COLUMN total")
        .unwrap();
    let written = dir.migrate(&db, &["diff", "--write", dir.0.to_str().unwrap()]);
    assert_eq!(written.status.code(), Some(1), "{}", stderr(&written));
    let [file] = dir.files("_reconcile.sql").try_into().unwrap();
    let fix = std::fs::read_to_string(&file).unwrap();
    offset(
        &fix,
        "ALTER TABLE public.ligne ADD COLUMN IF NOT EXISTS total numeric GENERATED ALWAYS AS (",
    );
    offset(&fix, ") VIRTUAL;");
    succeeded(&dir.migrate(&db, &["apply"]));
    no_drift(&dir, &db, 2);
}

#[test]
fn baseline_refuses_what_it_cannot_recreate_and_a_directory_with_migrations() {
    let _serial = serial();
    let db = test_database();
    db.client()
        .batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text);
             CREATE RULE events_no_delete AS ON DELETE TO events DO INSTEAD NOTHING;",
        )
        .unwrap();
    let dir = Dir::new("partial");
    let into = dir.0.join("migrations");
    let refused = dir.migrate(&db, &["baseline", "--into", into.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: the baseline cannot recreate 1 object(s): rule events_no_delete ON public.events\n  help: recreate them in a migration of your own after the baseline, and pass --allow-partial to write the rest (they are listed in the file)\n"
    );
    assert!(!into.exists());

    let partial = dir.migrate(
        &db,
        &[
            "baseline",
            "--into",
            into.to_str().unwrap(),
            "--allow-partial",
        ],
    );
    assert!(partial.status.success(), "{}", stderr(&partial));
    let [file] = files_in(&into, "_baseline.sql").try_into().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(
            "\n-- not recreated here, write it by hand: rule events_no_delete ON public.events\n"
        ),
        "{text}"
    );

    let again = dir.migrate(&db, &["baseline", "--into", into.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        format!(
            "error: {} already holds migrations, and a baseline is the first one of a directory\n  help: baseline into an empty directory; to adopt a database the existing migrations already describe, stamp it instead (`stamp <revision>`)\n",
            into.display()
        )
    );
    std::fs::remove_dir_all(&into).unwrap();
}

#[test]
fn the_shadow_goes_away_on_errors_orphans_are_removed_and_a_given_shadow_is_checked() {
    let _serial = serial();
    let db = test_database();
    // A shadow a killed run left a long time ago.
    db.client()
        .batch_execute("CREATE DATABASE migrate_shadow_1000000000_0badf00d")
        .unwrap();
    let dir = Dir::new("replay");
    std::fs::write(
        dir.0.join("0001_alter.sql"),
        "-- revision: 0001\n-- parents: none\nALTER TABLE nowhere ADD COLUMN note text;\n",
    )
    .unwrap();
    assert!(dir.migrate(&db, &["stamp", "0001"]).status.success());
    let failed = dir.migrate(&db, &["diff"]);
    assert_eq!(failed.status.code(), Some(2));
    assert_eq!(
        stderr(&failed),
        format!(
            "error: replaying applied revision 0001 ({}/0001_alter.sql) into the shadow database failed: SQLSTATE 42P01: relation \"nowhere\" does not exist\n  help: the migrations no longer build what they built when they were applied (an extension or a role they need is missing on this server?); fix that, then diff again\n",
            dir.0.display()
        )
    );
    assert_eq!(shadows(&db), Vec::<String>::new());

    // A shadow given by URL: refused when it is the target or not empty, emptied after use.
    let good = Dir::copy_of("given", "tests/migrations/large", |_| true);
    let target = test_database();
    assert!(good.migrate(&target, &["apply"]).status.success());
    let itself = good.migrate(&target, &["diff", "--shadow-url", target.url()]);
    assert_eq!(itself.status.code(), Some(2));
    let redacted = target.url().to_owned();
    assert_eq!(
        stderr(&itself),
        format!(
            "error: refusing {redacted} as the shadow database: it is the target database itself\n  help: give --shadow-url an empty database of its own on a server like the target's (same major version and extensions), or leave it out to let the drift check create one (the role needs CREATEDB)\n"
        )
    );
    let shadow = test_database();
    shadow
        .client()
        .batch_execute("CREATE TABLE leftover (id int)")
        .unwrap();
    let full = good.migrate(&target, &["diff", "--shadow-url", shadow.url()]);
    assert_eq!(full.status.code(), Some(2));
    assert!(
        stderr(&full).starts_with(&format!(
            "error: refusing {} as the shadow database: it is not empty: relation public.leftover\n",
            shadow.url()
        )),
        "{}",
        stderr(&full)
    );
    shadow
        .client()
        .batch_execute("DROP TABLE leftover")
        .unwrap();
    for _ in 0..2 {
        let used = good.migrate(&target, &["diff", "--shadow-url", shadow.url()]);
        assert_eq!(
            stdout(&used),
            "no drift against the 4 applied revision(s)\n",
            "{}",
            stderr(&used)
        );
    }
}

#[test]
fn ctrl_c_or_sigterm_during_the_replay_drops_the_shadow_or_empties_a_given_one() {
    let _serial = serial();
    let db = test_database();
    let given = test_database();
    let dir = Dir::new("interrupt");
    // No transaction: the table is committed in the shadow before the replay sleeps.
    std::fs::write(
        dir.0.join("0001_slow.sql"),
        "-- revision: 0001\n-- parents: none\n-- migrate:no-transaction\nCREATE TABLE made_in_the_shadow (id int);\nSELECT pg_sleep(60);\n",
    )
    .unwrap();
    assert!(dir.migrate(&db, &["stamp", "0001"]).status.success());
    let tables_in = |database: &TestDatabase| -> i64 {
        database
            .client()
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname = 'made_in_the_shadow'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let cases = [("INT", 130), ("TERM", 143)]
        .into_iter()
        .flat_map(|signal| [(signal, None), (signal, Some(given.url()))]);
    for ((signal, exit), shadow_url) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_migrate"));
        command.arg("--dir").arg(&dir.0).arg("diff");
        if let Some(url) = shadow_url {
            command.args(["--shadow-url", url]);
        }
        let mut running = command
            .env("DATABASE_URL", db.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The replay sleeps once the table is made: the shadow exists until the signal.
        wait_for(Duration::from_secs(20), "the replay did not start", || {
            let replaying = db
                .client()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0);
            (replaying > 0).then_some(())
        });
        let signalled = Command::new("kill")
            .args([&format!("-{signal}"), &running.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        let status = wait_for(
            Duration::from_secs(20),
            "diff did not stop on the signal",
            || running.try_wait().unwrap(),
        );
        let output = running.wait_with_output().unwrap();
        assert_eq!(
            status.code(),
            Some(exit),
            "SIG{signal}: {}",
            stderr(&output)
        );
        assert!(
            !stderr(&output).contains("replaying"),
            "{}",
            stderr(&output)
        );
        assert_eq!(shadows(&db), Vec::<String>::new());
    }
    // The given shadow is empty again, as the next check requires.
    assert_eq!(tables_in(&given), 0);
}

#[test]
fn snapshot_is_written_read_by_status_and_stale_once_the_migrations_change() {
    let _serial = serial();
    let db = test_database();
    let dir = Dir::copy_of("snapshot", "tests/migrations/large", |_| true);
    let taken = dir.migrate(&db, &["snapshot"]);
    assert_eq!(
        stdout(&taken),
        format!(
            "wrote {}/schema.snapshot: the schema of 4 migration(s)\n",
            dir.0.display()
        ),
        "{}",
        stderr(&taken)
    );
    assert!(shadows(&db).is_empty());
    // The same migrations give the same file: no oid of the shadow's leaks into it.
    let first = std::fs::read_to_string(dir.0.join("schema.snapshot")).unwrap();
    assert!(dir.migrate(&db, &["snapshot"]).status.success());
    assert_eq!(
        std::fs::read_to_string(dir.0.join("schema.snapshot")).unwrap(),
        first
    );
    assert!(dir.migrate(&db, &["apply"]).status.success());
    let clean = dir.migrate(&db, &["status"]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(
        stdout(&clean).ends_with("\npass: 4 applied, 0 pending, 0 ahead\n"),
        "{}",
        stdout(&clean)
    );

    db.client()
        .batch_execute("ALTER TABLE billing.payments ALTER COLUMN paid_at TYPE timestamp")
        .unwrap();
    let drifted = dir.migrate(&db, &["status", "--json"]);
    assert_eq!(drifted.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(&stdout(&drifted)).unwrap();
    assert_eq!(value["status"], "warn");
    assert_eq!(
        value["schema_drift"][0]["object"],
        "column billing.payments.paid_at"
    );
    assert_eq!(
        value["schema_drift"][0]["actual"],
        "timestamp without time zone"
    );

    // A new migration makes the snapshot stale: a warning, and no drift check against it.
    std::fs::write(
        dir.0.join("0005_note.sql"),
        "-- revision: 0005\n-- parents: 0004\nALTER TABLE accounts ADD COLUMN note text;\n",
    )
    .unwrap();
    let check = dir.migrate(&db, &["check"]);
    assert!(
        stdout(&check).contains(&format!(
            "warning: {0}/schema.snapshot:1:1: [stale-snapshot] the schema snapshot was taken for other migrations than these: drift checks do not use it\n  = help: run `migrate --dir {0} snapshot` to take it again, or delete it\n",
            dir.0.display()
        )),
        "{}",
        stdout(&check)
    );
    assert!(dir.migrate(&db, &["apply"]).status.success());
    let status = dir.migrate(&db, &["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(value["status"], "pass");
    assert_eq!(value["schema_drift"], serde_json::Value::Null);
}

#[test]
fn a_database_with_no_history_is_compared_with_the_empty_schema() {
    let _serial = serial();
    let db = test_database();
    db.client()
        .batch_execute("CREATE TABLE legacy (id int PRIMARY KEY, nom text)")
        .unwrap();
    let dir = Dir::copy_of("no-history", "tests/migrations/drift_seed", |_| true);
    let diff = dir.migrate(&db, &["diff"]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    assert_eq!(
        stdout(&diff),
        "table public.legacy\n  table public.legacy [destructive]: migrations build (absent); the database has 2 column(s)\ndrift: 1 difference(s) against the 0 applied revision(s); 3 pending revision(s) not compared: 0001, 0002, 0003\n"
    );
    // Nothing was written to the database: no history table appeared.
    let tables: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'migrate_history'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

/// The history in a schema of its own (`MIGRATE_SCHEMA=ops`): that schema is the runner's, not
/// the migrations', so a database the migrations built shows no drift, and its status (what a
/// readiness probe reads, with the schema snapshot compared) passes.
#[test]
fn a_history_in_a_schema_of_its_own_is_no_drift() {
    let _serial = serial();
    let db = test_database();
    let dir = Dir::copy_of("ops-schema", "migrations", |_| true);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_migrate"))
            .arg("--dir")
            .arg(&dir.0)
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("MIGRATE_SCHEMA", "ops")
            .env_remove("MIGRATION_DATABASE_URL")
            .output()
            .unwrap()
    };
    let apply = run(&["apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let diff = run(&["diff"]);
    assert_eq!(
        stdout(&diff),
        "no drift against the 12 applied revision(s)\n",
        "{}",
        stderr(&diff)
    );
    assert_eq!(diff.status.code(), Some(0));
    let snapshot = run(&["snapshot"]);
    assert!(snapshot.status.success(), "{}", stderr(&snapshot));
    let status = run(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["status"], "pass", "{report}");
    assert_eq!(
        report["schema_drift"],
        serde_json::json!([]),
        "compared with the snapshot: {report}"
    );
}
