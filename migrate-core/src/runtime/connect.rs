//! Opening connections from a URL: TLS per `sslmode`, connect timeout, password-free display.

use std::str::FromStr;
use std::time::Duration;

use super::error::Error;
use super::tls::{self, SslMode};

/// How long one connection attempt may take before it counts as failed (a blackholed address
/// never answers; the wait budget then decides whether to try again).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP keepalive on every connection the runtime opens: the first probe after 10 s of silence,
/// then one every 5 s, and the connection counts as dead after 3 unanswered probes.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub const KEEPALIVE_RETRIES: u32 = 3;
/// How long a silent dead peer goes unnoticed at most.
pub const KEEPALIVE_DETECTION: Duration = Duration::from_secs(10 + 5 * KEEPALIVE_RETRIES as u64);

/// The connection string with its password removed, for logs and errors, in either form: a
/// URL (password in the userinfo or a `password` parameter) or `key=value` pairs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(None);
            }
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if pairs.iter().any(|(key, _)| key == "password") {
                parsed.set_query(None);
                let kept: Vec<&(String, String)> =
                    pairs.iter().filter(|(key, _)| key != "password").collect();
                if !kept.is_empty() {
                    parsed.query_pairs_mut().extend_pairs(kept);
                }
            }
            parsed.to_string()
        }
        Err(_) => match KeyValues::parse(url) {
            Some(pairs) if !looks_like_url(url) => pairs.without(&["password"]).to_string(),
            _ if looks_like_url(url) => {
                "the database (connection string not shown: it is not a valid URL)".to_owned()
            }
            _ => "the database (connection string not shown: it is neither a URL nor key=value pairs)"
                .to_owned(),
        },
    }
}

/// Whether a connection string that failed to parse as a URL was meant as one.
fn looks_like_url(text: &str) -> bool {
    text.trim_start().contains("://")
}

/// A `key=value` connection string (libpq's other form), split into its pairs. Only to take out
/// what the driver does not know (`sslmode` beyond `require`, `sslrootcert`) or what must not be
/// shown (the password); the driver's own parser reads what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyValues(Vec<(String, String)>);

impl KeyValues {
    /// The pairs, or `None` when the text is not `key = value` pairs: values unquoted (up to
    /// whitespace) or in single quotes, `\` escaping the next character in both.
    fn parse(text: &str) -> Option<KeyValues> {
        let mut pairs = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                return Some(KeyValues(pairs));
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                key.push(c);
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if key.is_empty() || chars.next() != Some('=') {
                return None;
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next()? {
                        '\'' => break,
                        '\\' => value.push(chars.next()?),
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    value.push(if c == '\\' { chars.next()? } else { c });
                }
            }
            pairs.push((key, value));
        }
    }

    /// The value of the last `key` (the one libpq uses).
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn without(&self, keys: &[&str]) -> KeyValues {
        KeyValues(
            self.0
                .iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl std::fmt::Display for KeyValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            write!(f, "{}{key}='{quoted}'", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

/// Opens connections to one database.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    display: String,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.display)
            .finish()
    }
}

fn invalid(display: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        name: "database URL".to_owned(),
        value: display.to_owned(),
        reason: reason.into(),
    }
}

