//! The header of a migration file: its leading `--` comment lines.
//!
//! ```sql
//! -- revision: 1a2b3c4d5e6f
//! -- parents: f7e8a9b0c1d2            (comma-separated for a merge; `none` for the root)
//! -- message: fix user_personalization foreign key
//! -- migrate:no-transaction
//! -- migrate:lock-timeout 500ms
//! -- migrate:statement-timeout 5min
//! ```
//!
//! The header ends at the first line that is not a `--` comment (a blank line included). Inside
//! it, `-- word: value` is a key and an unknown key is an error, because a typo such as `parent:`
//! would otherwise silently turn a migration into a second root. Lines that are not of that shape
//! are free comments.

use std::time::Duration;

use super::diagnostic::{Diagnostic, Location};
use crate::analysis::diagnostic::Check;

/// The longest revision id accepted.
pub const MAX_REVISION_LEN: usize = 64;

/// A position inside the file (1-based line and character column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub revision: String,
    pub revision_pos: Pos,
    /// Empty for the root (`parents: none`).
    pub parents: Vec<(String, Pos)>,
    pub message: Option<String>,
    pub no_transaction: bool,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// A squashed migration's `replaces:` line: the revisions it stands for besides its own,
    /// which a database that ran them keeps in its history.
    pub replaces: Vec<(String, Pos)>,
}

impl Header {
    pub fn parent_ids(&self) -> impl Iterator<Item = &str> {
        self.parents.iter().map(|(id, _)| id.as_str())
    }
}

/// Whether `id` is 1–64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_revision_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REVISION_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const KNOWN: &str = "known keys: `revision`, `parents`, `message`, `replaces`; directives: \
`migrate:no-transaction`, `migrate:lock-timeout <duration>`, `migrate:statement-timeout <duration>`, \
`migrate:allow <rule-id>: <reason>`";

/// Parses a duration such as `500ms`, `1s`, `2min`, `1h` or `0` (no timeout).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits.parse().ok()?;
    let millis = match unit.trim() {
        "" if value == 0 => 0,
        "ms" => value,
        "s" => value.checked_mul(1_000)?,
        "min" => value.checked_mul(60_000)?,
        "h" => value.checked_mul(3_600_000)?,
        _ => return None,
    };
    // PostgreSQL's timeouts are int4 milliseconds.
    (millis <= i32::MAX as u64).then(|| Duration::from_millis(millis))
}

/// The header of a new migration file, as `new`, `merge`, `diff --write` and `baseline` write
/// it: `parents: none` for a root, the message on one line.
pub fn render_header(
    revision: &str,
    parents: &[&str],
    message: &str,
    no_transaction: bool,
) -> String {
    let parents = if parents.is_empty() {
        "none".to_owned()
    } else {
        parents.join(", ")
    };
    // One line, whatever line breaks the message held.
    let message = message
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut text =
        format!("-- revision: {revision}\n-- parents: {parents}\n-- message: {message}\n");
    if no_transaction {
        text.push_str("-- migrate:no-transaction\n");
    }
    text
}

/// The header of a squashed migration: a root that keeps the revision of the last migration it
/// squashes and names the others on its `replaces:` line.
pub fn render_squash_header(revision: &str, message: &str, replaces: &[&str]) -> String {
    render_header(revision, &[], message, false).replacen(
        "\n-- message:",
        &format!("\n-- replaces: {}\n-- message:", replaces.join(", ")),
        1,
    )
}

/// Parses the header of `text` (already normalised to LF). All problems are returned at once.
pub fn parse_header(path: &str, text: &str) -> Result<Header, Vec<Diagnostic>> {
    match parse_header_partial(path, text) {
        (Some(header), errors) if errors.is_empty() => Ok(header),
        (_, errors) => Err(errors),
    }
}

