//! The schema snapshot: the catalog the migrations build, written beside them by
//! `migrate snapshot` and embedded by `embed_migrations!`, so that a running service can check
//! its database for drift with one catalog read and no shadow database.
//!
//! The file holds the catalog's rows as `pg_catalog` returned them, one row a line, cells
//! separated by tabs and escaped as in `COPY`'s text format (`\N` for NULL). Its key is a
//! digest of the checksums of the migrations it was taken for: when they change, the snapshot is
//! stale and is not used.

use sha2::{Digest, Sha256};

/// The snapshot's file name, in the migrations directory.
pub const SNAPSHOT_FILE: &str = "schema.snapshot";

const FIRST_LINE: &str =
    "# migrate schema snapshot: the catalog these migrations build (`migrate snapshot` writes it)";

/// One catalog row: text cells, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// The shape of the rows the catalog read returns: a snapshot of another shape is stale.
const ROWS_VERSION: &str = "rows 2";

/// The key of a set of migrations: hex SHA-256 over the rows' version and the migrations'
/// checksums, in application order.
pub fn key<'a>(checksums: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(ROWS_VERSION.as_bytes());
    hasher.update(b"\n");
    for checksum in checksums {
        hasher.update(checksum.as_bytes());
        hasher.update(b"\n");
    }
    crate::hex(&hasher.finalize())
}

fn escape(cell: &Option<String>) -> String {
    match cell {
        None => "\\N".to_owned(),
        Some(text) => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out
        }
    }
}

fn unescape(cell: &str) -> Option<String> {
    if cell == "\\N" {
        return None;
    }
    let mut out = String::with_capacity(cell.len());
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// The snapshot file for `rows`, taken for the migrations whose key is `key`.
pub fn encode(key: &str, rows: &[Row]) -> String {
    let mut out = format!("{FIRST_LINE}\n# key: {key}\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(escape).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

/// The key a snapshot file was taken for, `None` when the text is not a snapshot.
pub fn key_of(text: &str) -> Option<&str> {
    let mut lines = text.lines();
    (lines.next()? == FIRST_LINE).then_some(())?;
    lines.next()?.strip_prefix("# key: ")
}

/// The rows of a snapshot file (`None` when the text is not a snapshot).
pub fn decode(text: &str) -> Option<Vec<Row>> {
    key_of(text)?;
    Some(
        // Every line is a row, an empty one too (one empty cell).
        text.lines()
            .skip(2)
            .map(|line| line.split('\t').map(unescape).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_key_follows_every_checksum_and_their_order() {
        assert_ne!(key(["a", "b"]), key(["b", "a"]));
        assert_ne!(key(["a", "b"]), key(["ab"]));
        assert_eq!(key(["a", "b"]), key(["a", "b"]));
        assert_eq!(key([]).len(), 64);
    }

    #[test]
    fn text_that_is_not_a_snapshot_is_refused() {
        assert_eq!(decode("table\tpublic.t\n"), None);
        assert_eq!(key_of(""), None);
    }

    proptest! {
        #[test]
        fn rows_come_back_as_they_went_in(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of("(\\PC|[\\t\\n\\r\\\\]|N|é|ß|🌙){0,12}"), 1..6),
                0..6,
            )
        ) {
            let text = encode("k", &rows);
            prop_assert_eq!(key_of(&text), Some("k"));
            prop_assert_eq!(decode(&text), Some(rows));
        }
    }
}
