//! Drift: what the database has, against what its applied migrations build.
//!
//! The expected side is a shadow database into which exactly the revisions the history records
//! as applied are replayed, in their order. By default it is created on the target's own server
//! (same version, extensions and collations) and dropped on every path; shadows a killed run
//! left behind are found by their name, which carries their creation time, and removed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::catalog::{self, Catalog, Dependencies, Difference};
use super::connect::{connect, redact};
use super::error::{Error, ServerError, database_error};
use super::protocol::Migrator;
use super::status::Status;
use crate::Migration;

/// Shadow databases this tool creates: `migrate_shadow_<unix seconds>_<random>`.
pub const SHADOW_PREFIX: &str = "migrate_shadow_";

/// A shadow older than this is an orphan of a run that was killed.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The outcome of a drift check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Grouped by object: tables in name order, then the other objects.
    pub differences: Vec<Difference>,
    /// Revisions of the binary the database has not applied: pending, never drift.
    pub pending: Vec<&'static str>,
    /// The applied revisions replayed to build the expected schema.
    pub replayed: Vec<String>,
}

impl Drift {
    /// No difference: the database is what its applied migrations build.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// `url` with its database name replaced.
pub(crate) fn with_database(url: &str, database: &str) -> Result<String, Error> {
    url_naming(
        url,
        database,
        "the drift check needs a postgres:// URL to reach its shadow database",
    )
}

/// `url` with its path naming `database` instead; when it cannot be (a key=value connection
/// string has no path), an error that ends with `why` a URL is needed, and shows no password.
pub(crate) fn url_naming(url: &str, database: &str, why: &str) -> Result<String, Error> {
    super::connect::url_for_database(url, database).map_err(|e| Error::InvalidConfig {
        name: "database URL".to_owned(),
        value: redact(url),
        reason: format!("{e}; {why}"),
    })
}

fn new_shadow_name(now: SystemTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(seconds);
    hasher.write_u32(std::process::id());
    format!("{SHADOW_PREFIX}{seconds}_{:08x}", hasher.finish() as u32)
}

/// The creation time a shadow's name carries.
fn shadow_created(name: &str) -> Option<u64> {
    name.strip_prefix(SHADOW_PREFIX)?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// The rows `sql` returns, as text cells.
fn query(client: &mut Client, sql: &str, action: &str) -> Result<Vec<crate::snapshot::Row>, Error> {
    let messages = client.simple_query(sql).map_err(database_error(action))?;
    Ok(super::catalog::rows(&messages).collect())
}

/// Cell `i` of a row, `""` for a NULL or a missing one.
fn cell(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Drops the shadows that runs older than [`ORPHAN_AGE`] left behind; returns their names.
pub fn remove_orphaned_shadows(admin: &mut Client) -> Result<Vec<String>, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let names = query(
        admin,
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, {})",
            escape_literal(SHADOW_PREFIX)
        ),
        "listing shadow databases",
    )?;
    let mut removed = Vec::new();
    for name in names.iter().map(|row| cell(row, 0)) {
        if shadow_created(&name).is_some_and(|created| created + ORPHAN_AGE.as_secs() < now) {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    escape_identifier(&name)
                ))
                .map_err(database_error("dropping an orphaned shadow database"))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// A shadow a Ctrl-C handler must clean before the process exits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// Created here: dropped through the target's server (`url`).
    Drop { url: String, name: String },
    /// Given with `--shadow-url`: emptied.
    Empty { url: String },
}

/// The shadows this process has and has not cleaned yet.
static ACTIVE: std::sync::Mutex<Vec<Pending>> = std::sync::Mutex::new(Vec::new());

fn active() -> std::sync::MutexGuard<'static, Vec<Pending>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`drop_active_shadows`] ran: the errors of the check it cut short are its doing.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Drops the shadow databases this process created, and empties the ones it was given, through
/// new connections: for a signal handler, while the thread that uses them is stuck in a query.
pub fn drop_active_shadows(application_name: &str) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let shadows = std::mem::take(&mut *active());
    for shadow in shadows {
        let cleaned = match &shadow {
            Pending::Drop { url, name } => connect(url, application_name).and_then(|mut admin| {
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        escape_identifier(name)
                    ))
                    .map_err(database_error("dropping the shadow database"))
            }),
            // The replay's session holds locks on what it created: end it first.
            Pending::Empty { url } => connect(url, application_name).and_then(|mut client| {
                client
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid(); {EMPTY_DATABASE}"
                    ))
                    .map_err(database_error("emptying the shadow database"))
            }),
        };
        if let Err(e) = cleaned {
            log::warn!("could not clean the shadow database: {e}");
        }
    }
}

