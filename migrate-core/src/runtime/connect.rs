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
    if !looks_like_url(url) {
        return match KeyValues::parse(url) {
            Some(pairs) => pairs.without(&["password"]).to_string(),
            None => "the database (connection string not shown: it is neither a URL nor key=value pairs)"
                .to_owned(),
        };
    }
    let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
    // The userinfo ends at the authority's last `@`; only the user part of it is shown.
    let shown = match before_query.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{hosts}")
            }
            None => before_query.to_owned(),
        },
        None => before_query.to_owned(),
    };
    let kept = without_password(query);
    if kept.is_empty() {
        shown
    } else {
        format!("{shown}?{kept}")
    }
}

/// A URL's query without its `password` parameter (in any case), re-encoded.
fn without_password(query: &str) -> String {
    encode_query(
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| !key.eq_ignore_ascii_case("password"))
            .map(|(k, v)| (k.into_owned(), v.into_owned())),
    )
}

/// `key=value&…`, percent-encoded, a space as `%20`: the driver reads a `+` as a plus sign.
fn encode_query(pairs: impl Iterator<Item = (String, String)>) -> String {
    let encode = |text: &str| {
        // The form encoding writes a space as `+` and a plus sign as `%2B`, so every `+` left
        // is a space.
        url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    pairs
        .map(|(key, value)| format!("{}={}", encode(&key), encode(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a connection string that failed to parse as a URL was meant as one.
fn looks_like_url(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("postgres://") || text.starts_with("postgresql://")
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

    /// The pairs but those of `keys`, compared without regard to ASCII case (a `PASSWORD=`
    /// the driver refuses is still a password not to show).
    fn without(&self, keys: &[&str]) -> KeyValues {
        KeyValues(
            self.0
                .iter()
                .filter(|(k, _)| !keys.iter().any(|key| k.eq_ignore_ascii_case(key)))
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
        let (driver_url, mode, root_cert) = if looks_like_url(url) {
            // The driver reads the URL (several hosts included); the query is re-encoded
            // without `sslmode` and `sslrootcert`, which are ours to interpret (the driver knows
            // no verify-*).
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut mode = SslMode::Prefer;
            let mut root_cert = None;
            let mut kept = Vec::new();
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
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
            let query = encode_query(kept.into_iter());
            let driver_url = if query.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{query}")
            };
            (driver_url, mode, root_cert)
        } else {
            // A `key=value` connection string: `sslmode` and `sslrootcert` are taken out as
            // from a URL; the driver parses the rest.
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

/// `url` (a `postgres://` URL) pointed at `database`: its path replaced, and any `dbname` of its
/// query removed, which would win over the path and reach the database the URL named.
pub(crate) fn url_for_database(url: &str, database: &str) -> Result<String, url::ParseError> {
    let mut parsed = url::Url::parse(url)?;
    // Every byte but the unreserved ones escaped: `set_path` keeps a `%` as it is, which would
    // make `x%41` the database `xA`.
    let mut segment = String::with_capacity(database.len());
    for byte in database.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    parsed.set_path(&format!("/{segment}"));
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| !key.eq_ignore_ascii_case("dbname"))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(parsed.to_string())
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

    /// A database name is one path segment whatever it holds: `x%41` is not `xA`.
    #[test]
    fn a_database_name_is_escaped_in_the_url() {
        assert_eq!(
            url_for_database("postgres://u@db/app?sslmode=require", "x%41").unwrap(),
            "postgres://u@db/x%2541?sslmode=require"
        );
        assert_eq!(
            url_for_database("postgres://u@db/app", "é t/?#").unwrap(),
            "postgres://u@db/%C3%A9%20t%2F%3F%23"
        );
    }

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
    fn several_hosts_percent_encoding_and_a_password_in_any_case() {
        let connector = Connector::new(
            "postgres://app:s3cret@db1:5432,db2:5433/app?application_name=my%20app&sslmode=require",
            "migrate",
        )
        .unwrap();
        assert_eq!(connector.config.get_hosts().len(), 2);
        assert_eq!(connector.config.get_application_name(), Some("my app"));
        assert_eq!(
            connector.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            connector.display(),
            "postgres://app@db1:5432,db2:5433/app?application_name=my%20app&sslmode=require"
        );
        // Options the driver refuses (their names are case-sensitive) are named without the
        // password, whatever its case.
        for refused in [
            "host=127.0.0.1 port=1 PASSWORD=s3cret",
            "postgres://u@127.0.0.1:1/db?Password=s3cret",
        ] {
            let err = Connector::new(refused, "migrate").unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        assert_eq!(
            redact("postgres://u@db/app?PASSWORD=s3cret&x=1"),
            "postgres://u@db/app?x=1"
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
