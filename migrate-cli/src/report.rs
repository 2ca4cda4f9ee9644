//! Lint findings in the formats CI systems read: text, JSON, GitHub workflow annotations and
//! SARIF 2.1.0 (code scanning).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use migrate_core::analysis::diagnostic::Check;
use migrate_core::analysis::{Diagnostic, Severity};
use migrate_core::lint::config::LintOverrides;

/// How `lint` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    Github,
    Sarif,
}

/// Lints `dir` with its `migrate.toml` and `overrides` and prints the findings; exit 0 clean,
/// 1 findings at error level, 2 unreadable.
pub(crate) fn lint(
    dir: &Path,
    overrides: &LintOverrides,
    format: LintFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let findings: Vec<Diagnostic> = migrate_core::analysis::check::analyze_dir_configured(
        dir,
        &dir.display().to_string(),
        overrides,
    )
    .diagnostics;
    let _ = match format {
        LintFormat::Text => text(&findings, dir, out),
        LintFormat::Json => writeln!(
            out,
            "{}",
            Value::Array(findings.iter().map(finding_json).collect())
        ),
        LintFormat::Github => github(&findings, out),
        LintFormat::Sarif => writeln!(out, "{}", sarif(&findings)),
    };
    if findings.iter().any(|d| d.check == Check::MissingDirectory) {
        let _ = writeln!(err, "error: cannot lint {}", dir.display());
        return 2;
    }
    u8::from(findings.iter().any(|d| d.severity == Severity::Error))
}

fn text(findings: &[Diagnostic], dir: &Path, out: &mut dyn Write) -> std::io::Result<()> {
    for finding in findings {
        writeln!(out, "{}: {finding}", finding.severity.as_str())?;
    }
    let count = |severity| findings.iter().filter(|d| d.severity == severity).count();
    let information = match count(Severity::Info) {
        0 => String::new(),
        n => format!(", {n} in the frozen history (information)"),
    };
    writeln!(
        out,
        "{} error(s), {} warning(s){information} in {}",
        count(Severity::Error),
        count(Severity::Warning),
        dir.display()
    )
}

fn finding_json(d: &Diagnostic) -> Value {
    let location = d.location.as_ref();
    json!({
        "file": location.map(|l| l.path.clone()),
        "line": location.map(|l| l.line),
        "column": location.map(|l| l.column),
        "rule": d.check.id(),
        "severity": d.severity.as_str(),
        "message": d.message,
        "help": d.help,
    })
}

/// A finding's message with its help below, for formats that carry one text per finding.
fn with_help(d: &Diagnostic) -> String {
    match &d.help {
        Some(help) => format!("{}\nhelp: {help}", d.message),
        None => d.message.clone(),
    }
}

/// GitHub's workflow command escaping: data escapes `%`, CR and LF; properties also `:` and `,`.
fn github_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

fn github(findings: &[Diagnostic], out: &mut dyn Write) -> std::io::Result<()> {
    for d in findings {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some(l) = &d.location {
            properties.push(format!("file={}", github_property(&l.path)));
            properties.push(format!("line={}", l.line));
            properties.push(format!("col={}", l.column));
        }
        properties.push(format!("title={}", github_property(d.check.id())));
        writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            github_data(&with_help(d))
        )?;
    }
    Ok(())
}

/// One SARIF 2.1.0 log with one run: the rules that fired, and a result for each finding.
fn sarif(findings: &[Diagnostic]) -> Value {
    let mut rule_ids: Vec<&str> = findings.iter().map(|d| d.check.id()).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| {
            let summary = migrate_core::lint::rules::find(id).map_or_else(
                || format!("migration check `{id}`"),
                |r| r.summary.to_owned(),
            );
            json!({"id": id, "shortDescription": {"text": summary}})
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|d| {
            let mut result = json!({
                "ruleId": d.check.id(),
                "ruleIndex": rule_ids.iter().position(|r| *r == d.check.id()),
                "level": match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "note",
                },
                "message": {"text": with_help(d)},
            });
            if let Some(l) = &d.location {
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": {"uri": l.path},
                        "region": {"startLine": l.line, "startColumn": l.column},
                    }
                }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "migrate",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(github_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(github_property("m/a,b:c.sql"), "m/a%2Cb%3Ac.sql");
    }
}
