//! The lint rules, one per file, each with its documentation, check and fixtures.

mod adding_field_with_volatile_default;
mod adding_not_nullable_field;
mod adding_required_field;
mod ban_drop_column;
mod ban_drop_table;
mod changing_column_type;
mod concurrently_in_transaction;
mod constraint_missing_not_valid;
mod disallowed_unique_constraint;
mod drop_constraint_locks_both_tables;
mod key_column_type_locks_both_tables;
mod lock_held_across_slow_statement;
mod renaming_column;
mod renaming_table;
mod require_concurrent_index_creation;
mod require_concurrent_index_deletion;
mod require_concurrent_reindex;
mod schema_qualified_name;
mod session_setting;
mod table_rewrite;
mod transaction_control;
mod unknown_statement;
mod validate_in_same_transaction;

use super::classify::Effect;
use super::locks::Op;
use super::rule::{ResolvedEffect, Rule, StatementContext};

/// Every rule, in the order their findings are reported for one statement.
pub static ALL: &[&Rule] = &[
    &transaction_control::RULE,
    &session_setting::RULE,
    &concurrently_in_transaction::RULE,
    &require_concurrent_index_creation::RULE,
    &require_concurrent_index_deletion::RULE,
    &require_concurrent_reindex::RULE,
    &constraint_missing_not_valid::RULE,
    &validate_in_same_transaction::RULE,
    &lock_held_across_slow_statement::RULE,
    &adding_not_nullable_field::RULE,
    &adding_field_with_volatile_default::RULE,
    &adding_required_field::RULE,
    &changing_column_type::RULE,
    &disallowed_unique_constraint::RULE,
    &renaming_column::RULE,
    &renaming_table::RULE,
    &ban_drop_column::RULE,
    &ban_drop_table::RULE,
    &table_rewrite::RULE,
    &drop_constraint_locks_both_tables::RULE,
    &key_column_type_locks_both_tables::RULE,
    &schema_qualified_name::RULE,
    &unknown_statement::RULE,
];

pub fn find(id: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.id == id)
}

pub fn ids() -> Vec<&'static str> {
    ALL.iter().map(|r| r.id).collect()
}

/// The effects of `ctx`'s statement with one of `ops` on a table that carries traffic.
fn on_existing<'a>(
    ctx: &'a StatementContext<'_>,
    ops: &'a [Op],
) -> impl Iterator<Item = &'a ResolvedEffect> + 'a {
    ctx.effects
        .iter()
        .filter(move |e| ops.contains(&e.effect.op) && ctx.is_existing(&e.effect.table))
}

fn column_of(effect: &Effect) -> &str {
    match &effect.detail {
        super::classify::Detail::Column(c) | super::classify::Detail::RequiredColumn(c) => c,
        super::classify::Detail::TypeChange { column, .. } => column,
        _ => "",
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::analysis::header::parse_header;
    use crate::analysis::source::{checksum, normalize};
    use crate::analysis::statements::parse_statements;
    use crate::analysis::{AnalyzedMigration, Diagnostic};
    use crate::lint::{LintConfig, lint_migrations};

    /// Builds a linear chain of migrations from bodies (headers are added), in order.
    pub fn migrations(bodies: &[&str]) -> Vec<AnalyzedMigration> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let parents = if i == 0 {
                    "none".to_owned()
                } else {
                    format!("m{}", i - 1)
                };
                let text = format!("-- revision: m{i}\n-- parents: {parents}\n{body}\n");
                let path = format!("m/{i}.sql");
                let normalized = normalize(&path, text.as_bytes()).unwrap();
                AnalyzedMigration {
                    header: parse_header(&path, &normalized.text).unwrap(),
                    statements: parse_statements(&path, &normalized.text).unwrap(),
                    checksum: checksum(&normalized),
                    fs_path: path.clone().into(),
                    path,
                    sql: normalized.text,
                    self_contained: false,
                }
            })
            .collect()
    }

    pub fn lint(bodies: &[&str]) -> Vec<Diagnostic> {
        lint_with(bodies, &LintConfig::default())
    }

    pub fn lint_with(bodies: &[&str], config: &LintConfig) -> Vec<Diagnostic> {
        lint_migrations(&migrations(bodies), config)
    }

    /// `file:line` of each finding of `rule`.
    pub fn hits(bodies: &[&str], rule: &str) -> Vec<String> {
        lint(bodies)
            .iter()
            .filter(|d| d.check == rule)
            .filter_map(|d| {
                d.location
                    .as_ref()
                    .map(|l| format!("{}:{}", l.path, l.line))
            })
            .collect()
    }

    /// The table every fixture starts from: created in the first migration, so it has traffic
    /// in the later ones.
    pub const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email varchar(100), name text);\nCREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint, title varchar(50));\nALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\nCREATE INDEX posts_user_idx ON posts (user_id);";
}