impl Connector {
    pub fn new(url: &str, application_name: &str) -> Result<Connector, Error> {
        let display = redact(url);
        // `sslmode` and `sslrootcert` are ours to interpret (the driver knows no verify-*):
        // take them out of the URL before the driver parses it.
        let (driver_url, mode, root_cert) = match url::Url::parse(url) {
            Ok(mut parsed) => {
                let mut mode = SslMode::Prefer;
                let mut root_cert = None;
                let mut kept = Vec::new();
                for (key, value) in parsed.query_pairs() {
                    match key.as_ref() {
                        "sslmode" => {
                            mode = SslMode::parse(&value).ok_or_else(|| {
                                invalid(&display, format!("sslmode `{value}` is not one of disable, allow, prefer, require, verify-ca, verify-full"))
                            })?;
                        }
                        "sslrootcert" => root_cert = Some(value.into_owned()),
                        _ => kept.push((key.into_owned(), value.into_owned())),
                    }
                }
                parsed.set_query(None);
                if !kept.is_empty() {
                    parsed.query_pairs_mut().extend_pairs(kept);
                }
                (parsed.to_string(), mode, root_cert)
            }
            // A `key=value` connection string: `sslmode` and `sslrootcert` are taken out as
            // from a URL; the driver parses the rest.
            Err(e) if looks_like_url(url) => return Err(invalid(&display, e.to_string())),
            Err(_) => {
                let pairs = KeyValues::parse(url).ok_or_else(|| {
                    invalid(
                        &display,
                        "expected a postgres:// URL or key=value pairs (values with spaces in single quotes)",
                    )
                })?;
                let mode = match pairs.get("sslmode") {
                    None => SslMode::Prefer,
                    Some(value) => SslMode::parse(value).ok_or_else(|| {
                        invalid(&display, format!("sslmode `{value}` is not one of disable, allow, prefer, require, verify-ca, verify-full"))
                    })?,
                };
                let root_cert = pairs.get("sslrootcert").map(str::to_owned);
                let rest = pairs.without(&["sslmode", "sslrootcert"]);
                (rest.to_string(), mode, root_cert)
            }
        };
        let mut config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|e| invalid(&display, e.to_string()))?;
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let tls = tls::connector(mode, root_cert.as_deref())
            .map_err(|reason| invalid(&display, reason))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(application_name);
        }
        // Dead peers (a pooler or server killed without a FIN, a network partition) are noticed
        // within KEEPALIVE_DETECTION instead of hanging, well inside the default wait budget.
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        Ok(Connector {
            config,
            tls,
            display,
        })
    }

    /// The target without its password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Opens a connection. The whole login (TCP, TLS, authentication) must finish within the
    /// connect timeout, as with libpq: the driver's own timeout covers the TCP connect only, so a
    /// server or pooler that accepts the socket and never answers would hang the caller forever.
    /// The login runs on a helper thread; after the timeout the caller stops waiting for it.
    pub fn connect(&self) -> Result<postgres::Client, ConnectError> {
        let timeout = self.connect_timeout();
        let (sender, receiver) = std::sync::mpsc::channel();
        let config = postgres::Config::from(self.config.clone());
        let tls = self.tls.clone();
        let spawned = std::thread::Builder::new()
            .name("migrate-connect".to_owned())
            .spawn(move || {
                let result = match tls {
                    Some(tls) => config.connect(tls),
                    None => config.connect(postgres::NoTls),
                };
                // The receiver is gone when the caller gave up; the client is then dropped here.
                let _ = sender.send(result);
            });
        if let Err(e) = spawned {
            return Err(ConnectError::Other(format!("cannot start a thread: {e}")));
        }
        match receiver.recv_timeout(timeout) {
            Ok(result) => result.map_err(ConnectError::Postgres),
            Err(_) => Err(ConnectError::TimedOut(timeout)),
        }
    }

    /// The error of a connection to this target that failed after `waited`, without password.
    pub(crate) fn failed(&self, waited: Duration, cause: impl std::fmt::Display) -> Error {
        Error::Connect {
            target: self.display.clone(),
            waited,
            cause: cause.to_string(),
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
    }

    /// [`Connector::connect`] on the caller's tokio runtime: the connection's task is spawned
    /// there and ends when the client is dropped. The whole login is bounded by the connect
    /// timeout, with tokio's timer.
    pub async fn connect_async(&self) -> Result<tokio_postgres::Client, ConnectError> {
        self.connect_async_task().await.map(|(client, _)| client)
    }

    /// [`Connector::connect_async`], with the task that drives the connection: once the client
    /// is dropped, it sends the server a Terminate message and closes the socket, and then it
    /// ends. An owner of the runtime awaits it before dropping the runtime, so that the server
    /// (or a pooler, which logs an unexpected EOF otherwise) sees the session end cleanly.
    pub async fn connect_async_task(
        &self,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), ConnectError> {
        type Connected<S, T> =
            Result<(tokio_postgres::Client, tokio_postgres::Connection<S, T>), postgres::Error>;
        fn spawn<S, T>(
            connected: Connected<S, T>,
        ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), ConnectError>
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
            T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        {
            let (client, connection) = connected.map_err(ConnectError::Postgres)?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    log::debug!("database connection ended: {e}");
                }
            });
            Ok((client, task))
        }
        let timeout = self.connect_timeout();
        let login = async {
            match &self.tls {
                Some(tls) => spawn(self.config.connect(tls.clone()).await),
                None => spawn(self.config.connect(tokio_postgres::NoTls).await),
            }
        };
        tokio::time::timeout(timeout, login)
            .await
            .unwrap_or(Err(ConnectError::TimedOut(timeout)))
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    Postgres(postgres::Error),
    /// The login did not finish within the connect timeout.
    TimedOut(Duration),
    Other(String),
}

impl ConnectError {
    /// The server's SQLSTATE, when the server refused the login.
    pub fn code(&self) -> Option<&str> {
        match self {
            ConnectError::Postgres(e) => super::error::db_error(e).map(|db| db.code().code()),
            _ => None,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Postgres(e) => {
                write!(f, "{}", super::error::ServerError::from_postgres(e))
            }
            ConnectError::TimedOut(after) => write!(
                f,
                "timed out after {:.1}s waiting for the server to complete the login (connect_timeout)",
                after.as_secs_f64()
            ),
            ConnectError::Other(message) => write!(f, "{message}"),
        }
    }
}

/// One connection attempt to `url` (TLS per its `sslmode`), with an error that names the target
/// without its password. For status checks, readiness probes and the operator CLI.
pub fn connect(url: &str, application_name: &str) -> Result<postgres::Client, Error> {
    let started = std::time::Instant::now();
    let connector = Connector::new(url, application_name)?;
    connector
        .connect()
        .map_err(|e| connector.failed(started.elapsed(), e))
}

