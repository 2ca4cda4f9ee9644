//! golang-migrate: `<version>_<title>.up.sql` and `<version>_<title>.down.sql`, the version a
//! number. Each file runs as one multi-statement query.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version, file_name, read_text};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for path in entries {
        let Some(name) = file_name(path) else {
            listing.refuse(path, "its name is not UTF-8");
            continue;
        };
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
        match read_text(path) {
            Ok(sql) => listing.migrations.push(Source {
                version,
                written: written.to_owned(),
                name: title.to_owned(),
                sql,
                no_transaction: false,
                path: path.clone(),
            }),
            Err(why) => listing.refuse(path, why),
        }
    }
    Ok(listing)
}