/// The rows with each object's oid (the last cell of a `table` or `object` row, which only
/// orders a baseline) replaced by its rank, and without the oids of constraints and indexes (the
/// rows are read without the dependencies between oids), in a set order: the same migrations
/// give the same snapshot text on any server.
fn creation_ranks(rows: Vec<crate::snapshot::Row>) -> Vec<crate::snapshot::Row> {
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|mut row| {
            match row.first() {
                Some(Some(tag)) if tag == "constraint" => row.truncate(6),
                Some(Some(tag)) if tag == "index" => row.truncate(5),
                _ => {}
            }
            row
        })
        .collect();
    let ordered = |row: &crate::snapshot::Row| matches!(row.first(), Some(Some(tag)) if tag == "table" || tag == "object");
    let mut oids: Vec<u64> = rows
        .iter()
        .filter(|r| ordered(r))
        .filter_map(|r| r.last()?.as_deref()?.parse().ok())
        .collect();
    oids.sort_unstable();
    oids.dedup();
    for row in rows.iter_mut().filter(|r| ordered(r)) {
        if let Some(cell) = row.last_mut()
            && let Some(oid) = cell.as_deref().and_then(|v| v.parse::<u64>().ok())
            && let Ok(rank) = oids.binary_search(&oid)
        {
            *cell = Some((rank + 1).to_string());
        }
    }
    // The server returns some of them in no set order (a scan of `pg_description` or
    // `pg_constraint`): each kind of row in its place, then by content. A table's columns keep
    // their `attnum` order.
    let mut kinds: Vec<Option<String>> = Vec::new();
    for row in &rows {
        let kind = row.first().cloned().flatten();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    let place = |row: &crate::snapshot::Row| {
        let kind = row.first().cloned().flatten();
        kinds.iter().position(|k| *k == kind).unwrap_or(0)
    };
    rows.sort_by(|a, b| {
        place(a).cmp(&place(b)).then_with(|| {
            if matches!(a.first(), Some(Some(tag)) if tag == "column") {
                std::cmp::Ordering::Equal
            } else {
                a.cmp(b)
            }
        })
    });
    rows
}

/// Whether `error` is a cluster-wide object (a role, a tablespace) that already exists on the
/// shadow's server: the shadow shares its server's roles and tablespaces, and the migration that
/// created one ran there when it was applied. The server names the routine that refused it, so
/// a duplicate object of the database itself (a real error of the migrations) is not mistaken
/// for one; inside a DO block the block's other work would be lost with it, so that stays an
/// error.
fn exists_on_the_server(error: &postgres::Error) -> bool {
    // `where` is the PL/pgSQL context: set when the statement ran inside a DO block or a
    // function, whose other statements must not be skipped with it.
    super::error::db_error(error).is_some_and(|db| {
        db.code().code() == "42710"
            && matches!(db.routine(), Some("CreateRole" | "CreateTableSpace"))
            && db.where_().is_none()
    })
}

/// What a tenant's schema lives among in its database, which its migrations may use without
/// creating it: the database's extensions (`uuid_generate_v4()`, `citext`) and the objects of
/// `public`, which comes after the tenant's schema in the `search_path` its migrations run with
/// (a `plans` table all tenants reference, a shared function). Empty for a whole database.
#[derive(Default)]
struct Surroundings {
    extensions: Vec<Extension>,
    /// The statements creating `public`'s objects, one object each, in creation order.
    shared: Vec<String>,
}

/// At most this many statements of [`Surroundings::install`] share a transaction: each holds
/// its locks until the commit, and the server's lock table, which its other clients need too,
/// has room for about 64 per connection.
const STATEMENTS_PER_TRANSACTION: usize = 64;

/// An extension of the target database: its name, schema and version.
struct Extension {
    name: String,
    schema: String,
    version: String,
}

