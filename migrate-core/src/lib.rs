//! The model and logic of `migrate`: compile-time analysis (header, revision graph, statements)
//! and, with the `runtime` feature, the runner that applies embedded migrations.
//!
//! Applications depend on the `migrate` facade crate, not on this one.

pub mod analysis;
#[cfg(feature = "analysis")]
pub mod lint;
mod migration;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(any(feature = "analysis", feature = "runtime"))]
mod volatile;

pub use migration::{Migration, Migrations, Statement};

/// Lowercase hex of a digest: the form every checksum and key takes in files and tables.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xF)]));
    }
    text
}

#[doc(hidden)]
pub mod __private {
    pub use crate::migration::packed::check_format as check_pack_format;
    #[cfg(feature = "analysis")]
    pub use crate::migration::packed::{FORMAT as PACK_FORMAT, encode_analyzed as pack};
    pub use crate::migration::{
        MigrationParts, Packed, history_digest_hex, migration, migrations, migrations_embedded,
        migrations_for, migrations_with_snapshot,
    };
}

#[cfg(feature = "analysis")]
/// Analyses and lints a migrations directory without compiling a host: the graph checks and
/// every lint finding (errors and warnings), in file order. What `embed_migrations!` reports,
/// for CI tools and the operator CLI.
pub fn lint_dir(
    dir: impl AsRef<std::path::Path>,
    config: &lint::LintConfig,
) -> Vec<analysis::Diagnostic> {
    let dir = dir.as_ref();
    analysis::check::analyze_dir_with(dir, &dir.display().to_string(), config).diagnostics
}
