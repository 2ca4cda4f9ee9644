//! The template a test database is copied from: built once per set of migrations under an
//! advisory lock, marked complete only when its migrations all ran; and the removal of what old
//! runs left on the server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use sha2::{Digest, Sha256};

use super::{TEST_PREFIX, locked, rows, unix_seconds, with_database};
use crate::Migrations;
use crate::runtime::error::database_error;
use crate::runtime::{Error, Migrator};

/// Templates: `migrate_tpl_<digest of the migrations>`.
pub const TEMPLATE_PREFIX: &str = "migrate_tpl_";

/// The comment on a template whose migrations all ran, then its build time in unix seconds.
const COMPLETE: &str = "migrate test template, complete; built at ";

/// Test databases (kept ones included) and templates older than this are removed.
const STALE_AFTER_SECONDS: u64 = 24 * 3600;

/// The digest of what a template holds: every migration's checksum, in order, and where the
/// history lives. 20 hex digits: the name stays well under PostgreSQL's 63 bytes.
fn digest(migrations: &Migrations) -> String {
    let settings = crate::runtime::Settings::default();
    let mut hasher = Sha256::new();
    hasher.update(b"migrate test template 1\n");
    hasher.update(format!("{}.{}\n", settings.schema, settings.table).as_bytes());
    for migration in migrations {
        hasher.update(migration.checksum().as_bytes());
        hasher.update(b"\n");
    }
    let mut hex = crate::hex(&hasher.finalize());
    hex.truncate(20);
    hex
}

/// Templates this process found complete or built.
static READY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Templates whose migrations failed in this process, with the error.
static FAILED: Mutex<BTreeMap<String, Error>> = Mutex::new(BTreeMap::new());

/// Forgets that `name` was ready: another process removed it.
pub(super) fn forget(name: &str) {
    locked(&READY).remove(name);
}

/// The name of the template for `migrations`.
pub(super) fn name(migrations: &Migrations) -> String {
    format!("{TEMPLATE_PREFIX}{}", digest(migrations))
}

/// The template for `migrations`, built first when no complete one exists. Returns its name.
pub(super) fn ensure(
    admin: &mut Client,
    migrations: &'static Migrations,
    server_url: &str,
) -> Result<String, Error> {
    let name = name(migrations);
    // A build that failed fails the same way for every later test: once per process.
    if let Some(failed) = locked(&FAILED).get(&name) {
        return Err(failed.clone());
    }
    if locked(&READY).contains(&name) {
        return Ok(name);
    }
    // Advisory locks belong to a database: every test process takes this one in the URL's.
    let key = format!("hashtext({})", escape_literal(&name));
    admin
        .batch_execute(&format!(
            "SET lock_timeout = '10min'; SELECT pg_advisory_lock({key})"
        ))
        .map_err(database_error("waiting for the template's build lock"))?;
    let built = build_unless_complete(admin, migrations, server_url, &name);
    if let Err(Failed::Migrations(e)) = &built {
        locked(&FAILED).insert(name.clone(), e.clone());
    }
    let built = built.map_err(Failed::into_error);
    let unlocked = admin
        .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
        .map_err(database_error("releasing the template's build lock"));
    built?;
    unlocked?;
    locked(&READY).insert(name.clone());
    Ok(name)
}

/// Why a template could not be built: its migrations (the same every time), or the server.
enum Failed {
    Migrations(Error),
    Server(Error),
}

impl Failed {
    fn into_error(self) -> Error {
        match self {
            Failed::Migrations(e) | Failed::Server(e) => e,
        }
    }
}

impl From<Error> for Failed {
    fn from(e: Error) -> Failed {
        Failed::Server(e)
    }
}

fn build_unless_complete(
    admin: &mut Client,
    migrations: &'static Migrations,
    server_url: &str,
    name: &str,
) -> Result<(), Failed> {
    let found = rows(
        admin,
        &format!(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = {}",
            escape_literal(name)
        ),
        "looking for the template",
    )?;
    match found.first() {
        Some(row)
            if row
                .first()
                .cloned()
                .flatten()
                .is_some_and(|c| c.starts_with(COMPLETE)) =>
        {
            return Ok(());
        }
        // A build that was cut short: its migrations may have run in part.
        Some(_) => drop_database(admin, name)?,
        None => {}
    }
    admin
        .batch_execute(&format!("CREATE DATABASE {}", escape_identifier(name)))
        .map_err(database_error(
            "creating the template database (the role needs CREATEDB)",
        ))?;
    let migrated = Migrator::new(migrations).run_url(&with_database(server_url, name)?);
    if let Err(e) = migrated {
        let _ = drop_database(admin, name);
        // A migration that fails fails again; a lost connection may not.
        return Err(match e {
            Error::Migration { .. } | Error::ChecksumMismatch { .. } => Failed::Migrations(e),
            e => Failed::Server(e),
        });
    }
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            escape_identifier(name),
            escape_literal(&format!("{COMPLETE}{}", unix_seconds()))
        ))
        .map_err(database_error("marking the template complete"))?;
    Ok(())
}

/// Drops a database, ending its sessions first (PostgreSQL 13+: `WITH (FORCE)`).
pub(super) fn drop_database(admin: &mut Client, name: &str) -> Result<(), Error> {
    let dropped = admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        escape_identifier(name)
    ));
    match dropped {
        // Before 13 there is no FORCE.
        Err(e) if e.code().map(|c| c.code()) == Some("42601") => admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}",
                escape_identifier(name)
            ))
            .map_err(database_error("dropping a test database")),
        dropped => dropped.map_err(database_error("dropping a test database")),
    }
}

/// Removes the test databases (kept ones included) and the templates older than a day, but
/// `current` (which other processes may be copying).
pub(super) fn remove_stale(admin: &mut Client, current: &str) -> Result<(), Error> {
    let now = unix_seconds();
    let found = rows(
        admin,
        &format!(
            "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database \
             WHERE starts_with(datname, {}) OR starts_with(datname, {})",
            escape_literal(TEST_PREFIX),
            escape_literal(TEMPLATE_PREFIX)
        ),
        "listing old test databases",
    )?;
    for row in found {
        let name = row.first().cloned().flatten().unwrap_or_default();
        let comment = row.get(1).cloned().flatten().unwrap_or_default();
        let created = match name.strip_prefix(TEST_PREFIX) {
            Some(rest) => rest.split('_').next().and_then(|s| s.parse::<u64>().ok()),
            None => comment
                .strip_prefix(COMPLETE)
                .and_then(|s| s.parse::<u64>().ok()),
        };
        if name != current && created.is_some_and(|at| at + STALE_AFTER_SECONDS < now) {
            // One in use by another process refuses: it goes another time.
            let _ = drop_database(admin, &name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_name_follows_every_checksum_and_fits_an_identifier() {
        let a = digest(&crate::runtime::status::tests::SET);
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(format!("{TEMPLATE_PREFIX}{a}").len() <= 63);
        static EMPTY: Migrations = crate::migration::migrations(&[]);
        assert_ne!(a, digest(&EMPTY));
    }
}