/// The extensions of the target's database, in the order they were created (one that requires
/// another comes after it).
fn database_extensions(client: &mut Client) -> Result<Vec<Extension>, Error> {
    let rows = query(
        client,
        "SELECT e.extname, n.nspname, e.extversion FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
         WHERE e.extname <> 'plpgsql' ORDER BY e.oid",
        "reading the database's extensions",
    )?;
    Ok(rows
        .iter()
        .map(|row| Extension {
            name: cell(row, 0),
            schema: cell(row, 1),
            version: cell(row, 2),
        })
        .collect())
}

impl Surroundings {
    /// The statements creating them, each with what it creates.
    fn statements(&self) -> Vec<(String, String)> {
        let extensions = self.extensions.iter().map(|extension| {
            // A system schema exists, and is refused by `CREATE SCHEMA` (`pg_trgm` is often
            // installed in `pg_catalog`).
            let schema = escape_identifier(&extension.schema);
            let create_schema = if system_schema(&extension.schema) {
                String::new()
            } else {
                format!("CREATE SCHEMA IF NOT EXISTS {schema}; ")
            };
            (
                format!(
                    "{create_schema}CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {schema} VERSION {}",
                    escape_identifier(&extension.name),
                    escape_literal(&extension.version),
                ),
                format!("extension {} {}", extension.name, extension.version),
            )
        });
        let shared = self.shared.iter().map(|sql| {
            (
                sql.clone(),
                sql.lines().next().unwrap_or_default().to_owned(),
            )
        });
        extensions.chain(shared).collect()
    }

    /// Creates them in the shadow, before the tenant's migrations are replayed, and returns what
    /// it refused, each with the server's reason. In transactions of a bounded number of
    /// statements, each sent at once, or, when the shadow refuses one, statement by statement
    /// under a savepoint. The order of `public`'s objects is their kind's and their age
    /// (`pg_depend` is not read: it holds every tenant's rows), so what is refused is tried again
    /// after the others, until a round creates nothing more: a table whose default calls a
    /// function made later, a domain checked by one. What stays refused is left out: an extension
    /// the shadow's role may not create (not trusted, no superuser), a view over one tenant's
    /// table. A tenant's drift compares neither; a migration that needs one fails its replay,
    /// and the error lists them.
    fn install(&self, shadow: &mut Client) -> Result<Vec<String>, Error> {
        let mut pending = self.statements();
        let mut refused = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            refused.clear();
            for chunk in pending.chunks(STATEMENTS_PER_TRANSACTION) {
                refused.extend(create_in_one_transaction(chunk, shadow)?);
            }
            let progress = refused.len() < before;
            pending = refused
                .iter()
                .map(|(statement, _)| statement.clone())
                .collect();
            if !progress {
                break;
            }
        }
        Ok(refused
            .into_iter()
            .map(|((_, what), reason)| format!("{what} ({reason})"))
            .collect())
    }
}

/// Runs `statements` in one transaction on `shadow`: all at once, or, when one is refused, each
/// under a savepoint. Returns the refused ones with the server's reason.
#[allow(clippy::type_complexity)]
fn create_in_one_transaction(
    statements: &[(String, String)],
    shadow: &mut Client,
) -> Result<Vec<((String, String), String)>, Error> {
    let failed = database_error("creating what the tenants share in the shadow");
    let mut transaction = shadow.transaction().map_err(&failed)?;
    // A function's body that is a string is not read until it runs: it may name what comes
    // after it, or what only tenants have. Each statement ends on a line of its own: a last line
    // that is a comment would hide the semicolon.
    let all: Vec<&str> = statements.iter().map(|(sql, _)| sql.as_str()).collect();
    let at_once = format!(
        "SET LOCAL check_function_bodies = off; SAVEPOINT migrate_shared;\n{}\n;",
        all.join("\n;\n")
    );
    if transaction.batch_execute(&at_once).is_ok() {
        transaction.commit().map_err(&failed)?;
        return Ok(Vec::new());
    }
    transaction
        .batch_execute("ROLLBACK TO SAVEPOINT migrate_shared")
        .map_err(&failed)?;
    let mut refused = Vec::new();
    for statement in statements {
        // Each releases the savepoint before it, which outlives a rollback to it.
        let sent = format!(
            "RELEASE SAVEPOINT migrate_shared; SAVEPOINT migrate_shared;\n{}",
            statement.0
        );
        if let Err(e) = transaction.batch_execute(&sent) {
            let reason = super::error::db_error(&e)
                .map_or_else(|| e.to_string(), |db| db.message().to_owned());
            refused.push((statement.clone(), reason));
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT migrate_shared")
                .map_err(&failed)?;
        }
    }
    transaction.commit().map_err(&failed)?;
    Ok(refused)
}

