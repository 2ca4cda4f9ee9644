//! The lock lint: replays each migration's statements in order as PostgreSQL would run them,
//! keeping every lock until the end of the transaction, and asks each rule whether a statement
//! stalls live traffic. Rules live one per file under `rules/`.

pub mod classify;
pub mod config;
pub mod facts;
pub mod ground_truth;
pub mod locks;
pub mod rule;
pub mod rules;
pub mod types;
mod walker;

use crate::analysis::{AnalyzedMigration, Diagnostic, Location, Severity};

use crate::analysis::diagnostic::Check;
pub use config::LintConfig;
pub use facts::SchemaFacts;
pub use rule::{Finding, Level, ResolvedEffect, Rule, StatementContext};
pub use types::{type_change_is_compatible, type_change_is_compatible_in};
pub use walker::WalkedStatement;

/// Every statement of every migration with the locks it takes and what it costs: the lock
/// summary an operator sees before applying (`plan`), and what the ground-truth test checks.
pub fn lock_plan(
    migrations: &[AnalyzedMigration],
    config: &LintConfig,
) -> Vec<Vec<WalkedStatement>> {
    let mut facts = SchemaFacts::default();
    migrations
        .iter()
        .map(|m| walker::walk(m, &mut facts, config))
        .collect()
}

/// An `-- migrate:allow <rule>: <reason>` comment.
#[derive(Debug, Clone)]
struct Allow {
    rule: String,
    line: usize,
    column: usize,
    /// The line of the statement it stands directly above, if any.
    statement_line: Option<usize>,
    used: bool,
}

/// Reads the allow comments of a file and attaches each to the statement directly below it.
fn allows(migration: &AnalyzedMigration, diagnostics: &mut Vec<Diagnostic>) -> Vec<Allow> {
    let lines: Vec<&str> = migration.sql.split('\n').collect();
    let statement_lines: Vec<usize> = migration.statements.iter().map(|s| s.span.line).collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed
            .strip_prefix("--")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix("migrate:allow"))
        else {
            continue;
        };
        let line_no = index + 1;
        let column = crate::analysis::source::column_of(line, trimmed);
        let at = Some(Location::new(&migration.path, line_no, column));
        let (rule, reason) = match rest.split_once(':') {
            Some((rule, reason)) => (rule.trim(), reason.trim()),
            None => (rest.trim(), ""),
        };
        if rules::find(rule).is_none() {
            diagnostics.push(
                Diagnostic::error(
                    Check::InvalidAllow,
                    at,
                    format!("`migrate:allow` names unknown rule `{rule}`"),
                )
                .with_help(format!("known rules: {}", rules::ids().join(", "))),
            );
            continue;
        }
        if reason.is_empty() {
            diagnostics.push(
                Diagnostic::error(
                    Check::InvalidAllow,
                    at,
                    format!("`migrate:allow {rule}` has no reason"),
                )
                .with_help(format!(
                    "say why it is safe here: `-- migrate:allow {rule}: <reason>`"
                )),
            );
            continue;
        }
        // Directly above: only comment lines between the allow and the statement.
        let mut statement_line = None;
        for (next, text) in lines.iter().enumerate().skip(index + 1) {
            if statement_lines.contains(&(next + 1)) {
                statement_line = Some(next + 1);
                break;
            }
            if !text.trim_start().starts_with("--") {
                break;
            }
        }
        found.push(Allow {
            rule: rule.to_owned(),
            line: line_no,
            column,
            statement_line,
            used: false,
        });
    }
    found
}

/// Lints migrations in application order. `facts` carries what earlier migrations created.
pub fn lint_migrations(migrations: &[AnalyzedMigration], config: &LintConfig) -> Vec<Diagnostic> {
    lint_and_judge(migrations, config).0
}

/// [`lint_migrations`], and for each migration whether it touches only tables it creates
/// (every statement [`WalkedStatement::touches_only_new_tables`]): one walk for both.
pub fn lint_and_judge(
    migrations: &[AnalyzedMigration],
    config: &LintConfig,
) -> (Vec<Diagnostic>, Vec<bool>) {
    let mut facts = SchemaFacts::default();
    let mut diagnostics = Vec::new();
    let mut self_contained = Vec::with_capacity(migrations.len());
    for migration in migrations {
        let mut allows = allows(migration, &mut diagnostics);
        let walked = walker::walk(migration, &mut facts, config);
        self_contained.push(!walked.is_empty() && walked.iter().all(|w| w.touches_only_new_tables));
        for walked in walked {
            let statement = walked.span;
            for (rule, finding) in walked.findings {
                let level = config.level(rule.id);
                if level == Level::Off {
                    continue;
                }
                if let Some(allow) = allows
                    .iter_mut()
                    .find(|a| a.rule == rule.id && a.statement_line == Some(statement.line))
                {
                    allow.used = true;
                    continue;
                }
                diagnostics.push(Diagnostic {
                    severity: if level == Level::Warning { Severity::Warning } else { Severity::Error },
                    check: Check::Rule(rule.id),
                    location: Some(Location::new(&migration.path, statement.line, statement.column)),
                    message: finding.message,
                    help: Some(format!(
                        "{}\n(to accept it here, put `-- migrate:allow {}: <reason>` directly above the statement)",
                        finding.help, rule.id
                    )),
                });
            }
        }
        for allow in allows.iter().filter(|a| !a.used) {
            let why = match allow.statement_line {
                Some(line) => format!(
                    "the statement at line {line} has no `{}` finding",
                    allow.rule
                ),
                None => "it does not stand directly above a statement".to_owned(),
            };
            diagnostics.push(
                Diagnostic::error(
                    Check::UnusedAllow,
                    Some(Location::new(&migration.path, allow.line, allow.column)),
                    format!("`migrate:allow {}` suppresses nothing: {why}", allow.rule),
                )
                .with_help("remove it, or move it to the line directly above the statement it is meant for"),
            );
        }
    }
    (diagnostics, self_contained)
}