/// [`connect`] on the caller's tokio runtime (the connection's task is spawned there).
#[cfg(feature = "tokio")]
pub async fn connect_async(
    url: &str,
    application_name: &str,
) -> Result<tokio_postgres::Client, Error> {
    let started = std::time::Instant::now();
    let connector = Connector::new(url, application_name)?;
    connector
        .connect_async()
        .await
        .map_err(|e| connector.failed(started.elapsed(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/app?sslmode=disable"),
            "postgres://app@db:5432/app?sslmode=disable"
        );
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert!(!redact("host=db password=s3cret").contains("s3cret"));
        assert_eq!(
            redact("postgres://app@db/app?password=s3cret&sslmode=require"),
            "postgres://app@db/app?sslmode=require"
        );
        assert_eq!(
            redact("postgres://app@db/app?password=s3cret"),
            "postgres://app@db/app"
        );
        assert_eq!(
            redact("host=db password = 's3 cr\\'et' dbname=app"),
            "host='db' dbname='app'"
        );
    }

    #[test]
    fn key_value_strings_split_as_libpq_splits_them() {
        let pairs =
            KeyValues::parse("  host = db  dbname='my app' password='it\\'s' user=a\\ b ").unwrap();
        assert_eq!(pairs.get("host"), Some("db"));
        assert_eq!(pairs.get("dbname"), Some("my app"));
        assert_eq!(pairs.get("password"), Some("it's"));
        assert_eq!(pairs.get("user"), Some("a b"));
        assert_eq!(KeyValues::parse(&pairs.to_string()), Some(pairs));
        for bad in ["host", "=db", "host='db", "host=db\\"] {
            assert_eq!(KeyValues::parse(bad), None, "{bad}");
        }
        let accents = KeyValues::parse("dbname='Grüße 🚀' user=zoë").unwrap();
        assert_eq!(accents.get("dbname"), Some("Grüße 🚀"));
        assert_eq!(accents.get("user"), Some("zoë"));
    }

    #[test]
    fn sslmode_is_honoured_in_both_forms() {
        for (text, mode) in [
            (
                "host=db sslmode=require",
                tokio_postgres::config::SslMode::Require,
            ),
            (
                "host=db sslmode=verify-full",
                tokio_postgres::config::SslMode::Require,
            ),
            (
                "host=db sslmode=verify-ca",
                tokio_postgres::config::SslMode::Require,
            ),
            (
                "host=db sslmode=disable",
                tokio_postgres::config::SslMode::Disable,
            ),
            ("host=db", tokio_postgres::config::SslMode::Prefer),
            (
                "postgres://db/app?sslmode=require",
                tokio_postgres::config::SslMode::Require,
            ),
        ] {
            let connector = Connector::new(text, "migrate").unwrap();
            assert_eq!(connector.config.get_ssl_mode(), mode, "{text}");
            assert_eq!(
                connector.tls.is_some(),
                mode != tokio_postgres::config::SslMode::Disable,
                "{text}"
            );
        }
        let err =
            Connector::new("host=db password=s3cret sslmode=sometimes", "migrate").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database URL `host='db' sslmode='sometimes'`: sslmode `sometimes` is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let err = Connector::new("postgres://app@db:x/app?password=s3cret", "migrate").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = Connector::new("host='db password=s3cret", "migrate").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database URL `the database (connection string not shown: it is neither a URL nor key=value pairs)`: expected a postgres:// URL or key=value pairs (values with spaces in single quotes)"
        );
    }

    #[test]
    fn bad_urls_are_config_errors_without_password() {
        let err = Connector::new("postgres://app:s3cret@db:notaport/app", "migrate").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().starts_with("invalid database URL"), "{err}");
        let err = Connector::new("postgres://app:s3cret@db/app?sslmode=sometimes", "migrate")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid database URL `postgres://app@db/app?sslmode=sometimes`: sslmode `sometimes` is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let err = Connector::new(
            "postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent.pem",
            "migrate",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read sslrootcert /nonexistent.pem"),
            "{err}"
        );
    }

    #[test]
    fn keepalives_notice_a_dead_peer_well_within_the_wait_budget() {
        let connector = Connector::new("postgres://u@db/app", "migrate").unwrap();
        assert!(connector.config.get_keepalives());
        assert_eq!(connector.config.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(
            connector.config.get_keepalives_interval(),
            Some(KEEPALIVE_INTERVAL)
        );
        assert_eq!(
            connector.config.get_keepalives_retries(),
            Some(KEEPALIVE_RETRIES)
        );
        assert!(KEEPALIVE_DETECTION <= Duration::from_secs(30));
    }

    #[test]
    fn every_sslmode_builds_a_connector() {
        for mode in ["disable", "allow", "prefer", "require"] {
            Connector::new(
                &format!("postgres://u@db/app?sslmode={mode}&connect_timeout=3"),
                "migrate",
            )
            .unwrap();
        }
    }
}
