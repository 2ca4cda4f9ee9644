//! goose: `<version>_<name>.sql` holding `-- +goose Up` and `-- +goose Down` sections. `-- +goose
//! StatementBegin` / `StatementEnd` only group a statement for goose's own splitting, and
//! `-- +goose NO TRANSACTION` runs the file outside a transaction. Go migrations (`.go`) and
//! files that substitute environment variables (`ENVSUB ON`) cannot be converted.

use std::path::PathBuf;

use super::{ImportError, Listing, Source, Version};

pub(super) fn read(entries: &[PathBuf]) -> Result<Listing, ImportError> {
    let mut listing = Listing::default();
    for (path, name) in listing.named(entries) {
        let Some((stem, extension)) = name.rsplit_once('.') else {
            listing.skip(path, "not a migration file");
            continue;
        };
        let Some((written, title)) = stem
            .split_once('_')
            .filter(|(written, _)| !path.is_dir() && Version::number(written).is_some())
        else {
            listing.skip(path, "not named <version>_<name>.sql");
            continue;
        };
        match extension {
            "go" => {
                listing.refuse(path, "a migration written in Go, which only goose can run");
                continue;
            }
            "sql" => {}
            _ => {
                listing.skip(path, "not named <version>_<name>.sql");
                continue;
            }
        }
        let Some(text) = listing.text(path) else {
            continue;
        };
        match up_section(&text) {
            Ok((sql, no_transaction)) => listing.migrations.push(Source {
                version: Version::number(written).unwrap_or(Version::Number(0)),
                written: written.to_owned(),
                name: title.to_owned(),
                sql,
                no_transaction,
                path: path.to_owned(),
                order: None,
            }),
            Err(why) => listing.refuse(path, why),
        }
    }
    Ok(listing)
}

/// The `Up` section's SQL without goose's annotations, and whether it runs outside a transaction.
fn up_section(text: &str) -> Result<(String, bool), String> {
    let mut sql = String::new();
    let (mut in_up, mut saw_up, mut no_transaction) = (false, false, false);
    for line in text.split_inclusive('\n') {
        // goose strips the comment's `--` and the blanks around what follows.
        let Some(annotation) = line
            .strip_prefix("--")
            .and_then(|rest| rest.trim().strip_prefix("+goose"))
        else {
            if in_up {
                sql.push_str(line);
            }
            continue;
        };
        let annotation = annotation.trim().to_ascii_uppercase();
        match annotation.as_str() {
            "UP" => (in_up, saw_up) = (true, true),
            "DOWN" => in_up = false,
            "STATEMENTBEGIN" | "STATEMENTEND" => {}
            "NO TRANSACTION" => no_transaction = true,
            "ENVSUB ON" => {
                return Err(
                    "substitutes environment variables (`-- +goose ENVSUB ON`) when goose runs it"
                        .to_owned(),
                );
            }
            "ENVSUB OFF" => {}
            other => {
                return Err(format!(
                    "has an annotation goose's docs do not list: `-- +goose {other}`"
                ));
            }
        }
    }
    if !saw_up {
        return Err("has no `-- +goose Up` annotation, which goose requires".to_owned());
    }
    Ok((sql, no_transaction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_up_section_keeps_its_statements_and_drops_the_annotations() {
        let text = "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- +goose StatementEnd\nCREATE TABLE t (id int);\n\n-- +goose Down\nDROP TABLE t;\n";
        let (sql, no_transaction) = up_section(text).unwrap();
        assert_eq!(
            sql,
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\nCREATE TABLE t (id int);\n\n"
        );
        assert!(!no_transaction);
        let (_, no_transaction) = up_section(
            "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (id);\n",
        )
        .unwrap();
        assert!(no_transaction);
        assert_eq!(
            up_section("-- +goose ENVSUB ON\n-- +goose Up\nSELECT '${X}';\n").unwrap_err(),
            "substitutes environment variables (`-- +goose ENVSUB ON`) when goose runs it"
        );
        assert_eq!(
            up_section("CREATE TABLE t ();\n").unwrap_err(),
            "has no `-- +goose Up` annotation, which goose requires"
        );
    }
}
