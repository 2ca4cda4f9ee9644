//! # session-setting
//!
//! **What**: a session-level `SET`, `RESET`, `SET ROLE` or `SET SESSION AUTHORIZATION` in a
//! migration that runs in a transaction (`SET` without `LOCAL`).
//!
//! **Why**: the setting outlives the migration's commit. Through a transaction-mode pooler it
//! stays on the server connection and reaches the next client that gets it; on a direct
//! connection it holds for the rest of the runner's session: `SET lock_timeout = 0` turns off the
//! lock timeout of every migration after it, `SET search_path` changes where they create their
//! tables, `SET ROLE` who owns them.
//!
//! **Instead**: `SET LOCAL` (`SET LOCAL … TO DEFAULT` for a `RESET`), which ends with the
//! migration's transaction. A no-transaction migration may set its session (the runner restores
//! the session's settings when it ends), but not its role, which the runner cannot restore: move
//! the statements that need another role into a transactional migration with `SET LOCAL ROLE`.

use crate::lint::rule::{Finding, Level, Rule, StatementContext};

pub const RULE: Rule = Rule {
    id: "session-setting",
    summary: "a session-level SET outlives the migration's transaction",
    check,
    default_level: Level::Error,
};

fn check(ctx: &StatementContext<'_>) -> Vec<Finding> {
    let Some(setting) = &ctx.classified.session_setting else {
        return Vec::new();
    };
    if !ctx.in_transaction && !setting.identity {
        return Vec::new();
    }
    let message = if setting.identity {
        format!(
            "`{}` changes who runs every later statement of the runner's session, beyond this migration",
            ctx.statement()
        )
    } else {
        format!(
            "`{}` sets the session, not the migration's transaction: it outlives the commit, holds for every later migration of the run, and through a transaction pooler reaches the next client",
            ctx.statement()
        )
    };
    let help = match (&setting.local, ctx.in_transaction) {
        (Some(local), true) => format!(
            "scope it to this migration's transaction:\n{};",
            crate::analysis::statements::one_line(local, 200)
        ),
        (None, true) => "set each parameter back with `SET LOCAL <name> TO DEFAULT` instead".to_owned(),
        (_, false) => "move the statements that need another role into a transactional migration, with `SET LOCAL ROLE …` there".to_owned(),
    };
    vec![Finding { message, help }]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{BASE, hits, lint};

    fn help(body: &str) -> String {
        lint(&[BASE, body])
            .into_iter()
            .find(|d| d.check == "session-setting")
            .and_then(|d| d.help)
            .unwrap_or_default()
    }

    #[test]
    fn flags_session_settings_in_a_transaction() {
        assert_eq!(
            hits(
                &[
                    BASE,
                    "SET lock_timeout = 0;\nSET search_path TO app, public;\nRESET statement_timeout;\nSET ROLE app_owner;"
                ],
                "session-setting"
            ),
            ["m/1.sql:3", "m/1.sql:4", "m/1.sql:5", "m/1.sql:6"]
        );
    }

    #[test]
    fn the_help_rewrites_each_form_as_its_local_twin() {
        for (statement, rewrite) in [
            ("SET lock_timeout = 0", "SET LOCAL lock_timeout = 0"),
            (
                "set session search_path to app",
                "set LOCAL search_path to app",
            ),
            (
                "SET TIME ZONE 'Europe/Zürich'",
                "SET LOCAL TIME ZONE 'Europe/Zürich'",
            ),
            (
                "RESET statement_timeout",
                "SET LOCAL statement_timeout TO DEFAULT",
            ),
            ("SET ROLE app_owner", "SET LOCAL ROLE app_owner"),
            ("RESET ROLE", "SET LOCAL ROLE NONE"),
            (
                "SET SESSION AUTHORIZATION app",
                "SET LOCAL SESSION AUTHORIZATION app",
            ),
        ] {
            let help = help(&format!("{statement};"));
            assert!(
                help.starts_with(&format!(
                    "scope it to this migration's transaction:\n{rewrite};"
                )),
                "{statement}: {help}"
            );
        }
        assert!(
            help("RESET ALL;").starts_with("set each parameter back with `SET LOCAL"),
            "{}",
            help("RESET ALL;")
        );
    }

    #[test]
    fn passes_local_transaction_scoped_and_no_transaction_settings() {
        assert!(
            hits(
                &[
                    BASE,
                    "SET LOCAL lock_timeout = '2s';\nSET LOCAL ROLE app_owner;\nSET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nSET CONSTRAINTS ALL DEFERRED;"
                ],
                "session-setting"
            )
            .is_empty()
        );
        assert!(
            hits(
                &[
                    BASE,
                    "-- migrate:no-transaction\nSET maintenance_work_mem = '1GB';\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);"
                ],
                "session-setting"
            )
            .is_empty()
        );
        assert_eq!(
            hits(
                &[BASE, "-- migrate:no-transaction\nSET ROLE app_owner;"],
                "session-setting"
            ),
            ["m/1.sql:4"]
        );
    }
}
