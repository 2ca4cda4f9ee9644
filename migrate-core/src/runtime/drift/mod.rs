//! Drift: what the database has, against what its applied migrations build.
//!
//! The expected side is a shadow database into which exactly the revisions the history records
//! as applied are replayed, in their order. By default it is created on the target's own server
//! (same version, extensions and collations) and dropped on every path; shadows a killed run
//! left behind are found by their name, which carries their creation time, and removed.

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::catalog::{self, Catalog, Dependencies, Difference};
use super::connect::{connect, redact};
use super::error::{Error, ServerError, database_error};
use super::protocol::Migrator;
use super::status::Status;
use crate::Migration;

mod shadow;
mod surroundings;

use surroundings::Surroundings;

pub use shadow::{
    SHADOW_PREFIX, Shadow, drop_active_shadows, interrupted, remove_orphaned_shadows,
};

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

/// The rows `sql` returns, as text cells.
fn query(client: &mut Client, sql: &str, action: &str) -> Result<Vec<crate::snapshot::Row>, Error> {
    let messages = client.simple_query(sql).map_err(database_error(action))?;
    Ok(super::catalog::rows(&messages).collect())
}

/// Cell `i` of a row, `""` for a NULL or a missing one.
fn cell(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
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
/// With `extensions_given` (a tenant's replay after what the tenants share was given to the
/// shadow), an extension is one such object too: the first tenant's run created it.
fn exists_on_the_server(error: &postgres::Error, extensions_given: bool) -> bool {
    // `where` is the PL/pgSQL context: set when the statement ran inside a DO block or a
    // function, whose other statements must not be skipped with it.
    super::error::db_error(error).is_some_and(|db| {
        let routine = db.routine().unwrap_or_default();
        db.code().code() == "42710"
            && (matches!(routine, "CreateRole" | "CreateTableSpace")
                || (extensions_given && routine == "CreateExtension"))
            && db.where_().is_none()
    })
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
fn replay(
    migrations: &[&Migration],
    shadow: &mut Client,
    extensions_given: bool,
) -> Result<Vec<String>, Error> {
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
                    Err(e) if exists_on_the_server(&e, extensions_given) => skipped(sql),
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
                    Err(e) if exists_on_the_server(&e, extensions_given) => {
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
        let replayed = match self.replay(&status, &mut shadow.client, false) {
            // A tenant's migrations may use what the database has beside its schema without
            // creating it: replayed again, in a new shadow given that first. Not at once: what a
            // migration creates itself (`CREATE EXTENSION citext` in the first tenant's run, an
            // extension updated to its version) must not be there before it.
            Err(Error::Replay { .. })
                if self.settings().tenant_schema.is_some() && !interrupted() =>
            {
                drop(shadow);
                let mut target = connect(url, name)?;
                let surroundings = Surroundings::read(self.settings(), &mut target)?;
                shadow = Shadow::open(target, url, shadow_url, name)?;
                let left_out = surroundings.install(&mut shadow.client)?;
                self.replay(&status, &mut shadow.client, true)
                    .map_err(|mut error| {
                        if let Error::Replay {
                            left_out: named, ..
                        } = &mut error
                        {
                            *named = left_out;
                        }
                        error
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

    /// Runs the applied revisions, in their order, on `shadow`.
    fn replay(
        &self,
        status: &Status,
        shadow: &mut Client,
        extensions_given: bool,
    ) -> Result<Vec<String>, Error> {
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
        replay(&migrations, shadow, extensions_given)
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
        replay(&all, &mut shadow.client, false)?;
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
        replay(&chosen, &mut shadow.client, false)?;
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
