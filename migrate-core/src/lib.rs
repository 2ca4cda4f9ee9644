//! The model and logic of `migrate`: compile-time analysis (header, revision graph, statements)
//! and, with the `runtime` feature, the runner that applies embedded migrations.
//!
//! Applications depend on the `migrate` facade crate, not on this one.

pub mod analysis;
pub mod lint;
mod embedded;
#[cfg(feature = "runtime")]
pub mod runtime;

pub use embedded::{Migration, Migrations, Statement};

#[doc(hidden)]
pub mod __private {
    pub use crate::embedded::{MigrationParts, migration, migrations};
}
