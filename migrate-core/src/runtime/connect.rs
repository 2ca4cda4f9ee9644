//! Opening connections from a URL: TLS per `sslmode`, connect timeout, password-free display.

use std::str::FromStr;
use std::time::Duration;

use super::error::Error;
use super::tls::{self, SslMode};

/// How long one connection attempt may take before it counts as failed (a blackholed address
/// never answers; the wait budget then decides whether to try again).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL with its password removed, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(None);
            }
            parsed.to_string()
        }
        Err(_) => "the database (connection string not shown: it is not a URL)".to_owned(),
    }
}

/// Opens connections to one database.
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
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
            // A `key=value` connection string goes to the driver as it is.
            Err(_) => (url.to_owned(), SslMode::Prefer, None),
        };
        let mut config = postgres::Config::from_str(&driver_url)
            .map_err(|e| invalid(&display, e.to_string()))?;
        config.ssl_mode(match mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
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
        // Dead peers (a pooler or server killed without a FIN) are noticed instead of hanging.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
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

    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
    }
}

/// One connection attempt to `url` (TLS per its `sslmode`), with an error that names the target
/// without its password. For status checks, readiness probes and the operator CLI.
pub fn connect(url: &str, application_name: &str) -> Result<postgres::Client, Error> {
    let started = std::time::Instant::now();
    let connector = Connector::new(url, application_name)?;
    connector.connect().map_err(|e| Error::Connect {
        target: connector.display().to_owned(),
        waited: started.elapsed(),
        cause: super::error::ServerError::from_postgres(&e).to_string(),
    })
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
