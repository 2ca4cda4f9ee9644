//! Replays a migration statement by statement: resolves each effect against what earlier
//! migrations created (an index's table, a constraint's kind, a column's type), keeps the locks
//! of the open transaction, and runs the rules.

use std::collections::{BTreeMap, BTreeSet};

use super::classify::{Classified, Detail, Effect, Rename, classify};
use super::config::LintConfig;
use super::facts::{ConstraintFact, SchemaFacts};
use super::locks::{Cost, Op, lookup};
use super::rule::{Finding, Held, ResolvedEffect, Rule, StatementContext};
use super::rules::{self};
use super::types::type_change_is_compatible_in;
use crate::analysis::AnalyzedMigration;
use crate::analysis::statements::StatementSpan;

/// What `SET TimeZone` does to the session: `Some(true)` for a zone at UTC all year,
/// `Some(false)` for any other value or a reset, `None` for a statement that is not about it.
fn sets_utc(statement: &str) -> Option<bool> {
    let text = statement
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if let Some(rest) = text.strip_prefix("reset ") {
        return matches!(
            rest.trim_end_matches(';').trim(),
            "timezone" | "time zone" | "all"
        )
        .then_some(false);
    }
    let rest = text.strip_prefix("set ")?;
    let rest = rest
        .strip_prefix("local ")
        .or_else(|| rest.strip_prefix("session "))
        .unwrap_or(rest);
    let value = rest
        .strip_prefix("timezone")
        .or_else(|| rest.strip_prefix("time zone"))?
        .trim_start();
    let value = value
        .strip_prefix('=')
        .or_else(|| value.strip_prefix("to "))
        .unwrap_or(value)
        .trim()
        .trim_end_matches(';')
        .trim()
        .trim_matches('\'')
        .trim_matches('"');
    Some(matches!(
        value,
        "utc" | "etc/utc" | "gmt" | "etc/gmt" | "zulu" | "universal" | "etc/universal" | "uct"
    ))
}

fn resolve(
    effect: Effect,
    facts: &SchemaFacts,
    created_indexes: &BTreeMap<String, String>,
    target_version: u32,
    session_utc: bool,
) -> Vec<ResolvedEffect> {
    let mut effect = effect;
    let index_table = |index: &str| {
        created_indexes
            .get(index)
            .or_else(|| facts.indexes.get(index))
            .cloned()
    };
    if let Detail::Index(index) = &effect.detail
        && effect.table.is_empty()
    {
        effect.table = index_table(index).unwrap_or_else(|| format!("(table of index {index})"));
    }
    // Before 18 a virtual generated column does not exist: judged as the stored one the target
    // has.
    if effect.op == Op::AddColumnVirtualGenerated
        && target_version < super::locks::first_version(Op::AddColumnVirtualGenerated)
    {
        effect.op = Op::AddColumnVolatileDefault;
    }
    let constraint = |effect: &Effect| match &effect.detail {
        Detail::Constraint {
            name: Some(name), ..
        } => facts.constraints.get(&(effect.table.clone(), name.clone())),
        _ => None,
    };
    match effect.op {
        Op::ValidateCheck | Op::DropCheckConstraint => {
            if let Some(references) = constraint(&effect).and_then(|c| c.references.clone()) {
                effect.op = if effect.op == Op::ValidateCheck {
                    Op::ValidateForeignKey
                } else {
                    Op::DropForeignKey
                };
                effect.other = Some(references);
            }
        }
        Op::AlterColumnTypeRewrite => {
            if let Detail::TypeChange {
                column,
                new_type,
                computed: None,
            } = &effect.detail
                && let Some(old) = facts.columns.get(&(effect.table.clone(), column.clone()))
                && type_change_is_compatible_in(
                    &facts.storage_type(old, false),
                    &facts.storage_type(new_type, true),
                    // The heap keeps its bytes in UTC, but the column's indexes are rebuilt.
                    session_utc
                        && !facts
                            .indexed_columns
                            .contains(&(effect.table.clone(), column.clone())),
                )
            {
                effect.op = Op::AlterColumnTypeCompatible;
            }
            // The foreign key on the column is dropped and made again: measured, without a scan
            // when the change keeps the key's comparison, but under ACCESS EXCLUSIVE on the table
            // at its other end as well.
            if effect.op == Op::AlterColumnTypeCompatible
                && let Detail::TypeChange { column, .. } = &effect.detail
                && !facts.computing_indexes(&effect.table, column).is_empty()
            {
                effect.op = Op::AlterColumnTypeRebuildsIndex;
            }
            if effect.op == Op::AlterColumnTypeCompatible
                && let Detail::TypeChange { column, .. } = &effect.detail
                && let Some(other) = facts
                    .key_columns
                    .get(&(effect.table.clone(), column.clone()))
                && *other != effect.table
            {
                effect.op = Op::AlterKeyColumnType;
                effect.other = Some(other.clone());
            }
        }
        Op::DropTableCascade => {
            let referencing: Vec<String> = facts
                .referenced_by
                .get(&effect.table)
                .into_iter()
                .flatten()
                .filter(|t| **t != effect.table)
                .cloned()
                .collect();
            if referencing.is_empty() {
                effect.op = Op::DropTable;
            } else {
                return referencing
                    .into_iter()
                    .map(|other| {
                        let mut e = effect.clone();
                        e.other = Some(other);
                        ResolvedEffect {
                            row: lookup(e.op, target_version),
                            effect: e,
                        }
                    })
                    .collect();
            }
        }
        _ => {}
    }
    let mut row = lookup(effect.op, target_version);
    if let Detail::LockMode(mode) = effect.detail {
        row.table = Some(mode);
    }
    if effect.op == Op::SetNotNull
        && target_version >= 12
        && let Detail::Column(column) = &effect.detail
        && facts.constraints.iter().any(|((table, _), c)| {
            *table == effect.table && c.validated && c.not_null_column.as_deref() == Some(column)
        })
    {
        // PG12+: a valid CHECK (col IS NOT NULL) proves the column, no scan.
        row.cost = Cost::Instant;
    }
    vec![ResolvedEffect { effect, row }]
}

