//! `plan`: what would run, in order, with the locks each statement takes.

use std::io::Write;

use migrate_core::Migrations;
use migrate_core::analysis::analyze_text;
use migrate_core::analysis::statements::one_line;
use migrate_core::lint::{LintConfig, lock_plan};
use migrate_core::runtime::Status;

pub(crate) fn print(migrations: &Migrations, status: &Status, out: &mut dyn Write) -> u8 {
    let analyzed: Vec<_> = migrations
        .iter()
        .filter_map(|m| analyze_text(m.path(), m.sql()).ok())
        .collect();
    // Judged for the PostgreSQL version the migrations were linted for (the macro's settings or
    // migrate.toml), so that plan and compile errors agree.
    let config = LintConfig {
        target_version: migrations.target_postgres(),
        ..LintConfig::default()
    };
    let plan = lock_plan(&analyzed, &config);
    if status.pending.is_empty() {
        let _ = writeln!(
            out,
            "nothing to apply: up to date at {}",
            status.head.unwrap_or("-")
        );
        return 0;
    }
    for (migration, statements) in analyzed.iter().zip(&plan) {
        if !status
            .pending
            .iter()
            .any(|p| p.revision() == migration.header.revision)
        {
            continue;
        }
        let mode = if migration.header.no_transaction {
            "no-transaction, statement by statement"
        } else {
            "one transaction"
        };
        let _ = writeln!(
            out,
            "{} {} ({mode})",
            migration.header.revision, migration.path
        );
        if statements.is_empty() {
            let _ = writeln!(out, "  (no statements)");
        }
        for statement in statements {
            let sql = one_line(statement.span.text(&migration.sql), 70);
            let locks: Vec<String> = statement
                .effects
                .iter()
                .flat_map(|e| {
                    let cost = format!("{:?}", e.row.cost).to_lowercase();
                    let main = e
                        .row
                        .table
                        .map(|m| format!("{} on {} ({cost})", m.sql_name(), e.effect.table));
                    let other = e
                        .row
                        .other
                        .zip(e.effect.other.as_ref())
                        .map(|(m, t)| format!("{} on {t}", m.sql_name()));
                    main.into_iter().chain(other)
                })
                .collect();
            let locks = if locks.is_empty() {
                "no table lock of note".to_owned()
            } else {
                locks.join(", ")
            };
            let _ = writeln!(
                out,
                "  line {:<4} {sql}\n             {locks}",
                statement.span.line
            );
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table created, then a column added with a constant default: instant since
    /// PostgreSQL 11, a rewrite before.
    fn plan_for(config: Option<&str>) -> String {
        let dir = std::env::temp_dir().join(format!(
            "migrate-plan-{}-{}",
            std::process::id(),
            config.map_or(0, str::len)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("0001_t.sql"),
            "-- revision: 0001\n-- parents: none\nCREATE TABLE t (id int);\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("0002_c.sql"),
            "-- revision: 0002\n-- parents: 0001\nALTER TABLE t ADD COLUMN c int DEFAULT 0;\n",
        )
        .unwrap();
        if let Some(config) = config {
            std::fs::write(dir.join("migrate.toml"), config).unwrap();
        }
        let analysis =
            migrate_core::analysis::check::analyze_dir_configured(&dir, "m", &Default::default());
        let migrations = Migrations::from_analysis(&analysis);
        let status = Status::compute(&migrations, Some(&[]));
        let mut out = Vec::new();
        assert_eq!(print(&migrations, &status, &mut out), 0);
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plan_judges_statements_for_the_configured_postgres_version() {
        let default = plan_for(None);
        let old = plan_for(Some("target_postgres = 10\n"));
        let line = |plan: &str| {
            plan.lines()
                .skip_while(|l| !l.contains("ADD COLUMN"))
                .nth(1)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        assert_ne!(line(&default), line(&old), "{default}\n{old}");
        assert!(line(&old).contains("rewrite"), "{old}");
    }
}