/// A schema every database has.
fn system_schema(name: &str) -> bool {
    name == "pg_catalog" || name == "information_schema"
}

fn read_catalog(
    client: &mut Client,
    settings: &super::config::Settings,
    dependencies: Dependencies,
) -> Result<Catalog, Error> {
    super::protocol::outside_async_runtime(|| {
        super::driver::block_on(Catalog::read(client, settings, dependencies))
    })?
    .map_err(database_error("reading the catalog"))
}

/// Runs `migrations`, in order, on `shadow`: each transactional one in one transaction, each
/// no-transaction one statement by statement. A statement that creates a role or a tablespace
/// the server already has is skipped: the shadow's database is new, its server is not.
fn replay(migrations: &[&Migration], shadow: &mut Client) -> Result<Vec<String>, Error> {
    let mut replayed = Vec::new();
    for migration in migrations {
        let failed = |e: postgres::Error| Error::Replay {
            revision: migration.revision().to_owned(),
            path: migration.path().to_owned(),
            cause: Box::new(ServerError::from_postgres(&e)),
            left_out: Vec::new(),
        };
        let skipped = |sql: &str| {
            log::info!(
                "replaying {}: the server already has what `{}` creates; skipped",
                migration.revision(),
                sql.trim()
            );
        };
        if migration.no_transaction() {
            for statement in migration.statements() {
                let sql = migration.statement_sql(statement);
                match shadow.batch_execute(sql) {
                    Err(e) if exists_on_the_server(&e) => skipped(sql),
                    done => done.map_err(failed)?,
                }
            }
        } else {
            let mut transaction = shadow.transaction().map_err(failed)?;
            // Each statement under a savepoint of its own, sent with it (and with the release of
            // the one before): a statement the shadow's server refuses as already there is
            // rolled back alone, at no round trip more per statement.
            let mut release = "";
            for statement in migration.statements() {
                let sql = migration.statement_sql(statement);
                let sent = format!("{release}SAVEPOINT migrate_replay;\n{sql}");
                match transaction.batch_execute(&sent) {
                    Err(e) if exists_on_the_server(&e) => {
                        skipped(sql);
                        transaction
                            .batch_execute("ROLLBACK TO SAVEPOINT migrate_replay")
                            .map_err(failed)?;
                    }
                    done => done.map_err(failed)?,
                }
                release = "RELEASE SAVEPOINT migrate_replay; ";
            }
            transaction.commit().map_err(failed)?;
        }
        replayed.push(migration.revision().to_owned());
    }
    Ok(replayed)
}

/// A shadow database, emptied or dropped when it goes out of scope (also on a panic).
pub struct Shadow {
    /// The shadow's own connection.
    pub client: Client,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Created here on the target's server: dropped through the target's connection.
    Drop { admin: Box<Client>, name: String },
    /// Given by the caller (`url`): emptied, so that it is empty for the next check.
    Empty { url: String },
}

/// Everything a schema can hold, out of the database (the public schema is made again as
/// PostgreSQL creates it).
const EMPTY_DATABASE: &str = "DO $$ DECLARE r record; BEGIN \
    FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname); END LOOP; \
    FOR r IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)' LOOP EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname); END LOOP; \
    END $$; \
    CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC; \
    COMMENT ON SCHEMA public IS 'standard public schema'";

/// What a database holds beyond what every new database has, one object a row.
const CONTENTS: &str = "BEGIN READ ONLY; SET LOCAL search_path = pg_catalog; SELECT what FROM ( \
    SELECT 'relation ' || c.oid::regclass::text AS what FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' AND c.relkind NOT IN ('i', 'I', 't') \
    UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
    UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' AND t.typtype IN ('e', 'd', 'r', 'b') AND t.typelem = 0 \
    UNION ALL SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n \
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname !~ '^pg_(toast|temp)' \
    UNION ALL SELECT 'extension ' || quote_ident(extname) FROM pg_extension WHERE extname <> 'plpgsql' \
    ) x ORDER BY what; COMMIT";