fn record_facts(classified: &Classified, effects: &[ResolvedEffect], facts: &mut SchemaFacts) {
    let table = classified
        .creates_table
        .clone()
        .or_else(|| effects.first().map(|e| e.effect.table.clone()))
        .unwrap_or_default();
    for (column, ty) in &classified.columns {
        facts
            .columns
            .insert((table.clone(), column.clone()), ty.clone());
    }
    if let Some((index, table)) = &classified.creates_index {
        facts.indexes.insert(index.clone(), table.clone());
        facts
            .index_reads
            .insert(index.clone(), classified.index_reads.clone());
    }
    for key in &classified.foreign_keys {
        facts
            .referenced_by
            .entry(key.references.clone())
            .or_default()
            .insert(key.table.clone());
        for column in &key.columns {
            facts
                .key_columns
                .insert((key.table.clone(), column.clone()), key.references.clone());
        }
        for column in &key.referenced_columns {
            facts
                .key_columns
                .insert((key.references.clone(), column.clone()), key.table.clone());
        }
        let key_columns: Vec<(String, String)> = key
            .columns
            .iter()
            .map(|c| (key.table.clone(), c.clone()))
            .chain(
                key.referenced_columns
                    .iter()
                    .map(|c| (key.references.clone(), c.clone())),
            )
            .collect();
        // Unnamed, it gets PostgreSQL's name: `<table>_<columns>_fkey`.
        let table_name = key.table.rsplit('.').next().unwrap_or(&key.table);
        let name = key
            .name
            .clone()
            .unwrap_or_else(|| format!("{table_name}_{}_fkey", key.columns.join("_")));
        facts.constraints.insert(
            (key.table.clone(), name),
            ConstraintFact {
                references: Some(key.references.clone()),
                not_null_column: None,
                validated: true,
                key_columns,
            },
        );
    }
    for resolved in effects {
        let effect = &resolved.effect;
        let name = match &effect.detail {
            Detail::Constraint {
                name: Some(name), ..
            } => Some((effect.table.clone(), name.clone())),
            _ => None,
        };
        match (effect.op, name) {
            (Op::AddCheck | Op::AddCheckNotValid, Some(key)) => {
                let not_null_column = match &effect.detail {
                    Detail::Constraint {
                        not_null_column, ..
                    } => not_null_column.clone(),
                    _ => None,
                };
                facts.constraints.insert(
                    key,
                    ConstraintFact {
                        references: None,
                        not_null_column,
                        validated: effect.op == Op::AddCheck,
                        key_columns: Vec::new(),
                    },
                );
            }
            (Op::AddForeignKeyNotValid, Some(key)) => {
                if let Some(c) = facts.constraints.get_mut(&key) {
                    c.validated = false;
                }
            }
            (Op::ValidateCheck | Op::ValidateForeignKey, Some(key)) => {
                if let Some(c) = facts.constraints.get_mut(&key) {
                    c.validated = true;
                }
            }
            (Op::DropCheckConstraint | Op::DropForeignKey, Some(key)) => {
                if let Some(dropped) = facts.constraints.remove(&key) {
                    for column in dropped.key_columns {
                        facts.key_columns.remove(&column);
                    }
                }
            }
            (
                Op::AlterColumnTypeRewrite
                | Op::AlterColumnTypeCompatible
                | Op::AlterKeyColumnType
                | Op::AlterColumnTypeRebuildsIndex,
                _,
            ) => {
                if let Detail::TypeChange {
                    column, new_type, ..
                } = &effect.detail
                {
                    facts
                        .columns
                        .insert((effect.table.clone(), column.clone()), new_type.clone());
                }
            }
            (Op::DropIndex | Op::DropIndexConcurrently, _) => {
                if let Detail::Index(index) = &effect.detail {
                    facts.indexes.remove(index);
                    facts.index_reads.remove(index);
                }
            }
            (Op::DropColumn, _) => {
                if let Detail::Column(column) = &effect.detail {
                    facts.drop_column(&effect.table, column);
                }
            }
            (Op::DropTable | Op::DropTableCascade, _) => facts.drop_table(&effect.table),
            _ => {}
        }
    }
}