#[cfg(test)]
mod tests {
    use super::rules::test_support::{BASE, lint};

    fn texts(bodies: &[&str]) -> Vec<String> {
        lint(bodies).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_base_fixture_is_clean() {
        assert_eq!(texts(&[BASE]), Vec::<String>::new());
    }

    #[test]
    fn an_allow_with_a_reason_suppresses_exactly_its_statement() {
        let body = "-- migrate:allow require-concurrent-index-creation: users has 12 rows\nCREATE INDEX a ON users (email);\nCREATE INDEX b ON users (name);";
        let found: Vec<String> = texts(&[BASE, body])
            .into_iter()
            .filter(|f| f.contains("[require-concurrent-index-creation]"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("m/1.sql:5:1: [require-concurrent-index-creation]"),
            "{found:?}"
        );
    }

    /// Whether the last of `BASE, body` touches only tables it creates.
    fn self_contained(body: &str) -> bool {
        let migrations = super::rules::test_support::migrations(&[BASE, body]);
        let (_, judged) = super::lint_and_judge(&migrations, &super::LintConfig::default());
        judged[1]
    }

    #[test]
    fn a_migration_is_self_contained_when_it_touches_only_tables_it_creates() {
        assert!(self_contained(BASE), "a foreign key between two new tables");
        for body in [
            "CREATE TABLE fresh (id bigint PRIMARY KEY, v text);",
            "CREATE TABLE fresh (id bigint PRIMARY KEY, v text);\nCREATE INDEX fresh_v ON fresh (v);\nINSERT INTO fresh VALUES (1, 'Grüße, Zoë 🎉');\nALTER TABLE fresh ADD COLUMN w int;\nUPDATE fresh SET w = 1;",
            "CREATE TYPE mood AS ENUM ('gut', 'très bien');\nCREATE SEQUENCE fresh_seq;\nCREATE TABLE fresh (m mood);",
        ] {
            assert!(self_contained(body), "{body}");
        }
        for body in [
            // Locks an existing table.
            "CREATE TABLE fresh (id bigint REFERENCES users (id));",
            "INSERT INTO users (id, email) VALUES (1, 'zoë@example.com');",
            "ALTER TABLE users ADD COLUMN nickname text;",
            "CREATE TABLE fresh (id int);\nUPDATE users SET name = name;",
            "CREATE TABLE fresh (LIKE users);",
            "CREATE TABLE fresh AS SELECT * FROM users;",
            "CREATE INDEX users_name ON users (name);",
            // Cannot be seen into, or changes what the next migration runs with.
            "CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM users';",
            "DO $$ BEGIN PERFORM 1; END $$;",
            "SET search_path = elsewhere;\nCREATE TABLE fresh (id int);",
            "CREATE TABLE fresh (id int);\nCOMMENT ON TABLE users IS 'Benutzer';",
            "",
        ] {
            assert!(!self_contained(body), "{body}");
        }
    }

    #[test]
    fn bad_allows_are_errors() {
        let found = texts(&[
            BASE,
            "-- migrate:allow require-concurrent-index-creation\nCREATE INDEX a ON users (email);",
        ]);
        assert!(found.iter().any(|f| f.starts_with("m/1.sql:3:1: [invalid-allow] `migrate:allow require-concurrent-index-creation` has no reason")), "{found:?}");
        let found = texts(&[BASE, "-- migrate:allow no-such-rule: because\nSELECT 1;"]);
        assert!(
            found[0].starts_with(
                "m/1.sql:3:1: [invalid-allow] `migrate:allow` names unknown rule `no-such-rule`"
            ),
            "{found:?}"
        );
        let found = texts(&[
            BASE,
            "-- migrate:allow ban-drop-table: not needed\nSELECT 1;",
        ]);
        assert_eq!(
            found,
            [
                "m/1.sql:3:1: [unused-allow] `migrate:allow ban-drop-table` suppresses nothing: the statement at line 4 has no `ban-drop-table` finding\n  = help: remove it, or move it to the line directly above the statement it is meant for"
            ]
        );
    }

    #[test]
    fn levels_lower_or_silence_a_rule() {
        use super::{Level, LintConfig, lint_migrations};
        use crate::analysis::Severity;
        let migrations = super::rules::test_support::migrations(&[
            BASE,
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
        ]);
        let mut config = LintConfig::default();
        config.set_level("renaming-column", Level::Warning).unwrap();
        let found = lint_migrations(&migrations, &config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        config.set_level("renaming-column", Level::Off).unwrap();
        assert!(lint_migrations(&migrations, &config).is_empty());
        assert!(
            config
                .set_level("renaming-columns", Level::Off)
                .unwrap_err()
                .starts_with("unknown lint rule `renaming-columns`")
        );
    }
}