/// The server's identity and the database's name: two URLs that reach the same database
/// agree on both.
fn identity(client: &mut Client) -> Result<(String, String), Error> {
    let rows = query(
        client,
        "SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database()",
        "identifying the database",
    )?;
    Ok(rows
        .first()
        .map(|row| (cell(row, 0), cell(row, 1)))
        .unwrap_or_default())
}

impl Shadow {
    /// A new database on the target's server, built from `template0` with the target's
    /// encoding and locale. Removes orphaned shadows first.
    pub fn create(
        mut admin: Client,
        target_url: &str,
        application_name: &str,
    ) -> Result<Shadow, Error> {
        remove_orphaned_shadows(&mut admin)?;
        let name = new_shadow_name(SystemTime::now());
        let settings = query(
            &mut admin,
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = current_database()",
            "reading the target's encoding",
        )?;
        let or = |row: Option<&crate::snapshot::Row>, i: usize, default: &str| {
            row.and_then(|r| r.get(i).cloned().flatten())
                .unwrap_or_else(|| default.to_owned())
        };
        let first = settings.first();
        let (encoding, collate, ctype) =
            (or(first, 0, "UTF8"), or(first, 1, "C"), or(first, 2, "C"));
        // Registered before it exists, so that a Ctrl-C at any point finds it.
        let pending = Pending::Drop {
            url: target_url.to_owned(),
            name: name.clone(),
        };
        active().push(pending.clone());
        let created = admin.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            escape_identifier(&name),
            escape_literal(&encoding),
            escape_literal(&collate),
            escape_literal(&ctype)
        ));
        if created.is_err() {
            active().retain(|p| *p != pending);
        }
        created.map_err(|e| Error::Database {
            action: "creating the shadow database (the role needs CREATEDB, or pass --shadow-url)"
                .to_owned(),
            cause: Box::new(ServerError::from_postgres(&e)),
        })?;
        let cleanup = Cleanup::Drop {
            admin: Box::new(admin),
            name: name.clone(),
        };
        // From here on, the shadow goes away with `cleanup` whatever happens.
        let client = match with_database(target_url, &name)
            .and_then(|url| connect(&url, application_name))
        {
            Ok(client) => client,
            Err(e) => {
                drop(cleanup);
                return Err(e);
            }
        };
        Ok(Shadow { client, cleanup })
    }

    /// The shadow of a check on `target` (reached at `url`): the empty database at
    /// `shadow_url` when given, else a new one on the target's server.
    pub fn open(
        mut target: Client,
        url: &str,
        shadow_url: Option<&str>,
        application_name: &str,
    ) -> Result<Shadow, Error> {
        match shadow_url {
            Some(shadow_url) => Shadow::given(shadow_url, &mut target, application_name),
            None => Shadow::create(target, url, application_name),
        }
    }

    /// The database at `shadow_url`, refused unless it is empty and is not the target.
    pub fn given(
        shadow_url: &str,
        target: &mut Client,
        application_name: &str,
    ) -> Result<Shadow, Error> {
        let mut client = connect(shadow_url, application_name)?;
        let refuse = |reason: String| Error::ShadowRefused {
            shadow: redact(shadow_url),
            reason,
        };
        if identity(&mut client)? == identity(target)? {
            return Err(refuse("it is the target database itself".to_owned()));
        }
        let contents: Vec<String> = query(&mut client, CONTENTS, "checking the shadow is empty")?
            .iter()
            .map(|row| cell(row, 0))
            .collect();
        if !contents.is_empty() {
            let shown = contents
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let more = match contents.len() {
                n if n > 5 => format!(" and {} more", n - 5),
                _ => String::new(),
            };
            return Err(refuse(format!("it is not empty: {shown}{more}")));
        }
        active().push(Pending::Empty {
            url: shadow_url.to_owned(),
        });
        Ok(Shadow {
            client,
            cleanup: Cleanup::Empty {
                url: shadow_url.to_owned(),
            },
        })
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        match &mut self.cleanup {
            Cleanup::Drop { admin, name } => {
                active()
                    .retain(|p| !matches!(p, Pending::Drop { name: active, .. } if active == name));
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    escape_identifier(name)
                );
                if let Err(e) = admin.batch_execute(&sql) {
                    log::warn!(
                        "could not drop the shadow database {name}: {e}; the next drift check removes it once it is an hour old"
                    );
                }
            }
            Cleanup::Empty { url } => {
                active().retain(|p| !matches!(p, Pending::Empty { url: active } if active == url));
                if let Err(e) = self.client.batch_execute(EMPTY_DATABASE) {
                    log::warn!("could not empty the shadow database: {e}");
                }
            }
        }
    }
}

