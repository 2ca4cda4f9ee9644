//! Findings of the analysis, rendered the way rustc renders its own errors so that they read the
//! same in a terminal, in CI logs and inside `cargo build` output.

use std::fmt;

/// How bad a finding is. Errors stop the build; warnings are shown and let it pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
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

/// One finding: which check produced it, where, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the check or lint rule, e.g. `multiple-heads`.
    pub check: &'static str,
    pub location: Option<Location>,
    pub message: String,
    /// What to do about it; may span several lines (e.g. a file to add).
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(
        check: &'static str,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            check,
            location,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        check: &'static str,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
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

    #[test]
    fn renders_location_check_message_and_multiline_help() {
        let d = Diagnostic::error(
            "multiple-heads",
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
        let d = Diagnostic::error("empty-directory", None, "no migrations");
        assert_eq!(d.to_string(), "[empty-directory] no migrations");
    }
}
