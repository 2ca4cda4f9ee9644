//! PostgreSQL schema migrations that ship inside the application binary.
//!
//! ```ignore
//! static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("migrations");
//!
//! fn main() {
//!     let outcome = migrate::startup(&MIGRATIONS);
//!     // serve, reporting `outcome` on the readiness endpoint
//! }
//! ```
//!
//! `embed_migrations!` reads the directory at compile time, rejects a revision graph with several
//! heads, a dangling parent, a duplicate or a cycle, and embeds every migration as static data.
//! [`startup`] applies what is pending, exactly once across replicas. See the README.

pub use migrate_core::analysis;
pub use migrate_core::{Migration, Migrations, Statement};
/// The lock lint and the directory analysis at run time (the `analysis` feature).
#[cfg(feature = "analysis")]
pub use migrate_core::{lint, lint_dir};
pub use migrate_macros::embed_migrations;

#[cfg(feature = "runtime")]
pub use migrate_core::runtime::{
    AheadRevision, Applied, EnvConfig, Error, Health, HistoryRow, Interrupted, Migrator, Outcome,
    Pooler, Report, ServerError, Settings, Status, connect, startup, startup_with,
};

/// The schema as the catalog describes it, and the differences between two (drift detection).
#[cfg(feature = "runtime")]
pub use migrate_core::runtime::catalog;

#[cfg(feature = "tokio")]
pub use migrate_core::runtime::{connect_async, startup_async, startup_with_async};

#[cfg(feature = "cli")]
pub use migrate_core::cli;

/// Test databases: one per test, cloned from a template the migrations ran into once.
#[cfg(feature = "testing")]
pub use migrate_core::testing;
#[cfg(feature = "testing")]
pub use migrate_macros::test;

#[doc(hidden)]
pub use migrate_core::__private;