impl Migrator<'_> {
    /// Compares the database at `url` with what its applied revisions build, replayed into a
    /// shadow database: `shadow_url` when given (an empty database of its own), else a
    /// database created on the target's server for the check and dropped after it.
    pub fn drift(&self, url: &str, shadow_url: Option<&str>) -> Result<Drift, Error> {
        self.validate()?;
        let name = &self.settings().application_name;
        let mut target = connect(url, name)?;
        // The history alone: the snapshot's comparison would be one more catalog read.
        let status = self.history_status(&mut target)?;
        let actual = self.drift_catalog(&mut target)?;
        let mut shadow = Shadow::open(target, url, shadow_url, name)?;
        let replayed = match self.replay(&status, &mut shadow.client) {
            // A tenant's migrations may use what the database has beside its schema without
            // creating it: replayed again, in a new shadow given that first. Not at once: what a
            // migration creates itself (`CREATE EXTENSION citext` in the first tenant's run, an
            // extension updated to its version) must not be there before it.
            Err(Error::Replay { .. }) if self.settings().tenant_schema.is_some() => {
                drop(shadow);
                let mut target = connect(url, name)?;
                let surroundings = self.surroundings(&mut target)?;
                shadow = Shadow::open(target, url, shadow_url, name)?;
                let left_out = surroundings.install(&mut shadow.client)?;
                self.replay(&status, &mut shadow.client)
                    .map_err(|error| match error {
                        Error::Replay {
                            revision,
                            path,
                            cause,
                            ..
                        } => Error::Replay {
                            revision,
                            path,
                            cause,
                            left_out,
                        },
                        other => other,
                    })?
            }
            replayed => replayed?,
        };
        let expected = self.drift_catalog(&mut shadow.client)?;
        drop(shadow);
        Ok(Drift {
            differences: catalog::diff(&expected, &actual),
            pending: status.pending.iter().map(|m| m.revision()).collect(),
            replayed,
        })
    }

    /// The catalog drift compares: with its dependencies (the order a written fix needs), but
    /// for a tenant's schema, whose drift is reported and never written (`pg_depend` holds every
    /// tenant's rows, and reading it costs as much as the database is large).
    fn drift_catalog(&self, client: &mut Client) -> Result<Catalog, Error> {
        let dependencies = if self.settings().tenant_schema.is_some() {
            Dependencies::Skip
        } else {
            Dependencies::Read
        };
        read_catalog(client, self.settings(), dependencies)
    }

    /// What the tenant's schema lives among (nothing for a whole database).
    fn surroundings(&self, target: &mut Client) -> Result<Surroundings, Error> {
        let Some(tenant) = &self.settings().tenant_schema else {
            return Ok(Surroundings::default());
        };
        let extensions = database_extensions(target)?;
        let shared = if tenant == "public" {
            Vec::new()
        } else {
            let mut public = self.settings().clone();
            public.tenant_schema = Some("public".to_owned());
            let catalog = read_catalog(target, &public, Dependencies::Skip)?;
            catalog::creation_statements(&catalog)
        };
        Ok(Surroundings { extensions, shared })
    }

    /// Runs the applied revisions, in their order, on `shadow`.
    fn replay(&self, status: &Status, shadow: &mut Client) -> Result<Vec<String>, Error> {
        if !status.ahead.is_empty() {
            return Err(Error::CannotReplay {
                unknown: status.ahead.iter().map(|a| a.revision.clone()).collect(),
            });
        }
        let mut migrations = Vec::new();
        for row in &status.applied {
            let Some(migration) = self.migrations().get(&row.revision) else {
                return Err(Error::CannotReplay {
                    unknown: vec![row.revision.to_string()],
                });
            };
            migrations.push(migration);
        }
        // A tenant's migrations run in its schema, first in `search_path`, as the fleet runs
        // them.
        if let Some(tenant) = &self.settings().tenant_schema {
            let search_path = self
                .settings()
                .search_path
                .clone()
                .unwrap_or_else(|| escape_identifier(tenant));
            shadow
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}; SELECT set_config('search_path', {}, false)",
                    escape_identifier(tenant),
                    escape_literal(&search_path)
                ))
                .map_err(database_error(
                    "preparing the tenant's schema in the shadow",
                ))?;
        }
        replay(&migrations, shadow)
    }

    /// The schema snapshot of these migrations: every one of them replayed into a shadow
    /// database on `url`'s server (or into the empty `shadow_url`), then its catalog, as the
    /// text of [`SNAPSHOT_FILE`](crate::snapshot::SNAPSHOT_FILE).
    pub fn snapshot(&self, url: &str, shadow_url: Option<&str>) -> Result<String, Error> {
        self.validate()?;
        let name = &self.settings().application_name;
        let target = connect(url, name)?;
        let mut shadow = Shadow::open(target, url, shadow_url, name)?;
        let all: Vec<&Migration> = self.migrations().iter().collect();
        replay(&all, &mut shadow.client)?;
        let settings = self.settings();
        let client = &mut shadow.client;
        let rows = super::protocol::outside_async_runtime(|| {
            // A snapshot keeps no dependency.
            super::driver::block_on(Catalog::read_rows(client, settings, Dependencies::Skip))
        })?
        .map_err(database_error("reading the shadow's catalog"))?;
        let key = crate::snapshot::key(self.migrations().iter().map(Migration::checksum));
        Ok(crate::snapshot::encode(&key, &creation_ranks(rows)))
    }

    /// The schema `through` and its ancestors build: they are replayed, in order, into a shadow
    /// database on `url`'s server (or into the empty `shadow_url`), and its catalog is read.
    /// What `squash` renders as one migration.
    pub fn catalog_through(
        &self,
        url: &str,
        shadow_url: Option<&str>,
        through: &[&str],
    ) -> Result<Catalog, Error> {
        self.validate()?;
        let name = &self.settings().application_name;
        let target = connect(url, name)?;
        let mut shadow = Shadow::open(target, url, shadow_url, name)?;
        let chosen: Vec<&Migration> = self
            .migrations()
            .iter()
            .filter(|m| through.contains(&m.revision()))
            .collect();
        replay(&chosen, &mut shadow.client)?;
        self.catalog(&mut shadow.client)
    }

    /// Replays `sql` (a baseline) into a shadow database on `url`'s server and compares the
    /// result with `live`: empty when the baseline recreates the schema exactly.
    pub fn verify_baseline(
        &self,
        url: &str,
        sql: &str,
        live: &Catalog,
    ) -> Result<Vec<Difference>, Error> {
        self.validate()?;
        let name = &self.settings().application_name;
        let target = connect(url, name)?;
        let mut shadow = Shadow::create(target, url, name)?;
        let replay_failed = |e: postgres::Error| Error::BaselineReplay {
            cause: Box::new(ServerError::from_postgres(&e)),
        };
        let mut transaction = shadow.client.transaction().map_err(replay_failed)?;
        transaction.batch_execute(sql).map_err(replay_failed)?;
        transaction.commit().map_err(replay_failed)?;
        let rebuilt = self.catalog(&mut shadow.client)?;
        Ok(catalog::diff(live, &rebuilt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_names_carry_their_creation_time_and_differ() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = new_shadow_name(now);
        let b = new_shadow_name(now);
        assert!(a.starts_with("migrate_shadow_1800000000_"), "{a}");
        assert_ne!(a, b);
        assert_eq!(shadow_created(&a), Some(1_800_000_000));
        assert_eq!(shadow_created("migrate_shadow_x"), None);
        assert_eq!(shadow_created("app"), None);
        // A PostgreSQL identifier holds 63 bytes.
        assert!(a.len() <= 63);
    }

    #[test]
    fn the_shadow_url_differs_from_the_target_only_in_its_database() {
        assert_eq!(
            with_database("postgres://u:p@db:5433/app?sslmode=require", "s").unwrap(),
            "postgres://u:p@db:5433/s?sslmode=require"
        );
        // A `dbname` in the query would win over the path: the shadow's replay would run in
        // the database the URL names.
        assert_eq!(
            with_database("postgres://u@db/app?dbname=app&sslmode=require", "s").unwrap(),
            "postgres://u@db/s?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://u@db/?DBNAME=app", "s").unwrap(),
            "postgres://u@db/s"
        );
        let refused = with_database("host=db dbname=app", "s").unwrap_err();
        assert!(!refused.to_string().contains("p@"), "{refused}");
    }
}
