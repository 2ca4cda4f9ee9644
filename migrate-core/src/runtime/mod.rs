//! Applying embedded migrations to a live database (the `runtime` feature).

pub mod catalog;
pub mod config;
pub mod connect;
pub mod drift;
pub(crate) mod driver;
pub mod error;
pub mod fleet;
pub mod history;
pub mod progress;
mod protocol;
pub mod startup;
pub mod status;
pub mod tls;
mod trace;

pub use config::{EnvConfig, Pooler, Settings};
pub use connect::connect;
#[cfg(feature = "tokio")]
pub use connect::connect_async;
pub use drift::Drift;
pub use error::{Error, ServerError};
pub use history::HistoryRow;
#[cfg(feature = "testing")]
pub(crate) use protocol::outside_async_runtime;
pub use protocol::{Applied, Migrator, Report};
pub use startup::{Outcome, startup, startup_with};
#[cfg(feature = "tokio")]
pub use startup::{startup_async, startup_with_async};
pub use status::{AheadRevision, Health, Interrupted, Status};
