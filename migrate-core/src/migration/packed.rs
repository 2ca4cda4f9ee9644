//! The compact form in which `embed_migrations!` bakes a directory into the binary: one string
//! that describes every migration (its revision, parents, header settings, statements) and one
//! string literal per migration for its SQL, decoded once at run time.
//!
//! Why not a struct literal per migration: the compiler type-checks and evaluates every field
//! expression of a static's initializer, about 12 µs each, and a migration with two statements
//! has two dozen of them. With 1,000 migrations that is half a second of every incremental build;
//! two string literals per migration cost the compiler a few milliseconds in all.
//!
//! The description is a sequence of fields: a number is its decimal digits and `,`; a text is its
//! length in bytes, `:`, then the text itself; an optional field is `~` when absent. It starts
//! with the number of migrations, then of parents and of statements in all. Lengths, not
//! separators, delimit texts, so any text (a message in French, an emoji, a comma) goes through
//! unchanged, and decoding slices only where a length says a field ends, with `str::get`: a
//! malformed description is an error, never a panic.

use std::time::Duration;

use super::record::{Migration, MigrationParts, Statement, migration};

/// The version of the format. The macro's output checks it at compile time
/// ([`check_format`]), so a binary never holds a description its runtime reads differently.
pub const FORMAT: u32 = 3;

/// Fails the build when the macro that wrote a description used another format than this
/// runtime reads: the two crates come from different versions of `migrate`.
pub const fn check_format(written_with: u32) {
    if written_with != FORMAT {
        panic!(
            "embed_migrations! and the migrate runtime are from different versions of migrate: depend on the `migrate` crate alone, which keeps them in step"
        );
    }
}

#[cfg(feature = "analysis")]
/// One migration as the encoder sees it: borrowed from the analysis, at compile time.
struct Fields<'a> {
    pub revision: &'a str,
    pub parents: Vec<&'a str>,
    pub message: Option<&'a str>,
    pub no_transaction: bool,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub path: &'a str,
    pub checksum: &'a str,
    pub self_contained: bool,
    pub replaces: Vec<&'a str>,
    pub statements: Vec<StatementFields<'a>>,
}

#[cfg(feature = "analysis")]
/// One statement as the encoder sees it: a [`Statement`] borrowed from the analysis.
struct StatementFields<'a> {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
    pub concurrent_index: Option<&'a str>,
    pub concurrent_table: Option<&'a str>,
    pub rerunnable: bool,
}

#[cfg(feature = "analysis")]
impl<'a> Fields<'a> {
    fn of(m: &'a crate::analysis::AnalyzedMigration) -> Fields<'a> {
        Fields {
            revision: &m.header.revision,
            parents: m.header.parent_ids().collect(),
            message: m.header.message.as_deref(),
            no_transaction: m.header.no_transaction,
            lock_timeout: m.header.lock_timeout,
            statement_timeout: m.header.statement_timeout,
            path: &m.path,
            checksum: &m.checksum,
            self_contained: m.self_contained,
            replaces: m.header.replaces.iter().map(|(r, _)| r.as_str()).collect(),
            statements: m
                .statements
                .iter()
                .map(|parsed| StatementFields {
                    start: parsed.span.start,
                    end: parsed.span.end,
                    line: parsed.span.line,
                    column: parsed.span.column,
                    concurrent_index: parsed.span.concurrent_index.as_deref(),
                    concurrent_table: parsed.span.concurrent_table.as_deref(),
                    rerunnable: parsed.span.rerunnable,
                })
                .collect(),
        }
    }
}

#[cfg(feature = "analysis")]
/// The description of the migrations of an analysis, in their order: what the macro embeds.
pub fn encode_analyzed(migrations: &[crate::analysis::AnalyzedMigration]) -> String {
    encode(migrations.iter().map(Fields::of))
}

#[cfg(feature = "analysis")]
struct Writer(String);

#[cfg(feature = "analysis")]
impl Writer {
    fn number(&mut self, n: u64) {
        self.0.push_str(&n.to_string());
        self.0.push(',');
    }
    fn usize(&mut self, n: usize) {
        self.number(n as u64);
    }
    fn flag(&mut self, value: bool) {
        self.number(u64::from(value));
    }
    fn text(&mut self, text: &str) {
        self.0.push_str(&text.len().to_string());
        self.0.push(':');
        self.0.push_str(text);
    }
    fn optional<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Writer, T)) {
        match value {
            Some(value) => write(self, value),
            None => self.0.push('~'),
        }
    }
    fn millis(&mut self, duration: Option<Duration>) {
        self.optional(duration, |w, d| {
            w.number(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        });
    }
}

