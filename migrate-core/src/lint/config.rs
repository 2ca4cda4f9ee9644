//! `migrate.toml` in the migrations directory: the lint settings of a directory, read alike by
//! `embed_migrations!`, `migrate check` and `migrate lint`, so that the compiler and CI agree.
//!
//! ```toml
//! target_postgres = 14
//!
//! [rules]
//! renaming-column = "warn"     # error | warn | off
//! ban-drop-table = "off"
//! unknown-statement = "error"
//!
//! # A history imported from another tool (`migrate import` writes it): these revisions and
//! # their ancestors are checked as a graph but their lint findings are information only, and
//! # each file must keep the checksum it was imported with.
//! [frozen]
//! through = "20240101000000"
//! [frozen.checksums]
//! "20240101000000" = "9f86d0…"
//! ```
//!
//! Settings given to the macro (or on the command line) override the file.

use std::path::Path;

use std::collections::BTreeMap;

use super::rule::Level;
use super::rules;
use crate::analysis::diagnostic::Check;
use crate::analysis::diagnostic::{Diagnostic, Location};
use crate::analysis::source::LineIndex;

/// What a project can configure: the target PostgreSQL major version and each rule's level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintConfig {
    pub target_version: u32,
    pub levels: BTreeMap<String, Level>,
    /// The history imported from another tool, when there is one.
    pub frozen: Option<Frozen>,
}

/// A frozen history: `through` and its ancestors, each pinned to the checksum it was imported
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    pub through: String,
    /// The line of `through` in the file, for messages about it.
    pub line: usize,
    pub checksums: BTreeMap<String, String>,
}

impl Default for LintConfig {
    fn default() -> LintConfig {
        LintConfig {
            target_version: crate::migration::DEFAULT_TARGET_POSTGRES,
            levels: BTreeMap::new(),
            frozen: None,
        }
    }
}

impl LintConfig {
    /// The configured level, else the rule's default (an error for every rule but
    /// `unknown-statement`).
    pub fn level(&self, rule: &str) -> Level {
        self.levels
            .get(rule)
            .copied()
            .unwrap_or_else(|| rules::find(rule).map_or(Level::Error, |r| r.default_level))
    }

    /// The settings of `<dir>/migrate.toml` (the defaults when there is none): what the
    /// compiler lints `dir` with.
    pub fn of_dir(dir: &Path) -> Result<LintConfig, Vec<Diagnostic>> {
        read_config(dir, &dir.display().to_string()).map(|(config, _)| config)
    }

    /// Sets a rule's level; the rule id must exist.
    pub fn set_level(&mut self, rule: &str, level: Level) -> Result<(), String> {
        if rules::find(rule).is_none() {
            return Err(format!(
                "unknown lint rule `{rule}`; known rules: {}",
                rules::ids().join(", ")
            ));
        }
        self.levels.insert(rule.to_owned(), level);
        Ok(())
    }
}

/// The file's name, inside the migrations directory.
pub const CONFIG_FILE: &str = "migrate.toml";

/// Settings that override the file: the macro's arguments, the command line's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintOverrides {
    pub target_version: Option<u32>,
    pub levels: Vec<(String, Level)>,
    /// Levels for the rules the file leaves unset (what a command's use of the migrations
    /// implies, which the project may still decide otherwise in `migrate.toml`).
    pub defaults: Vec<(String, Level)>,
}

impl LintOverrides {
    pub fn apply(&self, config: &mut LintConfig) -> Result<(), String> {
        if let Some(version) = self.target_version {
            if !TARGET_VERSIONS.contains(&version) {
                return Err(format!(
                    "target_postgres is a PostgreSQL major version from 10 to 18, found {version}"
                ));
            }
            config.target_version = version;
        }
        for (rule, level) in &self.levels {
            config.set_level(rule, *level)?;
        }
        for (rule, level) in &self.defaults {
            if !config.levels.contains_key(rule) {
                config.set_level(rule, *level)?;
            }
        }
        Ok(())
    }
}

/// The PostgreSQL major versions the model knows.
pub const TARGET_VERSIONS: std::ops::RangeInclusive<u32> = 10..=18;

/// Reads `<dir>/migrate.toml` when there is one: the configuration, and whether the file exists.
pub fn read_config(dir: &Path, display_dir: &str) -> Result<(LintConfig, bool), Vec<Diagnostic>> {
    let path = dir.join(CONFIG_FILE);
    let shown = format!("{display_dir}/{CONFIG_FILE}");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((LintConfig::default(), false));
        }
        Err(e) => {
            return Err(vec![
                Diagnostic::error(
                    Check::InvalidConfig,
                    Some(Location::new(&shown, 1, 1)),
                    format!("cannot read the file: {e}"),
                )
                .with_help("save it as UTF-8 text, readable by the build"),
            ]);
        }
    };
    parse_config(&shown, &text).map(|config| (config, true))
}

