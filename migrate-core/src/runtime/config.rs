//! Where the runtime's settings come from: the builder, or the environment for `startup`.

use std::time::Duration;

use super::error::Error;
use crate::analysis::header::parse_duration;

/// How the runner reaches the server. Through a transaction-mode pooler (PgBouncer
/// `pool_mode = transaction`, Supabase's port 6543) consecutive transactions may run on different
/// server sessions, so nothing may rely on session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// A direct connection, or a session-mode pooler.
    #[default]
    None,
    /// A transaction-mode pooler: no session lock, no session SET; no-transaction migrations
    /// are refused.
    Transaction,
}

/// Everything the runner can be told. Defaults: lock_timeout 1s, no statement_timeout, a wait
/// budget of 10 minutes, an idle timeout of 1 minute, history in `public.migrate_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub lock_timeout: Duration,
    /// `None` runs migrations with `statement_timeout = 0`, overriding any role default.
    pub statement_timeout: Option<Duration>,
    pub wait_budget: Duration,
    /// How long the server keeps a migration's session when the runner stops talking in the
    /// middle of it (a frozen or vanished client): `idle_in_transaction_session_timeout` inside
    /// every migration transaction, `idle_session_timeout` while a no-transaction migration holds
    /// its session lock. The server then ends the session and releases every lock it held.
    pub idle_timeout: Duration,
    pub schema: String,
    pub table: String,
    pub application_name: String,
    pub pooler: Pooler,
    /// The most migrations committed in one transaction when each touches only tables it
    /// creates ([`crate::Migration::self_contained`]); `1` gives every migration a transaction
    /// of its own.
    pub group_limit: usize,
    /// The `search_path` migrations run with, when given (a fleet's tenant schema first):
    /// `SET LOCAL` in their transactions; on a no-transaction migration's session, set before
    /// its statements and put back after them.
    pub search_path: Option<String>,
    /// The one schema a fleet's target is (`--each-schema`): drift compares only its objects,
    /// and a shadow replays its migrations into a schema of that name. `None`: every schema of
    /// the database.
    pub tenant_schema: Option<String>,
    /// How long a statement runs before its progress is read and logged (`MIGRATE_PROGRESS_AFTER`,
    /// default 5 s, `0` turns it off): on runs given a URL, which can open a second connection to
    /// watch it.
    pub progress_after: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lock_timeout: Duration::from_secs(1),
            statement_timeout: None,
            wait_budget: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
            schema: "public".to_owned(),
            table: "migrate_history".to_owned(),
            application_name: "migrate".to_owned(),
            pooler: Pooler::None,
            group_limit: DEFAULT_GROUP_LIMIT,
            search_path: None,
            tenant_schema: None,
            progress_after: Duration::from_secs(5),
        }
    }
}

/// [`Settings::group_limit`]'s default. Committing together saves each migration the commit
/// of a transaction that created tables (measured: about a third of a one-table migration's
/// time on the server); the limit bounds what a failure half-way rolls back and does again
/// one migration at a time.
pub const DEFAULT_GROUP_LIMIT: usize = 64;

/// The settings `startup` reads from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvConfig {
    pub skip: bool,
    /// `MIGRATION_DATABASE_URL`, else `DATABASE_URL`; `None` when neither is set.
    pub url: Option<String>,
    /// Which variable `url` came from, for messages.
    pub url_source: &'static str,
    pub settings: Settings,
}

/// Parses a boolean flag the way operators write them.
pub fn parse_flag(name: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::InvalidConfig {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: "expected 1/true/yes/on or 0/false/no/off".to_owned(),
        }),
    }
}

fn duration(name: &str, value: &str) -> Result<Duration, Error> {
    parse_duration(value).ok_or_else(|| Error::InvalidConfig {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: "expected a duration such as 500ms, 2s, 10min or 1h (0 disables)".to_owned(),
    })
}

/// A schema the history may live in: any name PostgreSQL takes (a tenant's schema is whatever
/// the fleet's query lists: `tenant-42`, `Mandant Ü`), at most 63 bytes, without the characters
/// the runner's SQL cannot carry inside its quotes (`"`, `$`) or any control character.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.chars().any(|c| c == '"' || c == '$' || c.is_control())
}

