//! refinery: `V<version>__<name>.sql` (or `U<version>__…` for one applied out of order), the version
//! a number. Migrations written in Rust (`.rs`) cannot be converted.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version, file_name, read_text};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for path in entries {
        let Some(name) = file_name(path) else {
            listing.refuse(path, "its name is not UTF-8");
            continue;
        };
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
