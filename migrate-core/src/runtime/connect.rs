//! Opening connections from a URL: connect timeout, password-free display, reconnects.

use std::str::FromStr;
use std::time::Duration;

use super::error::Error;

/// How long one connection attempt may take before it counts as failed (a blackholed address
/// never answers; the wait budget then decides whether to try again).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL with its password removed, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "the database (connection string not shown: it is not a URL)".to_owned(),
    }
}

/// Opens connections to one database.
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
    display: String,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.display)
            .finish()
    }
}

impl Connector {
    pub fn new(url: &str, application_name: &str) -> Result<Connector, Error> {
        let display = redact(url);
        let mut config = postgres::Config::from_str(url).map_err(|e| Error::InvalidConfig {
            name: "database URL".to_owned(),
            value: display.clone(),
            reason: e.to_string(),
        })?;
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
        Ok(Connector { config, display })
    }

    /// The target without its password.
    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        self.config.connect(postgres::NoTls)
    }
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
    fn a_bad_url_is_a_config_error_without_password() {
        let err = Connector::new("postgres://app:s3cret@db:notaport/app", "migrate").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().starts_with("invalid database URL"), "{err}");
    }
}
