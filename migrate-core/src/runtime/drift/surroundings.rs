//! What a tenant's schema lives among in its database, given to the shadow before a replay
//! that needs it.

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::{cell, query, read_catalog};
use crate::runtime::catalog::{self, Dependencies};
use crate::runtime::config::Settings;
use crate::runtime::error::{Error, database_error};

/// What a tenant's schema lives among in its database, which its migrations may use without
/// creating it: the database's extensions (`uuid_generate_v4()`, `citext`) and the objects of
/// `public`, which comes after the tenant's schema in the `search_path` its migrations run with
/// (a `plans` table all tenants reference, a shared function). Empty for a whole database.
#[derive(Default)]
pub(super) struct Surroundings {
    extensions: Vec<Extension>,
    /// The statements creating `public`'s objects, one object each, in creation order.
    shared: Vec<String>,
}

/// At most this many statements of [`Surroundings::install`] share a transaction: each holds
/// its locks until the commit, and the server's lock table, which its other clients need too,
/// has room for about 64 per connection.
const STATEMENTS_PER_TRANSACTION: usize = 64;

/// A statement of [`Surroundings::install`] and what it creates, as the error names it.
#[derive(Clone)]
struct Creation {
    sql: String,
    what: String,
}

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
    /// What the tenant's schema of `settings` lives among (nothing for a whole database).
    pub(super) fn read(settings: &Settings, target: &mut Client) -> Result<Surroundings, Error> {
        let Some(tenant) = &settings.tenant_schema else {
            return Ok(Surroundings::default());
        };
        let extensions = database_extensions(target)?;
        let shared = if tenant == "public" {
            Vec::new()
        } else {
            let mut public = settings.clone();
            public.tenant_schema = Some("public".to_owned());
            let catalog = read_catalog(target, &public, Dependencies::Skip)?;
            catalog::creation_statements(&catalog)
        };
        Ok(Surroundings { extensions, shared })
    }

    /// The statements creating them, each with what it creates.
    fn statements(&self) -> Vec<Creation> {
        let extensions = self.extensions.iter().map(|extension| {
            // A system schema exists, and is refused by `CREATE SCHEMA` (`pg_trgm` is often
            // installed in `pg_catalog`).
            let schema = escape_identifier(&extension.schema);
            let create_schema = if system_schema(&extension.schema) {
                String::new()
            } else {
                format!("CREATE SCHEMA IF NOT EXISTS {schema}; ")
            };
            Creation {
                sql: format!(
                    "{create_schema}CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {schema} VERSION {}",
                    escape_identifier(&extension.name),
                    escape_literal(&extension.version),
                ),
                what: format!("extension {} {}", extension.name, extension.version),
            }
        });
        let shared = self.shared.iter().map(|sql| Creation {
            sql: sql.clone(),
            what: sql.lines().next().unwrap_or_default().to_owned(),
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
    pub(super) fn install(&self, shadow: &mut Client) -> Result<Vec<String>, Error> {
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
                .map(|(creation, _)| creation.clone())
                .collect();
            if !progress {
                break;
            }
        }
        Ok(refused
            .into_iter()
            .map(|(creation, reason)| format!("{} ({reason})", creation.what))
            .collect())
    }
}

/// Runs `statements` in one transaction on `shadow`: all at once, or, when one is refused, each
/// under a savepoint. Returns the refused ones with the server's reason.
fn create_in_one_transaction(
    statements: &[Creation],
    shadow: &mut Client,
) -> Result<Vec<(Creation, String)>, Error> {
    let failed = database_error("creating what the tenants share in the shadow");
    let mut transaction = shadow.transaction().map_err(&failed)?;
    // A function's body that is a string is not read until it runs: it may name what comes
    // after it, or what only tenants have. Each statement ends on a line of its own: a last line
    // that is a comment would hide the semicolon.
    let all: Vec<&str> = statements.iter().map(|c| c.sql.as_str()).collect();
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
    for creation in statements {
        // Each releases the savepoint before it, which outlives a rollback to it.
        let sent = format!(
            "RELEASE SAVEPOINT migrate_shared; SAVEPOINT migrate_shared;\n{}",
            creation.sql
        );
        if let Err(e) = transaction.batch_execute(&sent) {
            let reason = crate::runtime::error::db_error(&e)
                .map_or_else(|| e.to_string(), |db| db.message().to_owned());
            refused.push((creation.clone(), reason));
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