/// Moves what is known under an object's old name to its new one: the facts from earlier
/// migrations, and the open transaction's locks and new tables and indexes.
fn follow_rename(
    rename: &Rename,
    facts: &mut SchemaFacts,
    held: &mut BTreeMap<String, Held>,
    created_tables: &mut BTreeSet<String>,
    created_indexes: &mut BTreeMap<String, String>,
) {
    fn rekey<K: Ord + Clone, V>(map: &mut BTreeMap<K, V>, change: impl Fn(&K) -> Option<K>) {
        let moved: Vec<(K, K)> = map
            .keys()
            .filter_map(|k| change(k).map(|new| (k.clone(), new)))
            .collect();
        for (old, new) in moved {
            if let Some(value) = map.remove(&old) {
                map.insert(new, value);
            }
        }
    }
    match rename {
        Rename::Table { from, to } => {
            let table = |t: &String| (t == from).then(|| to.clone());
            rekey(&mut facts.columns, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            rekey(&mut facts.constraints, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            for owner in facts
                .indexes
                .values_mut()
                .chain(created_indexes.values_mut())
            {
                if owner == from {
                    owner.clone_from(to);
                }
            }
            rekey(&mut facts.key_columns, |(t, c)| {
                table(t).map(|t| (t, c.clone()))
            });
            for other in facts.key_columns.values_mut() {
                if other == from {
                    other.clone_from(to);
                }
            }
            rekey(&mut facts.referenced_by, table);
            for referencing in facts.referenced_by.values_mut() {
                if referencing.remove(from) {
                    referencing.insert(to.clone());
                }
            }
            for constraint in facts.constraints.values_mut() {
                if constraint.references.as_ref() == Some(from) {
                    constraint.references = Some(to.clone());
                }
            }
            rekey(held, table);
            if created_tables.remove(from) {
                created_tables.insert(to.clone());
            }
        }
        Rename::Column { table, from, to } => {
            rekey(&mut facts.columns, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
            rekey(&mut facts.key_columns, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
            for (index, reads) in facts.index_reads.iter_mut() {
                if facts.indexes.get(index) == Some(table) {
                    for (column, _) in reads.iter_mut().filter(|(c, _)| c == from) {
                        column.clone_from(to);
                    }
                }
            }
            for ((t, _), constraint) in facts.constraints.iter_mut() {
                if t == table && constraint.not_null_column.as_ref() == Some(from) {
                    constraint.not_null_column = Some(to.clone());
                }
            }
        }
        Rename::Constraint { table, from, to } => {
            rekey(&mut facts.constraints, |(t, c)| {
                (t == table && c == from).then(|| (t.clone(), to.clone()))
            });
        }
        Rename::Index { from, to } => {
            let index = |i: &String| (i == from).then(|| to.clone());
            rekey(&mut facts.indexes, index);
            rekey(&mut facts.index_reads, index);
            rekey(created_indexes, index);
        }
        Rename::Type { from, to } => {
            for ty in facts.columns.values_mut() {
                if ty == from {
                    ty.clone_from(to);
                }
            }
        }
    }
}

/// One statement as the walker saw it: its effects resolved against the lock model, and what
/// the rules found.
pub struct WalkedStatement {
    pub span: StatementSpan,
    pub effects: Vec<ResolvedEffect>,
    pub findings: Vec<(&'static Rule, Finding)>,
    /// Whether everything the statement touches is a table this migration created (so no
    /// other session can be waiting on it), by a statement the lock model knows. A migration
    /// made only of such statements holds no lock that live traffic can queue behind, however
    /// long its transaction stays open.
    pub touches_only_new_tables: bool,
}

/// Whether a statement touches tables of `created` only: one of the kinds that name all they
/// lock, whose every effect (and `INSERT` target) is such a table.
fn touches_only(
    classified: &Classified,
    effects: &[ResolvedEffect],
    created: &BTreeSet<String>,
) -> bool {
    let understood = classified.names_all_it_locks
        && !(classified.opaque
            || classified.unknown
            || classified.transaction_control
            || classified.concurrently);
    understood
        && classified
            .inserts_into
            .iter()
            .all(|table| created.contains(table))
        && effects.iter().all(|resolved| {
            let effect = &resolved.effect;
            std::iter::once(&effect.table)
                .chain(effect.other.as_ref())
                .all(|table| created.contains(table))
        })
}

/// Lints one migration statement by statement.
pub fn walk(
    migration: &AnalyzedMigration,
    facts: &mut SchemaFacts,
    config: &LintConfig,
) -> Vec<WalkedStatement> {
    let statements = &migration.statements;
    let in_transaction = !migration.header.no_transaction;
    let statements_in_transaction = if in_transaction { statements.len() } else { 1 };
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut created_tables = BTreeSet::new();
    let mut filled_tables = BTreeSet::new();
    let mut created_indexes = BTreeMap::new();
    let mut added_in_transaction = BTreeSet::new();
    let mut out = Vec::new();
    // A `SET TimeZone` holds for the rest of the migration's session.
    let mut session_utc = false;
    for parsed in statements {
        if !in_transaction {
            held.clear();
            added_in_transaction.clear();
        }
        if let Some(utc) = sets_utc(parsed.span.text(&migration.sql)) {
            session_utc = utc;
        }
        let mut classified = classify(&parsed.stmt);
        // `CREATE INDEX IF NOT EXISTS` of an index that exists builds nothing (measured: SHARE
        // for an instant, no scan; the model has no row for that lock alone, so it is left out).
        if parsed.span.rerunnable
            && let Some((index, _)) = &classified.creates_index
            && (facts.indexes.contains_key(index) || created_indexes.contains_key(index))
        {
            classified
                .effects
                .retain(|e| !matches!(e.op, Op::CreateIndex | Op::CreateIndexConcurrently));
        }
        if let Some((domain, base, checks)) = &classified.creates_domain {
            facts
                .domains
                .insert(domain.clone(), (base.clone(), *checks));
        }
        if let Some(domain) = &classified.constrains_domain
            && let Some(entry) = facts.domains.get_mut(domain)
        {
            entry.1 = true;
        }
        if let Some((function, volatile)) = &classified.creates_function {
            if *volatile {
                facts.volatile_functions.insert(function.clone());
            } else {
                facts.volatile_functions.remove(function);
            }
        }
        // Reading a view reads the tables under it; a default calling a volatile function of
        // the migrations' rewrites like `random()`.
        let volatile_default = |column: &str| {
            classified.default_calls.iter().any(|(c, calls)| {
                c == column && calls.iter().any(|f| facts.volatile_functions.contains(f))
            })
        };
        let expanded: Vec<Effect> = classified
            .effects
            .iter()
            .flat_map(|e| match (&e.op, &e.detail) {
                (Op::AddColumn, Detail::Column(c) | Detail::RequiredColumn(c))
                    if volatile_default(c) =>
                {
                    vec![Effect {
                        op: Op::AddColumnVolatileDefault,
                        detail: Detail::Column(c.clone()),
                        ..e.clone()
                    }]
                }
                (Op::ReadRows, _) if facts.views.contains_key(&e.table) => facts
                    .tables_under(&e.table)
                    .into_iter()
                    .map(|table| Effect { table, ..e.clone() })
                    .collect(),
                _ => vec![e.clone()],
            })
            .collect();
        if let Some((view, reads)) = &classified.creates_view {
            facts.views.insert(view.clone(), reads.clone());
        }
        facts
            .indexed_columns
            .extend(classified.indexed_columns.iter().cloned());
        let effects: Vec<ResolvedEffect> = expanded
            .into_iter()
            .flat_map(|e| {
                resolve(
                    e,
                    facts,
                    &created_indexes,
                    config.target_version,
                    session_utc,
                )
            })
            .collect();
        let ctx = StatementContext {
            migration,
            span: &parsed.span,
            sql: parsed.span.text(&migration.sql),
            classified: &classified,
            effects: &effects,
            held: &held,
            created_tables: &created_tables,
            filled_tables: &filled_tables,
            added_in_transaction: &added_in_transaction,
            in_transaction,
            statements_in_transaction,
            facts,
            target_version: config.target_version,
        };
        let mut findings = Vec::new();
        for rule in rules::ALL {
            for finding in (rule.check)(&ctx) {
                findings.push((*rule, finding));
            }
        }

        // Locks stay until the end of the transaction.
        for resolved in &effects {
            let e = &resolved.effect;
            let pairs = [
                (Some(e.table.clone()), resolved.row.table),
                (e.other.clone(), resolved.row.other),
            ];
            for (table, mode) in pairs {
                if let (Some(table), Some(mode)) = (table, mode)
                    && !table.is_empty()
                    && !created_tables.contains(&table)
                {
                    let entry = held.entry(table).or_insert(Held {
                        mode,
                        line: parsed.span.line,
                    });
                    if mode > entry.mode {
                        *entry = Held {
                            mode,
                            line: parsed.span.line,
                        };
                    }
                }
            }
            if let Detail::Constraint {
                name: Some(name), ..
            } = &e.detail
                && matches!(
                    e.op,
                    Op::AddCheck
                        | Op::AddCheckNotValid
                        | Op::AddForeignKey
                        | Op::AddForeignKeyNotValid
                )
            {
                added_in_transaction.insert((e.table.clone(), name.clone()));
            }
        }
        let reads_existing = effects.iter().any(|r| {
            r.effect.op == Op::ReadRows
                && !r.effect.table.is_empty()
                && (!created_tables.contains(&r.effect.table)
                    || filled_tables.contains(&r.effect.table))
        });
        if let Some(table) = &classified.creates_table {
            created_tables.insert(table.clone());
            if reads_existing {
                filled_tables.insert(table.clone());
            }
        }
        if reads_existing {
            for written in effects.iter().filter(|r| r.effect.op == Op::WriteRows) {
                if created_tables.contains(&written.effect.table) {
                    filled_tables.insert(written.effect.table.clone());
                }
            }
        }
        if let Some((index, table)) = &classified.creates_index {
            created_indexes.insert(index.clone(), table.clone());
        }
        // Judged once the statement's own table counts as created, and before a rename moves
        // the name its effects use.
        let touches_only_new_tables = touches_only(&classified, &effects, &created_tables);
        record_facts(&classified, &effects, facts);
        for rename in &classified.renames {
            follow_rename(
                rename,
                facts,
                &mut held,
                &mut created_tables,
                &mut created_indexes,
            );
        }
        out.push(WalkedStatement {
            span: parsed.span.clone(),
            effects,
            findings,
            touches_only_new_tables,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The effects of the last migration's statements: (op, table, other).
    fn last_effects(bodies: &[&str]) -> Vec<(Op, String, Option<String>)> {
        let plan = crate::lint::lock_plan(
            &crate::lint::rules::test_support::migrations(bodies),
            &LintConfig::default(),
        );
        plan.last()
            .into_iter()
            .flatten()
            .flat_map(|s| s.effects.iter())
            .map(|e| (e.effect.op, e.effect.table.clone(), e.effect.other.clone()))
            .collect()
    }

    #[test]
    fn constraints_and_indexes_follow_their_renames() {
        use crate::lint::rules::test_support::BASE;
        // The foreign key is still known as one after its rename, and after its table's.
        let effects = last_effects(&[
            BASE,
            "ALTER TABLE posts RENAME CONSTRAINT posts_user_fk TO posts_author_fk;",
            "ALTER TABLE posts RENAME TO articles;",
            "ALTER TABLE users RENAME TO accounts;",
            "ALTER TABLE articles DROP CONSTRAINT posts_author_fk;",
        ]);
        assert_eq!(
            effects,
            [(
                Op::DropForeignKey,
                "articles".to_owned(),
                Some("accounts".to_owned())
            )]
        );
        // An index keeps its table through both renames.
        let effects = last_effects(&[
            BASE,
            "ALTER INDEX posts_user_idx RENAME TO posts_author_idx;\nALTER TABLE posts RENAME TO articles;",
            "REINDEX INDEX posts_author_idx;",
        ]);
        assert_eq!(effects, [(Op::Reindex, "articles".to_owned(), None)]);
    }

    #[test]
    fn timestamp_to_timestamptz_keeps_its_rows_after_a_set_timezone_utc() {
        let hits = |body: &str| {
            super::super::rules::test_support::hits(
                &["CREATE TABLE e (at timestamp, until timestamptz);", body],
                "changing-column-type",
            )
        };
        assert_eq!(
            hits("ALTER TABLE e ALTER COLUMN at TYPE timestamptz USING at;"),
            ["m/1.sql:3"]
        );
        for set in [
            "SET timezone = 'UTC';",
            "SET LOCAL TIME ZONE 'UTC';",
            "SET TimeZone TO 'Etc/UTC';",
        ] {
            assert!(
                hits(&format!(
                    "{set}\nALTER TABLE e ALTER COLUMN at TYPE timestamptz USING at;\nALTER TABLE e ALTER COLUMN until TYPE timestamp;"
                ))
                .is_empty(),
                "{set}"
            );
        }
        // An index on the column is rebuilt all the same: a scan under ACCESS EXCLUSIVE.
        assert_eq!(
            super::super::rules::test_support::hits(
                &[
                    "CREATE TABLE e (at timestamp);\nCREATE INDEX e_at ON e (at);",
                    "SET timezone = 'UTC';\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;",
                ],
                "changing-column-type",
            ),
            ["m/1.sql:4"]
        );
        // Another zone, or back to the server's: the rewrite is back.
        assert_eq!(
            hits(
                "SET timezone = 'UTC';\nSET timezone = 'Europe/Paris';\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;"
            ),
            ["m/1.sql:5"]
        );
        assert_eq!(
            hits(
                "SET timezone = 'UTC';\nRESET timezone;\nALTER TABLE e ALTER COLUMN at TYPE timestamptz;"
            ),
            ["m/1.sql:5"]
        );
    }
}
