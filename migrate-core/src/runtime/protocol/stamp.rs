//! `stamp`: recording revisions as applied without running them, under the migration lock.

use super::Migrator;
use super::gate::{Gate, Round};
use super::session::{Guard, first_value};
use crate::runtime::driver::{Driver, Session};
use crate::runtime::error::{Error, ServerError};
use crate::runtime::history::{self, RowState};

impl Migrator<'_> {
    pub(super) async fn stamp_on<D: Driver>(
        &self,
        driver: &D,
        client: &mut D::Session,
        revision: &str,
    ) -> Result<Vec<&'static str>, Error> {
        let target = self
            .migrations
            .get(revision)
            .ok_or_else(|| Error::UnknownRevision {
                revision: revision.to_owned(),
            })?;
        // Ancestors of the target, in application order.
        let mut wanted = std::collections::BTreeSet::from([target.revision()]);
        for migration in self.migrations.iter().rev() {
            if wanted.contains(migration.revision()) {
                wanted.extend(migration.parents().iter().copied());
            }
        }
        let mut gate = Gate::new(self.settings.wait_budget);
        loop {
            if let Some(stamped) = self.stamp_once(client, &wanted).await? {
                log::info!(
                    "stamped {} revision(s) up to {revision} as applied",
                    stamped.len()
                );
                return Ok(stamped);
            }
            if let Err(spent) = gate.pass(driver, Round::Busy).await {
                return Err(Error::WaitBudgetExhausted {
                    waited: spent.waited,
                    reason: self.busy_reason(client).await,
                });
            }
        }
    }

    /// One attempt: `None` when another process holds the migration lock.
    async fn stamp_once<S: Session>(
        &self,
        client: &mut S,
        wanted: &std::collections::BTreeSet<&str>,
    ) -> Result<Option<Vec<&'static str>>, Error> {
        let db = |action: &'static str| {
            move |e: postgres::Error| Error::Database {
                action: action.to_owned(),
                cause: Box::new(ServerError::from_postgres(&e)),
            }
        };
        let tx = Guard::new(client, "ROLLBACK");
        let granted = tx
            .client
            .simple_query(&self.lock_sql())
            .await
            .map_err(db("taking the migration lock"))?;
        if first_value(&granted).as_deref() != Some("t") {
            tx.release().await;
            return Ok(None);
        }
        let rows = history::rows(
            &tx.client
                .simple_query(&format!(
                    "{}; {}",
                    history::create_sql(&self.settings),
                    history::select_sql(&self.settings)
                ))
                .await
                .map_err(db("preparing the history table"))?,
        );
        let applied_by = format!("{} (stamp)", history::applied_by(&self.settings));
        let mut inserts = String::new();
        let mut stamped = Vec::new();
        for migration in self
            .migrations
            .iter()
            .filter(|m| wanted.contains(m.revision()))
            .filter(|m| !rows.iter().any(|r| r.revision == m.revision()))
        {
            inserts.push_str(&history::insert_sql(
                &self.settings,
                migration,
                RowState::Applied,
                "0",
                &applied_by,
            ));
            inserts.push_str("; ");
            stamped.push(migration.revision());
        }
        tx.finish(&format!("{inserts}COMMIT"))
            .await
            .map_err(db("stamping"))?;
        Ok(Some(stamped))
    }
}
