//! dbmate: `<version>_<name>.sql` holding `-- migrate:up` and `-- migrate:down` sections; the up
//! marker's `transaction:false` runs it outside a transaction. dbmate records the version as text.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        let parsed = name
            .strip_suffix(".sql")
            .and_then(|stem| {
                let digits =
                    stem.len() - stem.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                (digits > 0).then(|| stem.split_at(digits))
            })
            .filter(|_| !path.is_dir());
        let Some((written, rest)) = parsed else {
            listing.skip(path, "not named <version>_<name>.sql");
            continue;
        };
        let Some(text) = listing.text(path) else {
            continue;
        };
        match up_section(&text) {
            Ok((sql, no_transaction)) => listing.migrations.push(Source {
                version: Version::Text(written.to_owned()),
                written: written.to_owned(),
                name: rest.trim_start_matches('_').to_owned(),
                sql,
                no_transaction,
                path: path.to_owned(),
                // dbmate applies its files in the order of their names: `10_b` before `1_a`.
                order: Some(name.to_owned()),
            }),
            Err(why) => listing.refuse(path, why),
        }
    }
    Ok(listing)
}

/// The `up` section's SQL, and whether its marker says `transaction:false`.
fn up_section(text: &str) -> Result<(String, bool), String> {
    let mut sql = String::new();
    let (mut in_up, mut no_transaction, mut saw_up, mut saw_down) = (false, false, false, false);
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        // dbmate reads its markers with or without the blank after `--`.
        let marker = trimmed.strip_prefix("--").map(str::trim_start);
        if let Some(options) = marker.and_then(|m| m.strip_prefix("migrate:up")) {
            (in_up, saw_up) = (true, true);
            for option in options.split_whitespace() {
                match option.split_once(':') {
                    Some(("transaction", "false")) => no_transaction = true,
                    Some(("transaction", "true")) => {}
                    _ => return Err(format!("has an option dbmate does not know: `{option}`")),
                }
            }
        } else if marker.is_some_and(|m| m.starts_with("migrate:down")) {
            (in_up, saw_down) = (false, true);
        } else if in_up {
            sql.push_str(line);
        }
    }
    if !saw_up {
        return Err("has no `-- migrate:up` section, which dbmate requires".to_owned());
    }
    if !saw_down {
        return Err("has no `-- migrate:down` section, which dbmate requires".to_owned());
    }
    Ok((sql, no_transaction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_up_section_and_its_transaction_option() {
        let (sql, no_transaction) = up_section("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n\n-- migrate:down\nDROP INDEX i;\n").unwrap();
        assert_eq!(sql, "CREATE INDEX CONCURRENTLY i ON t (id);\n\n");
        assert!(no_transaction);
        assert_eq!(
            up_section("-- migrate:up verbose:yes\n").unwrap_err(),
            "has an option dbmate does not know: `verbose:yes`"
        );
    }
}