#[cfg(feature = "analysis")]
/// The description of `migrations`, in their order.
fn encode<'a>(migrations: impl Iterator<Item = Fields<'a>>) -> String {
    let migrations: Vec<Fields<'a>> = migrations.collect();
    let mut w = Writer(String::new());
    // The totals first, so that the decoder allocates each list once, at its size.
    w.usize(migrations.len());
    w.usize(migrations.iter().map(|m| m.parents.len()).sum());
    w.usize(migrations.iter().map(|m| m.statements.len()).sum());
    for m in &migrations {
        w.text(m.revision);
        w.usize(m.parents.len());
        for parent in &m.parents {
            w.text(parent);
        }
        w.optional(m.message, Writer::text);
        w.flag(m.no_transaction);
        w.millis(m.lock_timeout);
        w.millis(m.statement_timeout);
        w.text(m.path);
        w.text(m.checksum);
        w.flag(m.self_contained);
        // Revision ids hold no comma: one text for the list, absent for all but a squash.
        let replaces = m.replaces.join(",");
        w.optional(
            (!replaces.is_empty()).then_some(replaces.as_str()),
            Writer::text,
        );
        w.usize(m.statements.len());
        for s in &m.statements {
            w.usize(s.start);
            w.usize(s.end);
            w.usize(s.line);
            w.usize(s.column);
            w.optional(s.concurrent_index, Writer::text);
            w.optional(s.concurrent_table, Writer::text);
            w.flag(s.rerunnable);
        }
    }
    w.0
}

struct Reader {
    rest: &'static str,
}

/// What went wrong, for the one message [`decode`] returns.
type Malformed = &'static str;

impl Reader {
    fn number(&mut self) -> Result<u64, Malformed> {
        self.digits(b',')
    }
    /// The decimal number before `end`, which it consumes. Read byte by byte: a start reads
    /// thousands of them, and `str::split_once` and `parse` cost several times more.
    fn digits(&mut self, end: u8) -> Result<u64, Malformed> {
        let mut value: u64 = 0;
        for (i, &byte) in self.rest.as_bytes().iter().enumerate() {
            match byte {
                b'0'..=b'9' => {
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                        .ok_or("a number is too large")?;
                }
                _ if byte == end && i > 0 => {
                    // After an ASCII byte: a character boundary.
                    self.rest = self.rest.get(i + 1..).ok_or("a number has no end")?;
                    return Ok(value);
                }
                _ => return Err("a number is not one"),
            }
        }
        Err("a number has no end")
    }
    fn usize(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.number()?).map_err(|_| "a number is too large")
    }
    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.number()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a flag is neither 0 nor 1"),
        }
    }
    fn text(&mut self) -> Result<&'static str, Malformed> {
        let length = usize::try_from(self.digits(b':')?).map_err(|_| "a text is too long")?;
        let text = self.rest.get(..length).ok_or("a text is cut short")?;
        self.rest = self.rest.get(length..).ok_or("a text is cut short")?;
        Ok(text)
    }
    fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Reader) -> Result<T, Malformed>,
    ) -> Result<Option<T>, Malformed> {
        match self.rest.strip_prefix('~') {
            Some(rest) => {
                self.rest = rest;
                Ok(None)
            }
            None => read(self).map(Some),
        }
    }
    fn millis(&mut self) -> Result<Option<Duration>, Malformed> {
        self.optional(|r| r.number().map(Duration::from_millis))
    }
}

