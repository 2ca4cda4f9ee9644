//! golang-migrate: `<version>_<title>.up.sql` and `<version>_<title>.down.sql`, the version a
//! number. Each file runs as one multi-statement query.

use std::path::PathBuf;

use super::{ImportError, Listing, Version};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        let parsed = name.split_once('_').and_then(|(written, rest)| {
            let (title, direction) = rest.rsplit_once('.').and_then(|(stem, extension)| {
                (extension == "sql").then_some(stem)?.rsplit_once('.')
            })?;
            Some((written, title, direction))
        });
        let Some((written, title, direction)) = parsed.filter(|_| !path.is_dir()) else {
            listing.skip(path, "not named <version>_<title>.up.sql");
            continue;
        };
        if direction == "down" {
            listing.skip(path, "a down migration");
            continue;
        }
        let Some(version) = Version::number(written).filter(|_| direction == "up") else {
            listing.skip(path, "not named <version>_<title>.up.sql");
            continue;
        };
        listing.add_whole_file(path, version, written, title, true);
    }
    Ok(listing)
}