const HELP: &str = "the file holds `target_postgres = <10..18>`, a `[rules]` table of `<rule-id> = \"error\" | \"warn\" | \"off\"` and the `[frozen]` table `migrate import` writes";

/// A value as an error message shows it.
fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("\"{text}\""),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// Parses the text of a `migrate.toml` named `shown` in messages. All problems at once.
pub fn parse_config(shown: &str, text: &str) -> Result<LintConfig, Vec<Diagnostic>> {
    let index = LineIndex::new(text);
    // The line of the first `key =` line, for errors about values (the parsed table keeps no
    // positions).
    let key_at = |key: &str| {
        let line = text
            .lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map_or(1, |i| i + 1);
        Some(Location::new(shown, line, 1))
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| index.line_column(span.start));
            return Err(vec![
                Diagnostic::error(
                    Check::InvalidConfig,
                    Some(Location::new(shown, line, column)),
                    format!("not valid TOML: {}", e.message()),
                )
                .with_help(HELP),
            ]);
        }
    };
    let mut config = LintConfig::default();
    let mut errors = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("target_postgres", toml::Value::Integer(version))
                if u32::try_from(*version).is_ok_and(|v| TARGET_VERSIONS.contains(&v)) =>
            {
                config.target_version = *version as u32;
            }
            ("target_postgres", other) => errors.push(
                Diagnostic::error(
                    Check::InvalidConfig,
                    key_at("target_postgres"),
                    format!(
                        "`target_postgres` is a PostgreSQL major version from 10 to 18, found {}",
                        show(other)
                    ),
                )
                .with_help("write e.g. `target_postgres = 15`"),
            ),
            ("rules", toml::Value::Table(rules)) => {
                for (rule, level) in rules {
                    let parsed = match level.as_str() {
                        Some("error") => Some(Level::Error),
                        Some("warn") | Some("warning") => Some(Level::Warning),
                        Some("off") => Some(Level::Off),
                        _ => None,
                    };
                    let result = match parsed {
                        Some(level) => config.set_level(rule, level),
                        None => Err(format!(
                            "the level of `{rule}` is one of \"error\", \"warn\", \"off\", found {}",
                            show(level)
                        )),
                    };
                    if let Err(message) = result {
                        errors.push(
                            Diagnostic::error(Check::InvalidConfig, key_at(rule), message)
                                .with_help(HELP),
                        );
                    }
                }
            }
            ("frozen", toml::Value::Table(frozen)) => match parse_frozen(frozen) {
                Ok(mut parsed) => {
                    parsed.line = key_at("through").map_or(1, |l| l.line);
                    config.frozen = Some(parsed);
                }
                Err(message) => errors.push(
                    Diagnostic::error(Check::InvalidConfig, key_at("through"), message)
                        .with_help(HELP),
                ),
            },
            (other, _) => errors.push(
                Diagnostic::error(
                    Check::InvalidConfig,
                    key_at(other),
                    format!("unknown setting `{other}`"),
                )
                .with_help(HELP),
            ),
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// The `[frozen]` table: `through = "<revision>"` and a `checksums` table of revision to
/// checksum.
fn parse_frozen(table: &toml::Table) -> Result<Frozen, String> {
    let through = match table.get("through") {
        Some(toml::Value::String(revision)) => revision.clone(),
        Some(other) => {
            return Err(format!(
                "`[frozen] through` is a revision, found {}",
                show(other)
            ));
        }
        None => return Err("`[frozen]` has no `through = \"<revision>\"`".to_owned()),
    };
    let mut checksums = BTreeMap::new();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("through", _) => {}
            ("checksums", toml::Value::Table(entries)) => {
                for (revision, checksum) in entries {
                    let Some(checksum) = checksum.as_str() else {
                        return Err(format!(
                            "the frozen checksum of `{revision}` is text, found {}",
                            show(checksum)
                        ));
                    };
                    checksums.insert(revision.clone(), checksum.to_owned());
                }
            }
            (other, _) => return Err(format!("unknown setting `frozen.{other}`")),
        }
    }
    Ok(Frozen {
        through,
        line: 1,
        checksums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_s_settings_are_its_file_s_or_the_defaults() {
        let dir = std::env::temp_dir().join(format!("migrate-of-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(LintConfig::of_dir(&dir).unwrap(), LintConfig::default());
        std::fs::write(dir.join(CONFIG_FILE), "target_postgres = 14\n").unwrap();
        assert_eq!(LintConfig::of_dir(&dir).unwrap().target_version, 14);
        std::fs::write(dir.join(CONFIG_FILE), "target_postgres = 9\n").unwrap();
        assert!(LintConfig::of_dir(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_frozen_history_and_says_what_is_wrong_with_it() {
        let config = parse_config(
            "m/migrate.toml",
            "target_postgres = 16\n[frozen]\nthrough = \"20240101\"\n\n[frozen.checksums]\n\"20240101\" = \"ab\"\n",
        )
        .unwrap();
        let frozen = config.frozen.unwrap();
        assert_eq!((frozen.through.as_str(), frozen.line), ("20240101", 3));
        assert_eq!(frozen.checksums["20240101"], "ab");
        assert_eq!(
            messages("[frozen]\nchecksums = {}\n"),
            [
                "m/migrate.toml:1:1: [invalid-config] `[frozen]` has no `through = \"<revision>\"`\n  = help: the file holds `target_postgres = <10..18>`, a `[rules]` table of `<rule-id> = \"error\" | \"warn\" | \"off\"` and the `[frozen]` table `migrate import` writes"
            ]
        );
        assert_eq!(
            messages("[frozen]\nthrough = 3\n")[0]
                .lines()
                .next()
                .unwrap(),
            "m/migrate.toml:2:1: [invalid-config] `[frozen] through` is a revision, found 3"
        );
        assert_eq!(
            messages("[frozen]\nthrough = \"a\"\nsince = \"b\"\n")[0]
                .lines()
                .next()
                .unwrap(),
            "m/migrate.toml:2:1: [invalid-config] unknown setting `frozen.since`"
        );
    }

    fn messages(text: &str) -> Vec<String> {
        parse_config("m/migrate.toml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn reads_the_version_and_rule_levels() {
        let config = parse_config(
            "m/migrate.toml",
            "# réglages du lint\ntarget_postgres = 14\n\n[rules]\nrenaming-column = \"warn\"\nban-drop-table = \"off\"\nunknown-statement = \"error\"\n",
        )
        .unwrap();
        assert_eq!(config.target_version, 14);
        assert_eq!(config.level("renaming-column"), Level::Warning);
        assert_eq!(config.level("ban-drop-table"), Level::Off);
        assert_eq!(config.level("unknown-statement"), Level::Error);
        assert_eq!(config.level("ban-drop-column"), Level::Error);
        assert_eq!(
            parse_config("m/migrate.toml", "").unwrap(),
            LintConfig::default()
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let e = messages(
            "target_postgres = 9\ncolour = \"blue\"\n[rules]\nrenaming-columns = \"warn\"\nban-drop-table = \"sometimes\"\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("m/migrate.toml:1:1: [invalid-config] `target_postgres` is a PostgreSQL major version from 10 to 18, found 9")), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m
                    .starts_with("m/migrate.toml:2:1: [invalid-config] unknown setting `colour`")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with(
                "m/migrate.toml:4:1: [invalid-config] unknown lint rule `renaming-columns`"
            )),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with(
                "m/migrate.toml:5:1: [invalid-config] the level of `ban-drop-table` is one of"
            )),
            "{e:?}"
        );
        let e = messages("target_postgres = \n");
        assert!(e[0].starts_with("m/migrate.toml:1:"), "{e:?}");
        assert!(e[0].contains("[invalid-config] not valid TOML: "), "{e:?}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut config = parse_config(
            "m/migrate.toml",
            "target_postgres = 14\n[rules]\nrenaming-column = \"warn\"\n",
        )
        .unwrap();
        LintOverrides {
            target_version: Some(16),
            levels: vec![("renaming-column".to_owned(), Level::Off)],
            defaults: Vec::new(),
        }
        .apply(&mut config)
        .unwrap();
        assert_eq!(config.target_version, 16);
        assert_eq!(config.level("renaming-column"), Level::Off);
    }

    /// A default level holds only where the file sets none.
    #[test]
    fn defaults_yield_to_the_file() {
        let mut config =
            parse_config("m/migrate.toml", "[rules]\nrenaming-column = \"off\"\n").unwrap();
        LintOverrides {
            defaults: vec![
                ("renaming-column".to_owned(), Level::Warning),
                ("ban-drop-table".to_owned(), Level::Warning),
            ],
            ..LintOverrides::default()
        }
        .apply(&mut config)
        .unwrap();
        assert_eq!(config.level("renaming-column"), Level::Off);
        assert_eq!(config.level("ban-drop-table"), Level::Warning);
    }
}