/// The migrations of a description and their SQL texts (one per migration, in order).
///
/// The parents and statements of all the migrations are allocated here in one list each, and
/// never freed: a description lives in a `static`, and it is decoded once per process into a
/// list kept as long as that static.
pub fn decode(
    index: &'static str,
    sql: &'static [&'static str],
) -> Result<Vec<Migration>, Malformed> {
    let mut r = Reader { rest: index };
    let count = r.usize()?;
    if count != sql.len() {
        return Err("it counts another number of migrations than there are SQL texts");
    }
    // Capacities from the description are only hints: a wrong one costs a reallocation.
    let mut parents = Vec::with_capacity(r.usize()?.min(index.len()));
    let mut statements = Vec::with_capacity(r.usize()?.min(index.len()));
    let mut migrations = Vec::with_capacity(count);
    // Where each migration's parents and statements end in those lists.
    let mut ends = Vec::with_capacity(count);
    for &sql in sql {
        let revision = r.text()?;
        for _ in 0..r.usize()? {
            parents.push(r.text()?);
        }
        let message = r.optional(Reader::text)?;
        let no_transaction = r.flag()?;
        let lock_timeout = r.millis()?;
        let statement_timeout = r.millis()?;
        let path = r.text()?;
        let checksum = r.text()?;
        let self_contained = r.flag()?;
        let replaces: &'static [&'static str] = match r.optional(Reader::text)? {
            Some(list) => Vec::leak(list.split(',').collect()),
            None => &[],
        };
        for _ in 0..r.usize()? {
            statements.push(Statement {
                start: r.usize()?,
                end: r.usize()?,
                line: r.usize()?,
                column: r.usize()?,
                concurrent_index: r.optional(Reader::text)?,
                concurrent_table: r.optional(Reader::text)?,
                rerunnable: r.flag()?,
            });
        }
        ends.push((parents.len(), statements.len()));
        migrations.push(migration(MigrationParts {
            revision,
            parents: &[],
            message,
            no_transaction,
            lock_timeout,
            statement_timeout,
            path,
            sql,
            statements: &[],
            checksum,
            self_contained,
            replaces,
        }));
    }
    if !r.rest.is_empty() {
        return Err("it goes on after its last migration");
    }
    let parents: &'static [&'static str] = Vec::leak(parents);
    let statements: &'static [Statement] = Vec::leak(statements);
    let mut starts = (0, 0);
    for (migration, &ends) in migrations.iter_mut().zip(&ends) {
        migration.set_lists(
            parents.get(starts.0..ends.0).unwrap_or_default(),
            statements.get(starts.1..ends.1).unwrap_or_default(),
        );
        starts = ends;
    }
    Ok(migrations)
}

#[cfg(all(test, feature = "analysis"))]
mod tests {
    use super::*;

    fn leak(text: String) -> &'static str {
        Box::leak(text.into_boxed_str())
    }

    fn sample<'a>(revision: &'a str, message: Option<&'a str>, index: &'a str) -> Fields<'a> {
        Fields {
            revision,
            parents: vec!["a", "b-2"],
            message,
            no_transaction: true,
            lock_timeout: Some(Duration::from_millis(1500)),
            statement_timeout: None,
            path: "migrations/0002_é.sql",
            checksum: "0f",
            self_contained: false,
            replaces: vec![],
            statements: vec![
                StatementFields {
                    start: 40,
                    end: 90,
                    line: 3,
                    column: 1,
                    concurrent_index: Some(index),
                    concurrent_table: Some("\"Grüße\".\"tä,1\""),
                    rerunnable: true,
                },
                StatementFields {
                    start: 91,
                    end: 120,
                    line: 4,
                    column: 7,
                    concurrent_index: None,
                    concurrent_table: None,
                    rerunnable: false,
                },
            ],
        }
    }

    #[test]
    fn every_field_survives_the_round_trip_whatever_its_characters() {
        let index = leak(encode(
            [
                sample(
                    "r1",
                    Some("fix: l'index, 1:2 ~ «naïve» 🚀"),
                    "\"Grüße\".\"ix,1\"",
                ),
                sample("r2", None, "i"),
            ]
            .into_iter(),
        ));
        let decoded = decode(index, &["SELECT 1;", "SELECT 'é';"]).unwrap();
        assert_eq!(decoded.len(), 2);
        let first = &decoded[0];
        assert_eq!(first.revision(), "r1");
        assert_eq!(first.parents(), ["a", "b-2"]);
        assert_eq!(first.message(), Some("fix: l'index, 1:2 ~ «naïve» 🚀"));
        assert!(first.no_transaction());
        assert_eq!(first.lock_timeout(), Some(Duration::from_millis(1500)));
        assert_eq!(first.statement_timeout(), None);
        assert_eq!(first.path(), "migrations/0002_é.sql");
        assert_eq!(first.checksum(), "0f");
        assert_eq!(first.sql(), "SELECT 1;");
        assert!(!first.self_contained());
        assert_eq!(
            first.statements(),
            [
                Statement {
                    start: 40,
                    end: 90,
                    line: 3,
                    column: 1,
                    concurrent_index: Some("\"Grüße\".\"ix,1\""),
                    concurrent_table: Some("\"Grüße\".\"tä,1\""),
                    rerunnable: true,
                },
                Statement {
                    start: 91,
                    end: 120,
                    line: 4,
                    column: 7,
                    concurrent_index: None,
                    concurrent_table: None,
                    rerunnable: false,
                },
            ]
        );
        assert_eq!(decoded[1].message(), None);
        assert_eq!(decoded[1].sql(), "SELECT 'é';");
    }

    proptest::proptest! {
        /// Any texts, the separators and digits the format uses among them, come back as they
        /// went in.
        #[test]
        fn any_texts_survive_the_round_trip(
            revision in "[0-9:,~a-z]{0,8}",
            message in proptest::option::of("\\PC{0,12}"),
            path in "[0-9:,~é🚀 ]{0,10}",
            index in proptest::option::of("\\PC{0,6}"),
            sql in "\\PC{0,10}",
        ) {
            let mut fields = sample(&revision, message.as_deref(), "");
            fields.path = &path;
            fields.statements[0].concurrent_index = index.as_deref();
            fields.statements[0].concurrent_table = message.as_deref();
            let packed = leak(encode([fields].into_iter()));
            let sql: &'static [&'static str] = Vec::leak(vec![leak(sql.clone())]);
            let decoded = decode(packed, sql).unwrap();
            proptest::prop_assert_eq!(decoded[0].revision(), revision.as_str());
            proptest::prop_assert_eq!(decoded[0].message(), message.as_deref());
            proptest::prop_assert_eq!(decoded[0].path(), path.as_str());
            proptest::prop_assert_eq!(decoded[0].statements()[0].concurrent_index, index.as_deref());
            proptest::prop_assert_eq!(decoded[0].statements()[0].concurrent_table, message.as_deref());
            proptest::prop_assert_eq!(decoded[0].sql(), sql[0]);
        }
    }

    #[test]
    fn a_malformed_description_is_an_error_at_every_cut() {
        let whole = encode([sample("r1", Some("é🚀"), "ix")].into_iter());
        let sql: &'static [&'static str] = &["SELECT 1;"];
        assert!(decode(leak(whole.clone()), sql).is_ok());
        // Cut at every character boundary, including inside the multi-byte characters' texts.
        for (cut, _) in whole.char_indices().skip(1) {
            let truncated = leak(whole[..cut].to_owned());
            assert!(decode(truncated, sql).is_err(), "cut at {cut}: {truncated}");
        }
        assert_eq!(
            decode(leak(format!("{whole}1,")), sql).unwrap_err(),
            "it goes on after its last migration"
        );
        assert_eq!(
            decode(leak(whole), &[]).unwrap_err(),
            "it counts another number of migrations than there are SQL texts"
        );
        // A length that ends inside a character is refused, not sliced.
        assert_eq!(
            decode(leak("1,0,0,1:é".to_owned()), sql).unwrap_err(),
            "a text is cut short"
        );
    }
}

