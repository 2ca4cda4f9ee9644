//! Flyway: versioned SQL migrations `V<version>__<description>.sql`, the version numbers
//! separated by `.` or `_` (`V1_1__x` is version 1.1), and an optional `<file>.conf` beside one
//! (`executeInTransaction=false`). Undo migrations (`U…`) are skipped; repeatable (`R__…`) and
//! baseline (`B…`) migrations, and SQL with placeholders (`${…}`, replaced by Flyway when it
//! runs), cannot be converted.

use std::path::{Path, PathBuf};

use super::{ImportError, Listing, Source, Version, read_text};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        if path.is_dir() {
            listing.refuse(path, "a folder: Flyway reads the migrations in it too; move them up into one folder first");
            continue;
        }
        let Some(stem) = name.strip_suffix(".sql") else {
            let why = if name.ends_with(".sql.conf") {
                "the settings of the migration beside it"
            } else {
                "not an SQL migration"
            };
            listing.skip(path, why);
            continue;
        };
        if stem.starts_with("R__") {
            listing.refuse(
                path,
                "a repeatable migration (R__), which Flyway runs again whenever it changes",
            );
            continue;
        }
        if stem.starts_with('U') && stem.contains("__") {
            listing.skip(path, "an undo migration");
            continue;
        }
        if stem.starts_with('B') && stem.contains("__") {
            listing.refuse(
                path,
                "a baseline migration (B…), which Flyway runs only on a new database",
            );
            continue;
        }
        let Some((written, description)) = stem
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
        else {
            listing.skip(path, "not named V<version>__<description>.sql");
            continue;
        };
        let Some(version) = parts(written) else {
            listing.refuse(
                path,
                format!("version `{written}` is not numbers separated by `.` or `_`"),
            );
            continue;
        };
        let Some(sql) = listing.text(path) else {
            continue;
        };
        if let Some(at) = sql.find("${") {
            let placeholder: String = sql[at..]
                .chars()
                .take_while(|c| *c != '}')
                .chain(['}'])
                .collect();
            listing.refuse(
                path,
                format!("uses the placeholder `{placeholder}`, which Flyway replaces when it runs"),
            );
            continue;
        }
        // Flyway runs a migration outside a transaction when its settings say so, or when it
        // holds a statement that cannot run in one.
        let no_transaction = match in_transaction(&path.with_file_name(format!("{name}.conf"))) {
            Ok(in_transaction) => !in_transaction || super::cannot_run_in_a_transaction(&sql),
            Err(why) => {
                listing.refuse(path, why);
                continue;
            }
        };
        listing.migrations.push(Source {
            version,
            // `1.1` and `1_1` are one Flyway version: the revision writes it with `_`.
            written: written.replace('.', "_"),
            name: description.replace('_', " "),
            sql,
            no_transaction,
            path: path.to_owned(),
            order: None,
        });
    }
    Ok(listing)
}

/// A Flyway version's numbers: `1.2_3` is 1, 2, 3.
pub(super) fn parts(written: &str) -> Option<Version> {
    let mut parts = written
        .split(['.', '_'])
        .map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        })
        .collect::<Option<Vec<u128>>>()?;
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    Some(Version::Parts(parts))
}

/// `executeInTransaction` of a migration's `.conf` file: true when the file or the key is absent.
fn in_transaction(conf: &Path) -> Result<bool, String> {
    if !conf.is_file() {
        return Ok(true);
    }
    let text = read_text(conf).map_err(|why| format!("its settings file {why}"))?;
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "executeInTransaction"
        {
            return match value.trim() {
                "false" => Ok(false),
                "true" => Ok(true),
                other => Err(format!(
                    "its settings file sets executeInTransaction to `{other}`"
                )),
            };
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_numbers_separated_by_dots_or_underscores() {
        assert_eq!(parts("1.1"), Some(Version::Parts(vec![1, 1])));
        assert_eq!(parts("1.0"), parts("1"));
        assert_eq!(parts("2_0_0"), Some(Version::Parts(vec![2])));
        assert_eq!(parts("0"), Some(Version::Parts(vec![0])));
        assert_eq!(parts("1_1"), parts("1.1"));
        assert_eq!(
            parts("2024.01.02_3"),
            Some(Version::Parts(vec![2024, 1, 2, 3]))
        );
        assert_eq!(parts("1.x"), None);
        assert_eq!(parts("1..2"), None);
    }
}
