//! diesel: a directory per migration, `<version>_<name>/up.sql` (with `down.sql` and an optional
//! `metadata.toml`). The version is the directory's name up to its first `_`, dashes removed,
//! and diesel compares versions as text: `2014-09-24-113530_x` and `20140924113530_x` mix.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version, read_text};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        if !path.is_dir() {
            listing.skip(path, "not a migration directory");
            continue;
        }
        let Some((written, title)) = name.split_once('_') else {
            listing.skip(path, "not named <version>_<name>");
            continue;
        };
        let version: String = written.chars().filter(|c| *c != '-').collect();
        if version.is_empty() {
            listing.skip(path, "not named <version>_<name>");
            continue;
        }
        let up = path.join("up.sql");
        if !up.is_file() {
            listing.refuse(
                path,
                "has no up.sql (diesel runs only SQL from a directory)",
            );
            continue;
        }
        let Some(sql) = listing.text(&up) else {
            continue;
        };
        let no_transaction = match run_in_transaction(&path.join("metadata.toml")) {
            Ok(in_transaction) => !in_transaction,
            Err(why) => {
                listing.refuse(&path.join("metadata.toml"), why);
                continue;
            }
        };
        listing.migrations.push(Source {
            version: Version::Text(version.clone()),
            written: version,
            name: title.to_owned(),
            sql,
            no_transaction,
            path: up,
            order: None,
        });
    }
    Ok(listing)
}

/// `run_in_transaction` of a migration's `metadata.toml`: true when the file or the key is absent.
fn run_in_transaction(path: &std::path::Path) -> Result<bool, String> {
    if !path.is_file() {
        return Ok(true);
    }
    let text = read_text(path)?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("is not valid TOML: {}", e.message()))?;
    match table.get("run_in_transaction") {
        None => Ok(true),
        Some(toml::Value::Boolean(value)) => Ok(*value),
        Some(_) => Err("`run_in_transaction` is not true or false".to_owned()),
    }
}
