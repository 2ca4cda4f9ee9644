//! The migration lock: one advisory lock per history table, its key, and who holds it.

use sha2::{Digest, Sha256};

use super::Migrator;
use super::session::{first_value, pg_millis};
use crate::runtime::driver::Session;

/// Why a replica waits while another one migrates.
pub(super) const LOCK_BUSY: &str = "another process holds the migration lock";

/// How every transaction that takes the migration lock begins: read committed whatever the
/// server's default, so that what it checks under the lock sees what the previous holder
/// committed.
pub(super) const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

impl Migrator<'_> {
    /// The advisory lock key: one per history table, so two services sharing a database but not
    /// a history table do not wait for each other. An operator finds the holder with
    /// `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = key >> 32 AND objid = key & x'FFFFFFFF'`.
    pub fn lock_key(&self) -> i64 {
        let digest = Sha256::digest(
            format!("migrate:{}.{}", self.settings.schema, self.settings.table).as_bytes(),
        );
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }

    /// [`LOCK_BUSY`], naming the holder when it can be found.
    pub(super) async fn busy_reason<S: Session>(&self, client: &mut S) -> String {
        match self.lock_holder(client).await {
            Some(holder) => format!("{LOCK_BUSY} ({holder})"),
            None => LOCK_BUSY.to_owned(),
        }
    }

    /// `BEGIN …; SELECT pg_try_advisory_xact_lock(k)`: [`BEGIN_READ_COMMITTED`], and the idle
    /// timeout covering the whole transaction, from before the lock is taken. (A transactional
    /// migration takes the lock in its guard instead: [`Migrator::guarded_begin_sql`].)
    pub(super) fn lock_sql(&self) -> String {
        format!(
            "{BEGIN_READ_COMMITTED}; SET LOCAL idle_in_transaction_session_timeout = '{}ms'; SELECT pg_try_advisory_xact_lock({})",
            pg_millis(self.settings.idle_timeout),
            self.lock_key()
        )
    }

    /// Who holds the migration lock, from pg_locks and pg_stat_activity.
    async fn lock_holder<S: Session>(&self, client: &mut S) -> Option<String> {
        let key = self.lock_key() as u64;
        let query = format!(
            "SELECT a.pid::text || ' (application_name ' || quote_literal(coalesce(a.application_name, '')) || ', state ' || coalesce(a.state, '?') || ', since ' || coalesce(a.xact_start, a.backend_start)::text || ')' FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 LIMIT 1",
            key >> 32,
            key & 0xFFFF_FFFF
        );
        let messages = client.simple_query(&query).await.ok()?;
        first_value(&messages).map(|holder| format!("held by pid {holder}"))
    }
}
