//! Findings of the analysis, rendered the way rustc renders its own errors so that they read the
//! same in a terminal, in CI logs and inside `cargo build` output.

use std::fmt;

/// How bad a finding is. Errors stop the build; warnings are shown and let it pass; information
/// (a frozen history's findings) is shown by the commands and never by the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A place in a migration file. Lines and columns are 1-based; columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(path: impl Into<String>, line: usize, column: usize) -> Self {
        Location {
            path: path.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.line, self.column)
    }
}

/// What produced a finding: one of the analysis's own checks, or a lint rule. Its id is what
/// messages, JSON, SARIF and `migrate:allow` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    MissingDirectory,
    EmptyDirectory,
    UnreadableFile,
    NonUtf8File,
    NulCharacter,
    MissingHeader,
    InvalidHeader,
    InvalidRevisionId,
    UnknownDirective,
    InvalidDirective,
    SyntaxError,
    DuplicateRevision,
    DanglingParent,
    MultipleHeads,
    MultipleRoots,
    Cycle,
    InvalidConfig,
    InvalidAllow,
    UnusedAllow,
    StaleSnapshot,
    FrozenEdited,
    /// A lint rule, by its id (see `lint::rules`).
    Rule(&'static str),
}

impl Check {
    /// Every check but the lint rules.
    pub const CHECKS: &[Check] = &[
        Check::MissingDirectory,
        Check::EmptyDirectory,
        Check::UnreadableFile,
        Check::NonUtf8File,
        Check::NulCharacter,
        Check::MissingHeader,
        Check::InvalidHeader,
        Check::InvalidRevisionId,
        Check::UnknownDirective,
        Check::InvalidDirective,
        Check::SyntaxError,
        Check::DuplicateRevision,
        Check::DanglingParent,
        Check::MultipleHeads,
        Check::MultipleRoots,
        Check::Cycle,
        Check::InvalidConfig,
        Check::InvalidAllow,
        Check::UnusedAllow,
        Check::StaleSnapshot,
        Check::FrozenEdited,
    ];

    /// The stable id, e.g. `multiple-heads`.
    pub fn id(self) -> &'static str {
        match self {
            Check::MissingDirectory => "missing-directory",
            Check::EmptyDirectory => "empty-directory",
            Check::UnreadableFile => "unreadable-file",
            Check::NonUtf8File => "non-utf8-file",
            Check::NulCharacter => "nul-character",
            Check::MissingHeader => "missing-header",
            Check::InvalidHeader => "invalid-header",
            Check::InvalidRevisionId => "invalid-revision-id",
            Check::UnknownDirective => "unknown-directive",
            Check::InvalidDirective => "invalid-directive",
            Check::SyntaxError => "syntax-error",
            Check::DuplicateRevision => "duplicate-revision",
            Check::DanglingParent => "dangling-parent",
            Check::MultipleHeads => "multiple-heads",
            Check::MultipleRoots => "multiple-roots",
            Check::Cycle => "cycle",
            Check::InvalidConfig => "invalid-config",
            Check::InvalidAllow => "invalid-allow",
            Check::UnusedAllow => "unused-allow",
            Check::StaleSnapshot => "stale-snapshot",
            Check::FrozenEdited => "frozen-edited",
            Check::Rule(id) => id,
        }
    }

    /// A lint finding, as opposed to a problem with the files, headers, graph or settings.
    pub fn is_rule(self) -> bool {
        matches!(self, Check::Rule(_))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Ids read as text (a rule named in a test or a report).
impl PartialEq<&str> for Check {
    fn eq(&self, other: &&str) -> bool {
        self.id() == *other
    }
}

/// One finding: which check produced it, where, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub check: Check,
    pub location: Option<Location>,
    pub message: String,
    /// What to do about it; may span several lines (e.g. a file to add).
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(check: Check, location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            check,
            location,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(check: Check, location: Option<Location>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(check, location, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Renders `path:line:col: [check] message` followed by an indented `help:` block.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "[{}] {}", self.check, self.message)?;
        if let Some(help) = &self.help {
            let mut lines = help.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n  = help: {first}")?;
            }
            for line in lines {
                write!(f, "\n          {line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids are distinct, none is a lint rule's, and the README's table lists each.
    #[cfg(feature = "analysis")]
    #[test]
    fn check_ids_are_distinct_from_each_other_and_from_the_rules() {
        let readme = include_str!("../../../README.md");
        let ids: std::collections::BTreeSet<&str> = Check::CHECKS.iter().map(|c| c.id()).collect();
        assert_eq!(ids.len(), Check::CHECKS.len());
        for id in &ids {
            assert!(
                crate::lint::rules::find(id).is_none(),
                "{id} is a rule's id too"
            );
            assert!(
                readme.contains(&format!("`{id}`")),
                "README lists no `{id}`"
            );
        }
    }

    #[test]
    fn renders_location_check_message_and_multiline_help() {
        let d = Diagnostic::error(
            Check::MultipleHeads,
            Some(Location::new("migrations/a.sql", 2, 14)),
            "two heads",
        )
        .with_help("add this file:\n-- revision: x");
        assert_eq!(
            d.to_string(),
            "migrations/a.sql:2:14: [multiple-heads] two heads\n  = help: add this file:\n          -- revision: x"
        );
    }

    #[test]
    fn renders_without_location() {
        let d = Diagnostic::error(Check::EmptyDirectory, None, "no migrations");
        assert_eq!(d.to_string(), "[empty-directory] no migrations");
    }
}
