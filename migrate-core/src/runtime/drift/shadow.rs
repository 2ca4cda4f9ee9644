//! Shadow databases: created on the target's server (or given), dropped or emptied on every
//! path, also from a signal handler; the orphans of a killed run found by the creation time
//! their name carries, and removed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::{cell, query, with_database};
use crate::runtime::connect::{connect, redact};
use crate::runtime::error::{Error, ServerError, database_error};

/// Shadow databases this tool creates: `migrate_shadow_<unix seconds>_<random>`.
pub const SHADOW_PREFIX: &str = "migrate_shadow_";

/// A shadow older than this is an orphan of a run that was killed.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

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

/// Adds a shadow to the ones a signal's handler cleans; refused once the handler has run, since
/// it would not clean it.
fn register(pending: Pending) -> Result<(), Error> {
    let mut active = active();
    if interrupted() {
        return Err(cut_short());
    }
    active.push(pending);
    Ok(())
}

/// Shadows whose `CREATE DATABASE` is under way: a signal's handler that finds one in the list
/// drops nothing yet, so it waits for the creator, who drops what it made once it sees the
/// handler ran.
static CREATING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One creation counted in [`CREATING`] while it lives.
struct Creating;

impl Creating {
    fn start() -> Creating {
        CREATING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Creating
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        CREATING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn cut_short() -> Error {
    Error::ShadowRefused {
        shadow: "(none)".to_owned(),
        reason: "the check was interrupted".to_owned(),
    }
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
                    .batch_execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    )
                    .and_then(|()| empty(&mut client))
                    .map_err(database_error("emptying the shadow database"))
            }),
        };
        if let Err(e) = cleaned {
            log::warn!("could not clean the shadow database: {e}");
        }
    }
    // A creation under way drops its own database once it sees the flag set above.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while CREATING.load(std::sync::atomic::Ordering::SeqCst) > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// The relations of the user's that a drop must name: tables, views, sequences…, but those an
/// extension or a table owns, which go with their owner.
macro_rules! user_relations {
    () => {
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype IN ('e', 'a', 'i'))"
    };
}

/// The statements dropping at most 100 relations of the user's (newest first, those an
/// extension or a table owns going with it), as a DO block: one transaction, whose locks the
/// server's lock table has room for. Relations are most of what a large schema holds.
const DROP_SOME_RELATIONS: &str = concat!(
    "DO $$ DECLARE d text; BEGIN \
     FOREACH d IN ARRAY coalesce((SELECT array_agg(format('DROP %s IF EXISTS %s CASCADE', \
     CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, \
     c.oid::regclass::text)) FROM (SELECT c.oid, c.relkind ",
    user_relations!(),
    " ORDER BY c.oid DESC LIMIT 100) c), '{}') LOOP EXECUTE d; END LOOP; END $$"
);

/// Whether relations of the user's are left for [`DROP_SOME_RELATIONS`].
const RELATIONS_LEFT: &str = concat!("SELECT EXISTS (SELECT 1 ", user_relations!(), ")::text");

/// Empties a given shadow: its relations a hundred at a time, then everything else at once.
fn empty(client: &mut Client) -> Result<(), postgres::Error> {
    // A bound, should a drop keep failing to shrink what is left.
    for _ in 0..100_000 {
        let left = client.simple_query(RELATIONS_LEFT)?.into_iter().any(|message| {
            matches!(message, postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("true"))
        });
        if !left {
            break;
        }
        client.batch_execute(DROP_SOME_RELATIONS)?;
    }
    client.batch_execute(EMPTY_DATABASE)
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
        let creating = Creating::start();
        register(pending.clone())?;
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
        // A signal's handler that took the list before the database existed dropped nothing.
        if interrupted() {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                escape_identifier(&name)
            ));
            return Err(cut_short());
        }
        drop(creating);
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
        register(Pending::Empty {
            url: shadow_url.to_owned(),
        })?;
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
                if let Err(e) = empty(&mut self.client) {
                    log::warn!("could not empty the shadow database: {e}");
                }
            }
        }
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
}
