//! `status`: the table an operator reads, or one JSON object.

use std::io::Write;

use serde_json::json;

use migrate_core::runtime::{Health, Status};

use crate::drift;

pub(crate) fn print(status: &Status, json: bool, out: &mut dyn Write) {
    let health = match status.health() {
        Health::Pass => "pass",
        Health::Warn => "warn",
        Health::Fail => "fail",
    };
    if json {
        let value = json!({
            "status": health,
            "head": status.head,
            "applied": status.applied.iter().map(|r| json!({"revision": r.revision, "applied_at": r.applied_at, "execution_ms": r.execution_ms, "applied_by": r.applied_by})).collect::<Vec<_>>(),
            "pending": status.pending.iter().map(|m| json!({"revision": m.revision(), "path": m.path(), "message": m.message()})).collect::<Vec<_>>(),
            "ahead": status.ahead.iter().map(|a| json!({"revision": a.revision, "descends_from_head": a.descends_from_head})).collect::<Vec<_>>(),
            "checksum_mismatches": status.checksum_mismatches.iter().map(|(r, p)| json!({"revision": r, "path": p})).collect::<Vec<_>>(),
            "interrupted": status.interrupted.as_ref().map(|i| json!({"revision": i.revision, "statements_done": i.statements_done, "statements_total": i.statements_total})),
            "schema_drift": status.schema_drift.as_ref().map(|d| drift::differences_json(d)),
        });
        let _ = writeln!(out, "{value}");
        return;
    }
    let _ = writeln!(
        out,
        "{:<14} {:<9} {:<32} message",
        "revision", "state", "applied at"
    );
    for row in &status.applied {
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} {}",
            row.revision,
            "applied",
            row.applied_at,
            row.message.as_deref().unwrap_or("")
        );
    }
    for migration in &status.pending {
        let state = if status
            .interrupted
            .as_ref()
            .is_some_and(|i| i.revision == migration.revision())
        {
            "partial"
        } else {
            "pending"
        };
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} {}",
            migration.revision(),
            state,
            "",
            migration.message().unwrap_or("")
        );
    }
    for ahead in &status.ahead {
        let relation = if ahead.descends_from_head {
            "builds on this binary's head"
        } else {
            "diverged: not built on this binary's head"
        };
        let _ = writeln!(
            out,
            "{:<14} {:<9} {:<32} unknown to this binary ({relation})",
            ahead.revision, "ahead", ""
        );
    }
    for (revision, path) in &status.checksum_mismatches {
        let _ = writeln!(
            out,
            "{revision:<14} {:<9} {:<32} {path} changed since it was applied",
            "edited", ""
        );
    }
    let drifted = status.schema_drift.as_deref().unwrap_or_default();
    for difference in drifted {
        let _ = writeln!(out, "drift: {}", drift::one_line_difference(difference));
    }
    let mut summary = format!(
        "{health}: {} applied, {} pending, {} ahead",
        status.applied.len(),
        status.pending.len(),
        status.ahead.len()
    );
    if !drifted.is_empty() {
        summary.push_str(&format!(
            ", the schema differs from the snapshot in {} place(s) (`migrate diff` reconciles it)",
            drifted.len()
        ));
    }
    let _ = writeln!(out, "{summary}");
}
