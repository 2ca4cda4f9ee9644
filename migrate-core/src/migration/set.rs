//! The set of migrations a binary carries, in the order they are applied: a slice, or the
//! packed form `embed_migrations!` bakes in, decoded on first use.

use std::sync::OnceLock;

use super::record::Migration;

#[doc(hidden)]
pub const fn migrations(list: &'static [Migration]) -> Migrations {
    migrations_for(list, DEFAULT_TARGET_POSTGRES)
}

/// The PostgreSQL major version the lint judges statements for unless configured.
pub const DEFAULT_TARGET_POSTGRES: u32 = 15;

/// [`migrations`] linted for `target_postgres` (from `migrate.toml` or the macro's settings),
/// which `plan` uses to describe each statement's locks as the macro judged them.
pub const fn migrations_for(list: &'static [Migration], target_postgres: u32) -> Migrations {
    migrations_with_snapshot(list, target_postgres, None)
}

/// [`migrations_for`] with the directory's schema snapshot, when it has one that is not stale.
#[doc(hidden)]
pub const fn migrations_with_snapshot(
    list: &'static [Migration],
    target_postgres: u32,
    snapshot: Option<&'static str>,
) -> Migrations {
    Migrations {
        list: List::Slice(list),
        target_postgres,
        snapshot,
        history_digest: None,
    }
}

/// [`migrations_with_snapshot`] with the digest of a history holding exactly these migrations
/// ([`history_digest_hex`]), which `embed_migrations!` computes at compile time so that a start
/// does not hash anything.
#[doc(hidden)]
pub const fn migrations_embedded(
    packed: &'static Packed,
    target_postgres: u32,
    snapshot: Option<&'static str>,
    history_digest: &'static str,
) -> Migrations {
    Migrations {
        list: List::Packed(packed),
        target_postgres,
        snapshot,
        history_digest: Some(history_digest),
    }
}

/// The digest of a history that holds exactly these `(revision, checksum)` pairs, all applied:
/// hex SHA-256 of the lines `<revision> <checksum> applied`, sorted by revision, joined by LF.
/// The runtime has the server compute the same text's hash from the history's rows.
#[doc(hidden)]
pub fn history_digest_hex<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for (i, (revision, checksum)) in pairs.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(revision.as_bytes());
        hasher.update(b" ");
        hasher.update(checksum.as_bytes());
        hasher.update(b" applied");
    }
    crate::hex(&hasher.finalize())
}

/// Every migration of a directory, in the order they are applied (topological, ties broken by
/// revision id). Built by `embed_migrations!`.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    list: List,
    target_postgres: u32,
    snapshot: Option<&'static str>,
    history_digest: Option<&'static str>,
}

/// Where a [`Migrations`] finds its list.
#[derive(Debug, Clone, Copy)]
enum List {
    /// Built as a slice: by the standalone command from a directory, or empty.
    Slice(&'static [Migration]),
    /// Embedded by `embed_migrations!`, decoded on first use.
    Packed(&'static Packed),
}

/// The migrations `embed_migrations!` embeds, in the compact form of [`super::packed`], and the
/// list decoded from it on first use. The macro puts it in a `static` of its own.
#[doc(hidden)]
pub struct Packed {
    index: &'static str,
    sql: &'static [&'static str],
    decoded: OnceLock<Box<[Migration]>>,
}

impl Packed {
    pub const fn new(index: &'static str, sql: &'static [&'static str]) -> Packed {
        Packed {
            index,
            sql,
            decoded: OnceLock::new(),
        }
    }

    fn list(&'static self) -> &'static [Migration] {
        self.decoded.get_or_init(|| {
            super::packed::decode(self.index, self.sql)
                .unwrap_or_else(|malformed| {
                    // The macro and this code are one version (the format is checked when the
                    // host compiles), so this is a bug, reported rather than a panic at startup.
                    #[cfg(feature = "runtime")]
                    log::error!(
                        "the embedded migrations cannot be read ({malformed}): this binary knows no migration; report this as a bug of migrate"
                    );
                    let _ = malformed;
                    Vec::new()
                })
                .into_boxed_slice()
        })
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("migrations", &self.sql.len())
            .finish()
    }
}

impl Migrations {
    pub fn as_slice(&self) -> &'static [Migration] {
        match self.list {
            List::Slice(list) => list,
            List::Packed(packed) => packed.list(),
        }
    }
    pub fn iter(&self) -> std::slice::Iter<'static, Migration> {
        self.as_slice().iter()
    }
    pub fn len(&self) -> usize {
        match self.list {
            List::Slice(list) => list.len(),
            List::Packed(packed) => packed.sql.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The single head: the last migration in application order.
    pub fn head(&self) -> Option<&'static Migration> {
        self.as_slice().last()
    }
    /// The PostgreSQL major version the lint judged the statements for.
    pub fn target_postgres(&self) -> u32 {
        self.target_postgres
    }
    /// The schema snapshot taken for exactly these migrations (`migrate snapshot`), which
    /// startup and status compare the live catalog with.
    pub fn snapshot(&self) -> Option<&'static str> {
        self.snapshot
    }
    /// The digest of a history holding exactly these migrations, all applied
    /// ([`history_digest_hex`]): from compile time for embedded migrations.
    pub fn history_digest(&self) -> std::borrow::Cow<'static, str> {
        match self.history_digest {
            Some(hex) => std::borrow::Cow::Borrowed(hex),
            None => std::borrow::Cow::Owned(history_digest_hex(
                self.iter().map(|m| (m.revision(), m.checksum())),
            )),
        }
    }
    pub fn get(&self, revision: &str) -> Option<&'static Migration> {
        self.iter().find(|m| m.revision() == revision)
    }
}

impl IntoIterator for &Migrations {
    type Item = &'static Migration;
    type IntoIter = std::slice::Iter<'static, Migration>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Default for Migrations {
    /// No migrations.
    fn default() -> Migrations {
        migrations(&[])
    }
}