/// [`parse_header`] that also returns what could be read: the header is there whenever its
/// `revision` and `parents` lines are valid, even when other lines are not, so that the graph
/// of a directory can be checked around a file with a bad directive.
pub fn parse_header_partial(path: &str, text: &str) -> (Option<Header>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut revision: Option<(String, Pos)> = None;
    let mut parents: Option<Vec<(String, Pos)>> = None;
    // A parents line with an invalid id lost that parent: the graph cannot use it.
    let mut parents_valid = false;
    let mut message = None;
    let mut no_transaction = false;
    let mut lock_timeout = None;
    let mut statement_timeout = None;
    let mut replaces: Option<Vec<(String, Pos)>> = None;
    let mut replaces_valid = true;
    let at = |line: usize, column: usize| Some(Location::new(path, line, column));

    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let Some(comment) = raw_line.trim_end().strip_prefix("--") else {
            break;
        };
        // Column (1-based, in characters) of the first character of `rest` within the line.
        let column_of = |rest: &str| super::source::column_of(raw_line, rest);
        let body = comment.trim_start();

        if let Some(directive) = body.strip_prefix("migrate:") {
            let (name, argument) = match directive.find(|c: char| c.is_whitespace() || c == ':') {
                Some(i) => (
                    &directive[..i],
                    directive[i..].trim_start_matches(':').trim(),
                ),
                None => (directive, ""),
            };
            match name {
                "no-transaction" if argument.is_empty() => no_transaction = true,
                "no-transaction" => errors.push(
                    Diagnostic::error(
                        Check::InvalidDirective,
                        at(line_no, column_of(body)),
                        format!("`migrate:no-transaction` takes no argument, found `{argument}`"),
                    )
                    .with_help("write the line as `-- migrate:no-transaction`"),
                ),
                "lock-timeout" | "statement-timeout" => match parse_duration(argument) {
                    Some(d) if name == "lock-timeout" => lock_timeout = Some(d),
                    Some(d) => statement_timeout = Some(d),
                    None => errors.push(
                        Diagnostic::error(
                            Check::InvalidDirective,
                            at(line_no, column_of(body)),
                            format!("`migrate:{name}` needs a duration, found `{argument}`"),
                        )
                        .with_help(format!(
                            "write e.g. `-- migrate:{name} 500ms` (units: ms, s, min, h; `0` disables it)"
                        )),
                    ),
                },
                // Suppressions belong to the statement below; the lint reads them there.
                "allow" => {}
                _ => errors.push(
                    Diagnostic::error(
                        Check::UnknownDirective,
                        at(line_no, column_of(body)),
                        format!("unknown directive `migrate:{name}`"),
                    )
                    .with_help(KNOWN),
                ),
            }
            continue;
        }

        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
        {
            continue;
        }
        let value_text = value.trim();
        let value_pos = Pos {
            line: line_no,
            column: column_of(value.trim_start()),
        };
        let duplicate = |found: bool, errors: &mut Vec<Diagnostic>| {
            if found {
                errors.push(
                    Diagnostic::error(
                        Check::InvalidHeader,
                        at(line_no, column_of(body)),
                        format!("`{key}` is given twice in the header"),
                    )
                    .with_help(format!("keep exactly one `-- {key}:` line")),
                );
            }
            found
        };
        match key {
            "revision" => {
                if duplicate(revision.is_some(), &mut errors) {
                    continue;
                }
                if check_id(path, value_text, value_pos, "revision", &mut errors) {
                    revision = Some((value_text.to_owned(), value_pos));
                }
            }
            "parents" => {
                if duplicate(parents.is_some(), &mut errors) {
                    continue;
                }
                let (list, complete) = parse_parents(path, value, value_pos, &mut errors);
                parents = Some(list);
                parents_valid = complete;
            }
            "message" => {
                if !duplicate(message.is_some(), &mut errors) {
                    message = Some(value_text.to_owned());
                }
            }
            "replaces" => {
                if duplicate(replaces.is_some(), &mut errors) {
                    continue;
                }
                let (list, complete) = parse_parents(path, value, value_pos, &mut errors);
                replaces = Some(list);
                replaces_valid = complete;
            }
            _ => errors.push(
                Diagnostic::error(
                    Check::UnknownDirective,
                    at(line_no, column_of(body)),
                    format!("unknown header key `{key}`"),
                )
                .with_help(format!(
                    "{KNOWN}. A free comment belongs below the header, after a blank line"
                )),
            ),
        }
    }

    let header_help = "start the file with\n-- revision: <id>\n-- parents: <parent id, comma-separated for a merge, or `none` for the first migration>";
    if revision.is_none() && !errors.iter().any(|e| e.check == Check::InvalidRevisionId) {
        errors.push(
            Diagnostic::error(
                Check::MissingHeader,
                at(1, 1),
                "the header has no `-- revision:` line",
            )
            .with_help(header_help),
        );
    }
    if parents.is_none() {
        errors.push(
            Diagnostic::error(
                Check::MissingHeader,
                at(1, 1),
                "the header has no `-- parents:` line",
            )
            .with_help(header_help),
        );
    }
    let header = match (revision, parents) {
        (Some((revision, revision_pos)), Some(parents)) if parents_valid && replaces_valid => {
            Some(Header {
                revision,
                revision_pos,
                parents,
                message,
                no_transaction,
                lock_timeout,
                statement_timeout,
                replaces: replaces.unwrap_or_default(),
            })
        }
        _ => None,
    };
    (header, errors)
}

