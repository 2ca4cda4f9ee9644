//! Splitting a migration into statements with squawk's lossless PostgreSQL parser, so that each
//! statement can be run alone (no-transaction migrations), located in errors and linted.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::diagnostic::{Diagnostic, Location};
use super::source::LineIndex;

/// Where one statement sits in the migration's text (byte offsets, end exclusive, without the
/// terminating `;`) and the line/column of its first character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSpan {
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
    /// For `CREATE INDEX CONCURRENTLY <name>`: the index, schema-qualified when the table is,
    /// so the runtime can tell after a crash whether the build finished or left an INVALID index.
    pub concurrent_index: Option<String>,
    /// For any `CREATE INDEX CONCURRENTLY`, named or not: its table as written, so the runtime
    /// can find the INVALID indexes a failed or interrupted build left on it by their definition.
    pub concurrent_table: Option<String>,
    /// `IF [NOT] EXISTS`: running it again after a crash is harmless.
    pub rerunnable: bool,
}

/// What the runtime needs to resume a no-transaction migration after a crash.
fn resume_facts(stmt: &ast::Stmt) -> (Option<String>, Option<String>, bool) {
    // The name alone, as its tokens spell it: without `ONLY`, `*`, comments or whitespace, so
    // that the server's `to_regclass` reads it.
    let table = match stmt {
        ast::Stmt::CreateIndex(create) if create.concurrently_token().is_some() => create
            .table_relation_name()
            .and_then(|t| t.table_name_ref())
            .map(|name| {
                name.syntax()
                    .descendants_with_tokens()
                    .filter_map(|element| element.into_token())
                    .filter(|token| !token.kind().is_trivia())
                    .map(|token| token.text().to_owned())
                    .collect::<String>()
            }),
        _ => None,
    };
    let index = match stmt {
        ast::Stmt::CreateIndex(create) => {
            let name = create
                .index()
                .and_then(|i| i.path())
                .map(|p| p.syntax().text().to_string());
            let schema = create
                .table_relation_name()
                .map(|t| t.syntax().text().to_string())
                .and_then(|t| t.rsplit_once('.').map(|(schema, _)| schema.to_owned()));
            match (create.concurrently_token(), name) {
                (Some(_), Some(name)) if !name.contains('.') => Some(match schema {
                    Some(schema) => format!("{schema}.{name}"),
                    None => name,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    (index, table, rerunnable(stmt.syntax()))
}

/// Whether running the statement again after it took effect changes nothing: `IF [NOT] EXISTS`
/// or `OR REPLACE` on a CREATE or DROP, or `IF [NOT] EXISTS` on every action of an ALTER TABLE
/// or ALTER TYPE (`ALTER TABLE IF EXISTS t ADD COLUMN c` only allows the table to be missing; run
/// twice, it fails on the column).
fn rerunnable(node: &SyntaxNode) -> bool {
    let guarded = |n: &SyntaxNode| {
        n.children().any(|c| {
            matches!(
                c.kind(),
                SyntaxKind::IF_EXISTS | SyntaxKind::IF_NOT_EXISTS | SyntaxKind::OR_REPLACE
            )
        })
    };
    match node.kind() {
        SyntaxKind::ALTER_TABLE | SyntaxKind::ALTER_TYPE => {
            let actions: Vec<SyntaxNode> = node
                .children()
                .filter(|c| {
                    !matches!(
                        c.kind(),
                        SyntaxKind::IF_EXISTS
                            | SyntaxKind::TABLE_RELATION_NAME
                            | SyntaxKind::RELATION_NAME
                            | SyntaxKind::TYPE_NAME_REF
                            | SyntaxKind::PATH_REF
                    )
                })
                .collect();
            !actions.is_empty() && actions.iter().all(guarded)
        }
        kind => {
            let name = format!("{kind:?}");
            (name.starts_with("CREATE_") || name.starts_with("DROP_")) && guarded(node)
        }
    }
}

impl StatementSpan {
    pub fn text<'a>(&self, sql: &'a str) -> &'a str {
        sql.get(self.start..self.end).unwrap_or("")
    }
}

pub use super::source::one_line;
use crate::analysis::diagnostic::Check;

/// A parsed statement together with its span.
#[derive(Debug, Clone)]
pub struct ParsedStatement {
    pub stmt: ast::Stmt,
    pub span: StatementSpan,
}

/// What squawk made of one file: its tree and every syntax error (the parser's and its
/// validation's), or `None` when it panicked. Unlike the tree's nodes, this can move between
/// threads.
pub type SourceParse = Option<(
    squawk_syntax::Parse<ast::SourceFile>,
    Vec<squawk_syntax::syntax_error::SyntaxError>,
)>;

/// Runs squawk on `text`. The parser is third-party code; a panic on odd input must become an
/// error, not a crash of the compiler.
pub fn parse_source(text: &str) -> SourceParse {
    std::panic::catch_unwind(|| {
        let parse = ast::SourceFile::parse(text);
        let errors = parse.errors();
        (parse, errors)
    })
    .ok()
}

/// [`parse_source`] on every text, on as many threads as the machine runs at once: the parse is
/// most of a macro's work, and each file's parse is independent of the others.
pub fn parse_sources(texts: &[&str]) -> Vec<SourceParse> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(texts.len());
    let next = AtomicUsize::new(0);
    let mut parses: Vec<Option<SourceParse>> = texts.iter().map(|_| None).collect();
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(text) = texts.get(i) else {
                return done;
            };
            done.push((i, parse_source(text)));
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        // This thread works too, so nothing waits on a helper that could not be started.
        let mine = work();
        let theirs = helpers.into_iter().filter_map(|helper| helper.join().ok());
        for (i, parse) in theirs.flatten().chain(mine) {
            if let Some(slot) = parses.get_mut(i) {
                *slot = Some(parse);
            }
        }
    });
    // A helper that died took its results with it: those files are parsed here.
    parses
        .into_iter()
        .zip(texts)
        .map(|(parse, text)| parse.unwrap_or_else(|| parse_source(text)))
        .collect()
}