#[cfg(all(test, feature = "analysis"))]
mod embedded_directories {
    use std::path::Path;

    use crate::Migrations;
    use crate::analysis::check::analyze_dir_configured;

    /// What the macro embeds for each directory of migrations in the repository reads back as
    /// the same migrations the standalone command builds from the directory: every field of
    /// every migration and statement.
    #[test]
    fn the_packed_form_of_every_directory_reads_back_as_the_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs = vec![root.join("migrations")];
        let tests = std::fs::read_dir(root.join("tests/migrations")).unwrap();
        dirs.extend(tests.map(|entry| entry.unwrap().path()));
        let mut compared = 0;
        for dir in dirs {
            let analysis = analyze_dir_configured(&dir, "migrations", &Default::default());
            if analysis.has_errors() {
                continue;
            }
            let index: &'static str = String::leak(super::encode_analyzed(&analysis.migrations));
            let sql: Vec<&'static str> = analysis
                .migrations
                .iter()
                .map(|m| &*String::leak(m.sql.clone()))
                .collect();
            let packed = super::decode(index, Vec::leak(sql)).unwrap();
            let direct = Migrations::from_analysis(&analysis);
            assert_eq!(packed.len(), direct.len(), "{}", dir.display());
            for (p, d) in packed.iter().zip(direct.iter()) {
                let fields = |m: &crate::Migration| {
                    format!(
                        "{} {:?} {:?} {} {:?} {:?} {} {} {} {} {:?}",
                        m.revision(),
                        m.parents(),
                        m.message(),
                        m.no_transaction(),
                        m.lock_timeout(),
                        m.statement_timeout(),
                        m.path(),
                        m.sql(),
                        m.checksum(),
                        m.self_contained(),
                        m.statements()
                    )
                };
                assert_eq!(fields(p), fields(d), "{}", dir.display());
                compared += 1;
            }
        }
        assert!(compared > 30, "only {compared} migrations compared");
    }
}
