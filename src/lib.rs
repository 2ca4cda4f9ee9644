//! PostgreSQL schema migrations that ship inside the application binary.
//!
//! ```ignore
//! static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("migrations");
//! ```
//!
//! `embed_migrations!` reads the directory at compile time, rejects a revision graph with several
//! heads, a dangling parent, a duplicate or a cycle, and embeds every migration as static data.
//! See the README for the file format and the runtime.

pub use migrate_core::analysis;
pub use migrate_core::{Migration, Migrations, Statement};
pub use migrate_macros::embed_migrations;

#[doc(hidden)]
pub use migrate_core::__private;