/// Parses `text` and returns its statements in order, or every syntax error with its position.
pub fn parse_statements(path: &str, text: &str) -> Result<Vec<ParsedStatement>, Vec<Diagnostic>> {
    statements_of(path, text, parse_source(text))
}

/// The statements of `text` from its parse.
pub fn statements_of(
    path: &str,
    text: &str,
    parsed: SourceParse,
) -> Result<Vec<ParsedStatement>, Vec<Diagnostic>> {
    let index = LineIndex::new(text);
    let parsed = parsed.and_then(|(parse, errors)| {
        ast::SourceFile::cast(parse.syntax_node()).map(|file| (file, errors))
    });
    let (file, errors) = match parsed {
        Some(result) => result,
        None => {
            return Err(vec![
                Diagnostic::error(
                    Check::SyntaxError,
                    Some(Location::new(path, 1, 1)),
                    "the SQL parser could not read this file",
                )
                .with_help("check the file for unbalanced quotes or dollar quotes"),
            ]);
        }
    };
    if !errors.is_empty() {
        // The parser may report several expectations at one spot ("expected name", "expected
        // type name"): one finding per position reads better.
        let mut merged: Vec<(usize, Vec<&str>)> = Vec::new();
        for error in &errors {
            let offset = usize::from(error.range().start());
            match merged.last_mut() {
                Some((last, messages)) if *last == offset => messages.push(error.message()),
                _ => merged.push((offset, vec![error.message()])),
            }
        }
        return Err(merged
            .into_iter()
            .map(|(offset, messages)| {
                let (line, column) = index.line_column(offset);
                Diagnostic::error(
                    Check::SyntaxError,
                    Some(Location::new(path, line, column)),
                    format!("SQL syntax error: {}", messages.join(", ")),
                )
                .with_help("fix the statement; the file must be valid PostgreSQL")
            })
            .collect());
    }
    Ok(file
        .stmts()
        .map(|stmt| {
            let range = stmt.syntax().text_range();
            let start = usize::from(range.start());
            let mut end = usize::from(range.end());
            // The parser keeps the terminating `;` inside the statement node.
            if text.get(..end).is_some_and(|t| t.ends_with(';')) {
                end -= 1;
            }
            let (line, column) = index.line_column(start);
            let (concurrent_index, concurrent_table, rerunnable) = resume_facts(&stmt);
            ParsedStatement {
                span: StatementSpan {
                    start,
                    end,
                    line,
                    column,
                    concurrent_index,
                    concurrent_table,
                    rerunnable,
                },
                stmt,
            }
        })
        .collect())
}

