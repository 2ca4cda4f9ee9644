//! sqlx: `<version>_<description>.sql`, or a reversible pair `.up.sql` / `.down.sql`. The version
//! is a number; a file whose first line is `-- no-transaction` runs outside a transaction.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version};

const NO_TRANSACTION: &str = "-- no-transaction";

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        if path.is_dir() || !name.ends_with(".sql") {
            listing.skip(path, "not an SQL file");
            continue;
        }
        if name.ends_with(".down.sql") {
            listing.skip(path, "a down migration");
            continue;
        }
        let stem = name
            .strip_suffix(".up.sql")
            .or_else(|| name.strip_suffix(".sql"))
            .unwrap_or(name);
        let Some((written, description)) = stem.split_once('_') else {
            listing.skip(path, "not named <version>_<description>.sql");
            continue;
        };
        let Some(version) = Version::number(written) else {
            listing.skip(path, "not named <version>_<description>.sql");
            continue;
        };
        let Some(sql) = listing.text(path) else {
            continue;
        };
        // sqlx reads the marker as the text's start, and runs the whole file as it is.
        let no_transaction = sql.starts_with(NO_TRANSACTION);
        listing.migrations.push(Source {
            version,
            written: written.to_owned(),
            name: description.replace('_', " "),
            sql,
            no_transaction,
            path: path.to_owned(),
            order: None,
        });
    }
    Ok(listing)
}
