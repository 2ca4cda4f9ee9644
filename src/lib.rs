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

pub use migrate_core::{Migration, Migrations, Statement};
pub use migrate_macros::embed_migrations;

/// The schema as the catalog describes it, and the differences between two: what `Status`'s
/// drift, `Migrator::drift` and `Migrator::catalog` return.
#[cfg(feature = "runtime")]
pub mod catalog {
    pub use migrate_core::runtime::catalog::{Catalog, Difference, Fix, Phase, Severity, diff};
}
#[cfg(feature = "runtime")]
pub use migrate_core::runtime::connect::connect;
/// What the long statements of a run in this process are doing now (phase, share done, what
/// they wait for), for a readiness endpoint.
#[cfg(feature = "runtime")]
pub use migrate_core::runtime::progress::{Progress, current as progress};
#[cfg(feature = "runtime")]
pub use migrate_core::runtime::startup::{startup, startup_with};
#[cfg(feature = "runtime")]
pub use migrate_core::runtime::{
    AheadRevision, Applied, Drift, EnvConfig, Error, Health, HistoryRow, Interrupted, Migrator,
    Outcome, Pooler, Report, ServerError, Settings, Status,
};

/// Fleets: the same migrations on every tenant schema or database a query lists
/// ([`Migrator::run_each`], [`Migrator::status_each`]).
#[cfg(feature = "runtime")]
pub mod fleet {
    pub use migrate_core::runtime::fleet::{
        FLEET_PROGRESS_EVERY, FleetOptions, FleetProgress, FleetReport, TargetOutcome,
        TargetReport, Targets,
    };
}

#[cfg(feature = "tokio")]
pub use migrate_core::runtime::connect::connect_async;
#[cfg(feature = "tokio")]
pub use migrate_core::runtime::startup::{startup_async, startup_with_async};

/// The checks `embed_migrations!` makes, at run time on a directory (the `analysis` feature).
#[cfg(feature = "analysis")]
pub use migrate_core::analysis::{Check, Diagnostic, Location, Severity};
#[cfg(feature = "analysis")]
pub use migrate_core::lint::{Level, LintConfig};
#[cfg(feature = "analysis")]
pub use migrate_core::lint_dir;

/// The operator commands a host binary mounts: `migrate`, `status`, `stamp`, `plan`, `diff`,
/// `baseline`, `lint` on the migrations it embeds (the `cli` feature). The standalone `migrate`
/// command is the same commands on a directory.
#[cfg(feature = "cli")]
pub mod cli {
    pub use migrate_cli::{Command, DatabaseArg, FleetArgs, LintFormat, execute, execute_to, run};
}

/// Test databases: one per test, cloned from a template the migrations ran into once.
#[cfg(feature = "testing")]
pub use migrate_core::testing;
#[cfg(feature = "testing")]
pub use migrate_macros::test;

// The layers below the API, reachable for the crate's own tests, benchmarks and tools.
#[doc(hidden)]
pub use migrate_core::analysis;
#[doc(hidden)]
#[cfg(feature = "analysis")]
pub use migrate_core::lint;

#[doc(hidden)]
pub use migrate_core::__private;
