//! Reading a migration file: UTF-8 check, BOM and CRLF normalisation, checksum, line index.

use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, Location};
use crate::analysis::diagnostic::Check;

/// The text of a migration as it is embedded, checksummed and parsed: without a byte-order mark,
/// with every CRLF turned into LF, so that a Windows checkout yields the same migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedText {
    pub text: String,
}

/// Decodes and normalises a file's bytes, or says where the first invalid UTF-8 byte or NUL
/// character is.
pub fn normalize(path: &str, bytes: &[u8]) -> Result<NormalizedText, Diagnostic> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let text = text.replace("\r\n", "\n");
            // PostgreSQL can neither receive a NUL in a query nor store one in a text column.
            if let Some(offset) = text.find('\0') {
                let (line, column) = LineIndex::new(&text).line_column(offset);
                return Err(Diagnostic::error(
                    Check::NulCharacter,
                    Some(Location::new(path, line, column)),
                    "the file contains a NUL character (U+0000), which PostgreSQL cannot receive in a statement nor store in the history",
                )
                .with_help("remove it; to write a zero byte in SQL use an escape such as '\\x00'::bytea"));
            }
            Ok(NormalizedText { text })
        }
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            // The valid prefix is UTF-8 by definition, so the position can be computed on it.
            let prefix = String::from_utf8_lossy(valid);
            let (line, column) = LineIndex::new(&prefix).line_column(prefix.len());
            Err(Diagnostic::error(
                Check::NonUtf8File,
                Some(Location::new(path, line, column)),
                format!(
                    "file is not valid UTF-8 (invalid byte 0x{:02X} at byte offset {})",
                    bytes.get(err.valid_up_to()).copied().unwrap_or(0),
                    err.valid_up_to()
                ),
            )
            .with_help("save the migration as UTF-8; SQL migrations must be text"))
        }
    }
}

/// Hex SHA-256 of the normalised text: what the history table stores to detect edited migrations.
pub fn checksum(text: &NormalizedText) -> String {
    crate::hex(&Sha256::digest(text.text.as_bytes()))
}

/// Maps byte offsets to 1-based line and character column.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    /// Line and column of a byte offset; offsets past the end or inside a character are clamped.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// A statement on one line (whitespace runs folded) and cut to `max_chars`, for messages.
pub fn one_line(sql: &str, max_chars: usize) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max_chars {
        format!("{}…", flat.chars().take(max_chars).collect::<String>())
    } else {
        flat
    }
}

/// The 1-based character column at which `inner`, a subslice of `line`, starts. Taken from the
/// slices' addresses, so it is right whatever was trimmed on either side of `inner`, and never
/// cuts a character: a slice that is not part of `line` gets column 1.
pub fn column_of(line: &str, inner: &str) -> usize {
    let offset = (inner.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    if offset
        .checked_add(inner.len())
        .is_none_or(|end| end > line.len())
    {
        return 1;
    }
    line.get(..offset)
        .map_or(1, |prefix| prefix.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_character_is_refused_with_its_position() {
        let err = normalize("m/a.sql", "-- revision: a\n-- message: é\0\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m/a.sql:2:14: [nul-character] the file contains a NUL character (U+0000), which PostgreSQL cannot receive in a statement nor store in the history\n  = help: remove it; to write a zero byte in SQL use an escape such as '\\x00'::bytea"
        );
    }

    #[test]
    fn columns_count_characters_of_subslices() {
        let line = "-- message: 🚀 première migration \t ";
        let value = line
            .trim_end()
            .split_once(':')
            .map(|(_, v)| v.trim_start())
            .unwrap();
        assert_eq!(column_of(line, value), 13);
        assert_eq!(
            column_of(line, &line[line.len()..]),
            line.chars().count() + 1
        );
        assert_eq!(column_of(line, &String::from("elsewhere")), 1);
        let nbsp = "\u{a0}\u{a0}-- migrate:allow x";
        assert_eq!(column_of(nbsp, nbsp.trim_start()), 3);
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum() {
        let lf = normalize("a.sql", b"-- revision: a\n-- parents: none\nSELECT 1;\n").unwrap();
        let crlf = normalize(
            "a.sql",
            b"-- revision: a\r\n-- parents: none\r\nSELECT 1;\r\n",
        )
        .unwrap();
        let bom = normalize(
            "a.sql",
            b"\xEF\xBB\xBF-- revision: a\r\n-- parents: none\r\nSELECT 1;\r\n",
        )
        .unwrap();
        assert_eq!(lf, crlf);
        assert_eq!(checksum(&lf), checksum(&crlf));
        assert_eq!(checksum(&lf), checksum(&bom));
        assert_eq!(checksum(&lf).len(), 64);
    }

    #[test]
    fn a_changed_body_changes_the_checksum() {
        let a = normalize("a.sql", b"SELECT 1;\n").unwrap();
        let b = normalize("a.sql", b"SELECT 2;\n").unwrap();
        assert_ne!(checksum(&a), checksum(&b));
    }

    #[test]
    fn non_utf8_names_line_and_column() {
        let err = normalize("m/x.sql", b"-- ok\nSELECT '\xff';").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m/x.sql:2:9: [non-utf8-file] file is not valid UTF-8 (invalid byte 0xFF at byte offset 14)\n  = help: save the migration as UTF-8; SQL migrations must be text"
        );
    }

    #[test]
    fn line_index_counts_characters() {
        let text = "ab\né✓x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(3 + "é✓".len()), (2, 3));
        assert_eq!(index.line_column(4), (2, 1));
        assert_eq!(index.line_column(1000), (3, 1));
    }
}