/// The spans only, for callers that do not need the syntax tree.
pub fn split_statements(path: &str, text: &str) -> Result<Vec<StatementSpan>, Vec<Diagnostic>> {
    parse_statements(path, text).map(|stmts| stmts.into_iter().map(|s| s.span).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_positions_ignoring_comments_and_strings() {
        let sql = "-- revision: a\n-- parents: none\n\nCREATE TABLE t (id int);\n  INSERT INTO t VALUES (1); -- one\n/* block ; */ SELECT ';', $$ ; $$;\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;\n";
        let spans = split_statements("a.sql", sql).unwrap();
        let texts: Vec<_> = spans.iter().map(|s| s.text(sql)).collect();
        assert_eq!(
            texts,
            [
                "CREATE TABLE t (id int)",
                "INSERT INTO t VALUES (1)",
                "SELECT ';', $$ ; $$",
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$",
            ]
        );
        assert_eq!((spans[0].line, spans[0].column), (4, 1));
        assert_eq!((spans[1].line, spans[1].column), (5, 3));
        assert_eq!((spans[2].line, spans[2].column), (6, 15));
    }

    #[test]
    fn resume_facts_of_index_statements() {
        let sql = "CREATE INDEX CONCURRENTLY idx_a ON s.t (a);\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_b ON ONLY t (b);\nCREATE INDEX CONCURRENTLY ON public . /* the table */ \"Grüße\" (c);\nDROP INDEX CONCURRENTLY IF EXISTS idx_a;\nALTER TABLE t ADD COLUMN d int;\n";
        let spans = split_statements("a.sql", sql).unwrap();
        let facts: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s.concurrent_index.as_deref(),
                    s.concurrent_table.as_deref(),
                    s.rerunnable,
                )
            })
            .collect();
        assert_eq!(
            facts,
            [
                (Some("s.idx_a"), Some("s.t"), false),
                (Some("idx_b"), Some("t"), true),
                (None, Some("public.\"Grüße\""), false),
                (None, None, true),
                (None, None, false)
            ]
        );
    }

    #[test]
    fn if_exists_and_or_replace_make_a_statement_rerunnable() {
        let rerunnable = |sql: &str| split_statements("a.sql", sql).unwrap()[0].rerunnable;
        for sql in [
            "CREATE TABLE IF NOT EXISTS t (id int)",
            "CREATE TABLE IF NOT EXISTS t2 AS SELECT 1",
            "CREATE INDEX IF NOT EXISTS i ON t (a)",
            "CREATE SCHEMA IF NOT EXISTS s",
            "CREATE SEQUENCE IF NOT EXISTS q",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto",
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "DROP TABLE IF EXISTS a, b",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "DROP TYPE IF EXISTS mood",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int, DROP COLUMN IF EXISTS d",
            "ALTER TABLE t DROP CONSTRAINT IF EXISTS c",
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x'",
        ] {
            assert!(rerunnable(sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (id int)",
            "ALTER TABLE IF EXISTS t ADD COLUMN c int",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS c int, ADD CONSTRAINT k CHECK (c > 0)",
            "ALTER INDEX IF EXISTS i RENAME TO j",
            "ALTER TYPE mood ADD VALUE 'x'",
            "INSERT INTO t VALUES (1)",
            "CREATE INDEX CONCURRENTLY i ON t (a)",
        ] {
            assert!(!rerunnable(sql), "{sql}");
        }
    }

    #[test]
    fn one_line_folds_whitespace_and_cuts() {
        assert_eq!(
            one_line("ALTER TABLE t\n    ADD COLUMN c int", 100),
            "ALTER TABLE t ADD COLUMN c int"
        );
        assert_eq!(one_line("SELECT   'é'", 8), "SELECT '…");
    }

    #[test]
    fn empty_body_has_no_statements() {
        assert!(
            split_statements("a.sql", "-- revision: a\n-- parents: none\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let errs = split_statements("m/a.sql", "SELECT 1;\nCREATE TABLE (;\n").unwrap_err();
        assert!(!errs.is_empty());
        assert!(errs[0].to_string().starts_with("m/a.sql:2:"), "{}", errs[0]);
        assert_eq!(errs[0].check, "syntax-error");
    }

    #[test]
    fn unterminated_constructs_are_errors_not_panics() {
        for sql in [
            "SELECT 'abc",
            "SELECT $$abc",
            "/* never closed",
            "SELECT \"x",
            "SELECT $a$ x $b$",
        ] {
            let result = split_statements("a.sql", sql);
            assert!(result.is_err(), "{sql:?} gave {result:?}");
        }
    }
}