fn check_id(path: &str, id: &str, pos: Pos, what: &str, errors: &mut Vec<Diagnostic>) -> bool {
    if is_valid_revision_id(id) {
        return true;
    }
    let shown: String = id.chars().take(80).collect();
    let ellipsis = if id.chars().count() > 80 { "…" } else { "" };
    let reason = if id.is_empty() {
        "is empty".to_owned()
    } else if id.len() > MAX_REVISION_LEN {
        format!("is {} characters long", id.chars().count())
    } else {
        "has characters outside [A-Za-z0-9_-]".to_owned()
    };
    errors.push(
        Diagnostic::error(
            Check::InvalidRevisionId,
            Some(Location::new(path, pos.line, pos.column)),
            format!("{what} id `{shown}{ellipsis}` {reason}"),
        )
        .with_help("a revision id is 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`, e.g. `1a2b3c4d5e6f`"),
    );
    false
}

/// The parents, and whether the list is every parent the header means: an invalid id or a
/// `none` among others leaves it incomplete; a parent listed twice does not (it is still known
/// exactly, so the file keeps its place in the graph and the graph's own errors are reported).
fn parse_parents(
    path: &str,
    value: &str,
    start: Pos,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<(String, Pos)>, bool) {
    if value.trim() == "none" {
        return (Vec::new(), true);
    }
    let mut complete = true;
    let mut parents: Vec<(String, Pos)> = Vec::new();
    // `start` is the position of the first non-blank character of `value`.
    let trimmed = value.trim_start();
    let mut offset = 0;
    for part in trimmed.split(',') {
        let id = part.trim();
        let skip = part.len() - part.trim_start().len();
        let before = trimmed.get(..offset + skip).unwrap_or(trimmed);
        let pos = Pos {
            line: start.line,
            column: start.column + before.chars().count(),
        };
        offset += part.len() + 1;
        if id == "none" {
            errors.push(
                Diagnostic::error(
                    Check::InvalidHeader,
                    Some(Location::new(path, pos.line, pos.column)),
                    "`none` cannot be combined with other parents",
                )
                .with_help("write `-- parents: none` only for the first migration"),
            );
            complete = false;
            continue;
        }
        if !check_id(path, id, pos, "parent", errors) {
            complete = false;
            continue;
        }
        if parents.iter().any(|(p, _)| p == id) {
            errors.push(
                Diagnostic::error(
                    Check::InvalidHeader,
                    Some(Location::new(path, pos.line, pos.column)),
                    format!("parent `{id}` is listed twice"),
                )
                .with_help("list each parent once"),
            );
            continue;
        }
        parents.push((id.to_owned(), pos));
    }
    (parents, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `new`, `merge`, `diff --write` and `baseline` write parses back as written, whatever
    /// the message holds: a line break in it would have ended the header's message line.
    #[test]
    fn a_rendered_header_parses_back() {
        let cases: [(&[&str], &str, bool, &str); 3] = [
            (
                &[],
                "baseline: «naïve» Grüße 🚀",
                false,
                "baseline: «naïve» Grüße 🚀",
            ),
            (&["a", "b-2"], "merge a and b-2", false, "merge a and b-2"),
            (&["a"], "two\nlines\r\n here\r", true, "two lines here"),
        ];
        for (parents, message, no_transaction, expected) in cases {
            let text = render_header("r_1", parents, message, no_transaction);
            let header = parse_header("m.sql", &format!("{text}\nSELECT 1;\n")).unwrap();
            assert_eq!(header.revision, "r_1");
            let read: Vec<&str> = header.parents.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(read, parents);
            assert_eq!(header.message.as_deref(), Some(expected));
            assert_eq!(header.no_transaction, no_transaction);
        }
        let squash = render_squash_header("c", "squash", &["a", "b"]);
        assert_eq!(
            squash,
            "-- revision: c\n-- parents: none\n-- replaces: a, b\n-- message: squash\n"
        );
        let header = parse_header("m.sql", &squash).unwrap();
        let replaced: Vec<&str> = header.replaces.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(replaced, ["a", "b"]);
        // `migrate merge -m` with a line break in the message.
        let (_, merge) = crate::analysis::graph::merge_migration(&["a", "b"], Some("two\nlines"));
        let header = parse_header("m.sql", &merge).unwrap();
        assert_eq!(header.message.as_deref(), Some("two lines"));
        assert_eq!(
            render_header("r", &[], "m", true),
            "-- revision: r\n-- parents: none\n-- message: m\n-- migrate:no-transaction\n"
        );
    }

    fn errors(text: &str) -> Vec<String> {
        parse_header("m/a.sql", text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn parses_a_full_header() {
        let h = parse_header(
            "m/a.sql",
            "-- revision: 1a2b\n-- parents: f7e8, c0d1\n-- message: fix fk\n-- migrate:no-transaction\n-- migrate:lock-timeout 500ms\n-- migrate:statement-timeout: 2min\nSELECT 1;",
        )
        .unwrap();
        assert_eq!(h.revision, "1a2b");
        assert_eq!(
            h.revision_pos,
            Pos {
                line: 1,
                column: 14
            }
        );
        assert_eq!(h.parent_ids().collect::<Vec<_>>(), ["f7e8", "c0d1"]);
        assert_eq!(
            h.parents[1].1,
            Pos {
                line: 2,
                column: 19
            }
        );
        assert_eq!(h.message.as_deref(), Some("fix fk"));
        assert!(h.no_transaction);
        assert_eq!(h.lock_timeout, Some(Duration::from_millis(500)));
        assert_eq!(h.statement_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn root_has_no_parents_and_free_comments_are_ignored() {
        let h = parse_header(
            "m/a.sql",
            "-- revision: a\n-- parents: none\n-- creates the users table\n-- see https://x.y/z\n",
        )
        .unwrap();
        assert!(h.parents.is_empty());
        assert_eq!(h.message, None);
        assert!(!h.no_transaction);
    }

    #[test]
    fn header_ends_at_first_non_comment_line() {
        let e = errors("-- revision: a\n\n-- parents: none\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("no `-- parents:` line"), "{e:?}");
    }

    #[test]
    fn missing_header() {
        let e = errors("CREATE TABLE t (id int);\n");
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("m/a.sql:1:1: [missing-header] the header has no `-- revision:` line")
        );
    }

    #[test]
    fn invalid_ids() {
        let long = "x".repeat(200);
        let e = errors(&format!("-- revision: {long}\n-- parents: a b, ok, né\n"));
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("is 200 characters long"));
        assert!(e[0].starts_with("m/a.sql:1:14: [invalid-revision-id]"));
        assert!(
            e[1].starts_with("m/a.sql:2:13: [invalid-revision-id] parent id `a b` has characters"),
            "{}",
            e[1]
        );
        assert!(
            e[2].starts_with("m/a.sql:2:22: [invalid-revision-id] parent id `né`"),
            "{}",
            e[2]
        );
    }

    #[test]
    fn unknown_keys_and_directives() {
        let e = errors("-- revision: a\n-- parent: b\n-- migrate:no-transactions\n");
        assert!(
            e[0].starts_with("m/a.sql:2:4: [unknown-directive] unknown header key `parent`"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(
                "m/a.sql:3:4: [unknown-directive] unknown directive `migrate:no-transactions`"
            ),
            "{e:?}"
        );
        assert!(e[2].contains("no `-- parents:` line"));
    }

    #[test]
    fn bad_directive_arguments() {
        let e = errors(
            "-- revision: a\n-- parents: none\n-- migrate:lock-timeout soon\n-- migrate:no-transaction yes\n",
        );
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("`migrate:lock-timeout` needs a duration, found `soon`"));
        assert!(e[1].contains("takes no argument"));
    }

    #[test]
    fn duplicates_and_none_mixed() {
        let e = errors("-- revision: a\n-- revision: b\n-- parents: none, x\n");
        assert!(e[0].contains("`revision` is given twice"));
        assert!(e[1].contains("`none` cannot be combined"));
        let e = errors("-- revision: a\n-- parents: x, x\n");
        assert!(e[0].contains("parent `x` is listed twice"));
    }

    #[test]
    fn non_ascii_text_with_trailing_whitespace_is_read_whole() {
        for message in [
            "🚀 première migration",
            "Créer la table",
            "Größe ändern",
            "添加用户表",
            "a\u{a0}b",
        ] {
            for trailing in [" ", "\t", " \t ", "\u{a0}", ""] {
                let text = format!(
                    "-- revision: a{trailing}\n-- parents: none{trailing}\n-- message: {message}{trailing}\n"
                );
                let header = parse_header("m/a.sql", &text).unwrap();
                assert_eq!(header.message.as_deref(), Some(message), "{text:?}");
            }
        }
        let e = errors("-- revision: é🚀 \t\n-- parents: none\n");
        assert!(
            e[0].starts_with("m/a.sql:1:14: [invalid-revision-id] revision id `é🚀`"),
            "{e:?}"
        );
        let e = errors("-- revision: a\n-- parents: none\n-- migrate:lock-timeout 5 sécondes \n");
        assert!(
            e[0].starts_with("m/a.sql:3:4: [invalid-directive]"),
            "{e:?}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1 s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("1000h"), None);
    }
}
