//! The migration record a binary carries, and the set of them: what the macro embeds and the
//! runtime reads.

pub(crate) mod packed;
mod record;
mod set;

pub use record::{Migration, MigrationParts, Statement, migration};
#[cfg(feature = "analysis")]
pub(crate) use set::DEFAULT_TARGET_POSTGRES;
pub use set::{
    Migrations, Packed, history_digest_hex, migrations, migrations_embedded, migrations_for,
    migrations_with_snapshot,
};
