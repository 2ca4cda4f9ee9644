//! refinery: `V<version>__<name>.sql` (or `U<version>__…` for one applied out of order), the version
//! a number. Migrations written in Rust (`.rs`) cannot be converted.

use std::path::PathBuf;

use super::{ImportError, Listing, Version};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        if path.is_dir() {
            listing.refuse(
                path,
                "a folder: refinery reads the migrations in it too; move them up into one folder first",
            );
            continue;
        }
        let Some((stem, extension)) = name.rsplit_once('.') else {
            listing.skip(path, "not a migration file");
            continue;
        };
        let parsed = stem
            .strip_prefix('V')
            .or_else(|| stem.strip_prefix('U'))
            .and_then(|rest| rest.split_once("__"))
            .filter(|(_, title)| {
                !title.is_empty() && title.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        let Some((written, title)) = parsed.filter(|_| !path.is_dir()) else {
            listing.skip(path, "not named V<version>__<name>.sql");
            continue;
        };
        if extension == "rs" {
            listing.refuse(
                path,
                "a migration written in Rust, which only refinery can run",
            );
            continue;
        }
        if extension != "sql" {
            listing.skip(path, "not named V<version>__<name>.sql");
            continue;
        }
        let Some(version) = Version::number(written) else {
            listing.refuse(path, format!("version `{written}` is not a number"));
            continue;
        };
        listing.add_whole_file(path, version, written, title, false);
    }
    Ok(listing)
}