/// Whether `name` is a plain SQL identifier we can quote safely in every statement.
pub fn valid_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<EnvConfig, Error> {
        EnvConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvConfig, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let skip = match get("MIGRATE_SKIP") {
            Some(value) => parse_flag("MIGRATE_SKIP", &value)?,
            None => false,
        };
        let (url, url_source) = match (get("MIGRATION_DATABASE_URL"), get("DATABASE_URL")) {
            (Some(url), _) => (Some(url), "MIGRATION_DATABASE_URL"),
            (None, Some(url)) => (Some(url), "DATABASE_URL"),
            (None, None) => (None, "DATABASE_URL"),
        };
        let mut settings = Settings::default();
        if let Some(value) = get("MIGRATE_LOCK_TIMEOUT") {
            settings.lock_timeout = duration("MIGRATE_LOCK_TIMEOUT", &value)?;
        }
        if let Some(value) = get("MIGRATE_STATEMENT_TIMEOUT") {
            let d = duration("MIGRATE_STATEMENT_TIMEOUT", &value)?;
            settings.statement_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(value) = get("MIGRATE_WAIT_BUDGET") {
            settings.wait_budget = duration("MIGRATE_WAIT_BUDGET", &value)?;
        }
        if let Some(value) = get("MIGRATE_PROGRESS_AFTER") {
            settings.progress_after = duration("MIGRATE_PROGRESS_AFTER", &value)?;
        }
        if let Some(value) = get("MIGRATE_IDLE_TIMEOUT") {
            settings.idle_timeout = duration("MIGRATE_IDLE_TIMEOUT", &value)?;
        }
        if let Some(value) = get("MIGRATE_SCHEMA") {
            if !valid_schema(&value) {
                return Err(Error::InvalidConfig {
                    name: "MIGRATE_SCHEMA".to_owned(),
                    value,
                    reason: "expected a schema name of at most 63 bytes without `\"`, `$` or control characters"
                        .to_owned(),
                });
            }
            settings.schema = value;
        }
        if let Some(value) = get("MIGRATE_POOLER") {
            settings.pooler = match value.trim().to_ascii_lowercase().as_str() {
                "transaction" => Pooler::Transaction,
                "none" | "session" | "direct" => Pooler::None,
                _ => {
                    return Err(Error::InvalidConfig {
                        name: "MIGRATE_POOLER".to_owned(),
                        value,
                        reason: "expected `transaction` (PgBouncer pool_mode=transaction, Supabase port 6543), `session` or `none`".to_owned(),
                    });
                }
            };
        }
        // MIGRATE_POOLER describes DATABASE_URL; MIGRATION_DATABASE_URL is the direct connection.
        if url_source == "MIGRATION_DATABASE_URL" {
            settings.pooler = Pooler::None;
        }
        if let Some(value) = get("MIGRATE_APPLICATION_NAME") {
            settings.application_name = value;
        }
        Ok(EnvConfig {
            skip,
            url,
            url_source,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<EnvConfig, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert!(!c.skip);
        assert_eq!(c.url, None);
        assert_eq!(c.settings, Settings::default());
        assert_eq!(c.settings.lock_timeout, Duration::from_secs(1));
        assert_eq!(c.settings.wait_budget, Duration::from_secs(600));
    }

    #[test]
    fn migration_url_wins_over_database_url() {
        let c = config(&[
            ("DATABASE_URL", "postgres://pooler/db"),
            ("MIGRATION_DATABASE_URL", "postgres://direct/db"),
        ])
        .unwrap();
        assert_eq!(c.url.as_deref(), Some("postgres://direct/db"));
        assert_eq!(c.url_source, "MIGRATION_DATABASE_URL");
        let c = config(&[
            ("DATABASE_URL", "postgres://pooler/db"),
            ("MIGRATION_DATABASE_URL", " "),
        ])
        .unwrap();
        assert_eq!(c.url_source, "DATABASE_URL");
    }

    #[test]
    fn the_pooler_setting_describes_database_url_only() {
        let pooled = config(&[
            ("DATABASE_URL", "postgres://pooler/db"),
            ("MIGRATE_POOLER", "transaction"),
        ])
        .unwrap();
        assert_eq!(pooled.settings.pooler, Pooler::Transaction);
        let direct = config(&[
            ("DATABASE_URL", "postgres://pooler/db"),
            ("MIGRATION_DATABASE_URL", "postgres://direct/db"),
            ("MIGRATE_POOLER", "transaction"),
        ])
        .unwrap();
        assert_eq!(direct.settings.pooler, Pooler::None);
    }

    #[test]
    fn skip_flag_spellings() {
        for yes in ["1", "true", "YES", "on"] {
            assert!(config(&[("MIGRATE_SKIP", yes)]).unwrap().skip);
        }
        for no in ["0", "false", "no", "off"] {
            assert!(!config(&[("MIGRATE_SKIP", no)]).unwrap().skip);
        }
        assert_eq!(
            config(&[("MIGRATE_SKIP", "maybe")])
                .unwrap_err()
                .to_string(),
            "invalid MIGRATE_SKIP `maybe`: expected 1/true/yes/on or 0/false/no/off"
        );
    }

    #[test]
    fn durations_schema_and_pooler() {
        let c = config(&[
            ("MIGRATE_LOCK_TIMEOUT", "250ms"),
            ("MIGRATE_STATEMENT_TIMEOUT", "30s"),
            ("MIGRATE_WAIT_BUDGET", "2min"),
            ("MIGRATE_IDLE_TIMEOUT", "5s"),
            ("MIGRATE_SCHEMA", "ops"),
            ("MIGRATE_POOLER", "transaction"),
        ])
        .unwrap();
        assert_eq!(c.settings.lock_timeout, Duration::from_millis(250));
        assert_eq!(c.settings.statement_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.settings.wait_budget, Duration::from_secs(120));
        assert_eq!(c.settings.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.settings.schema, "ops");
        assert_eq!(c.settings.pooler, Pooler::Transaction);
        assert_eq!(
            config(&[("MIGRATE_LOCK_TIMEOUT", "1")])
                .unwrap_err()
                .to_string(),
            "invalid MIGRATE_LOCK_TIMEOUT `1`: expected a duration such as 500ms, 2s, 10min or 1h (0 disables)"
        );
        assert_eq!(
            config(&[("MIGRATE_SCHEMA", "a\"drop")])
                .unwrap_err()
                .to_string(),
            "invalid MIGRATE_SCHEMA `a\"drop`: expected a schema name of at most 63 bytes without `\"`, `$` or control characters"
        );
        // A tenant's schema, as a fleet names it.
        assert_eq!(
            config(&[("MIGRATE_SCHEMA", "Mandant Ü-42")])
                .unwrap()
                .settings
                .schema,
            "Mandant Ü-42"
        );
    }
}
