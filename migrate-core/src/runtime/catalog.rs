//! The schema as the server's catalog describes it, and the differences between two of them.
//!
//! One model serves drift detection: the catalog a shadow database gets from replaying the
//! applied revisions (what the migrations build) against the live one (what the database has).
//! Both are read from `pg_catalog` with `search_path = pg_catalog`, so that every name and every
//! definition the server prints comes out schema-qualified and the two compare as text.
//!
//! Left out: the system schemas, objects that belong to an extension (`pg_depend` deptype `e`),
//! constraints that partitions inherit, and the history table.

use std::collections::BTreeMap;
use std::fmt;

use postgres::SimpleQueryMessage;

use super::config::Settings;
use super::driver::Session;

/// A column, as `pg_attribute` and `pg_attrdef` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `format_type`: `character varying(255)`, `timestamp with time zone`, `uuid`…
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (always) or `d` (by default) for an identity column.
    pub identity: Option<char>,
    /// `s` for a stored generated column.
    pub generated: Option<char>,
}

/// A table or a partitioned table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// In `attnum` order: the order is information only, never a difference.
    pub columns: Vec<Column>,
    /// Constraint name -> `pg_get_constraintdef`, and whether it is validated.
    pub constraints: BTreeMap<String, (String, bool)>,
    /// Index name -> `pg_get_indexdef` without the name, for indexes no constraint owns.
    pub indexes: BTreeMap<String, String>,
}

/// The tables of a database, by `schema.table`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
}

/// How a difference should be reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Adding what is missing, in a form that does not stall traffic.
    Safe,
    /// A change someone must look at (a type, a default, NOT NULL).
    Review,
    /// Dropping what the migrations do not build: data may be lost.
    Destructive,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Safe => "safe",
            Severity::Review => "review",
            Severity::Destructive => "destructive",
        })
    }
}

/// One difference between what the migrations build and what the database has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `table public.users`, `column public.users.email`, `index public.users_email_idx`…
    pub object: String,
    /// What the migrations build (`None`: they do not build it).
    pub expected: Option<String>,
    /// What the database has (`None`: it does not have it).
    pub actual: Option<String>,
    pub severity: Severity,
    /// The SQL that would make the database what the migrations build, in this project's safe
    /// forms; `None` when it cannot be written without a human (a missing table).
    pub fix: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        write!(
            f,
            "{} [{}]: migrations build {}; the database has {}",
            self.object,
            self.severity,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// Every row of a batch, as text cells.
fn rows(messages: &[SimpleQueryMessage]) -> impl Iterator<Item = Vec<Option<String>>> + '_ {
    messages.iter().filter_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(
            (0..row.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect(),
        ),
        _ => None,
    })
}

/// The relations a catalog covers: tables and partitioned tables of user schemas that no
/// extension owns, but for the history table.
fn relation_filter(settings: &Settings) -> String {
    use postgres_protocol::escape::escape_literal;
    format!(
        "c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' \
         AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e') \
         AND NOT (n.nspname = {} AND c.relname = {})",
        escape_literal(&settings.schema),
        escape_literal(&settings.table)
    )
}

impl Catalog {
    /// Reads the catalog in one round trip, inside a read-only transaction with
    /// `search_path = pg_catalog`.
    pub(crate) async fn read<S: Session>(
        client: &mut S,
        settings: &Settings,
    ) -> Result<Catalog, postgres::Error> {
        let filter = relation_filter(settings);
        let from = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace";
        let sql = format!(
            "BEGIN READ ONLY; SET LOCAL search_path = pg_catalog; \
             SELECT 'table', n.nspname || '.' || c.relname {from} WHERE {filter}; \
             SELECT 'column', n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text, pg_get_expr(d.adbin, d.adrelid), nullif(a.attidentity, ''), nullif(a.attgenerated, ''), a.attnum::text \
               {from} JOIN pg_attribute a ON a.attrelid = c.oid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
               WHERE a.attnum > 0 AND NOT a.attisdropped AND {filter} ORDER BY 2, a.attnum; \
             SELECT 'constraint', n.nspname || '.' || c.relname, k.conname, pg_get_constraintdef(k.oid), k.convalidated::text \
               {from} JOIN pg_constraint k ON k.conrelid = c.oid WHERE k.conislocal AND {filter}; \
             SELECT 'index', n.nspname || '.' || c.relname, i.relname, replace(pg_get_indexdef(i.oid), ' INDEX ' || quote_ident(i.relname) || ' ON ', ' INDEX ON ') \
               {from} JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class i ON i.oid = x.indexrelid \
               WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = c.oid) AND {filter}; \
             COMMIT"
        );
        let messages = client.simple_query(&sql).await?;
        let mut catalog = Catalog::default();
        // Each row starts with what it describes; tables come first, so the others find theirs.
        for row in rows(&messages) {
            match row.as_slice() {
                [Some(kind), Some(table)] if kind == "table" => {
                    catalog.tables.entry(table.clone()).or_default();
                }
                [
                    Some(kind),
                    Some(table),
                    Some(name),
                    Some(data_type),
                    not_null,
                    default,
                    identity,
                    generated,
                    _,
                ] if kind == "column" => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.columns.push(Column {
                            name: name.clone(),
                            data_type: data_type.clone(),
                            not_null: not_null.as_deref() == Some("true"),
                            default: default.clone(),
                            identity: identity.as_deref().and_then(|v| v.chars().next()),
                            generated: generated.as_deref().and_then(|v| v.chars().next()),
                        });
                    }
                }
                [
                    Some(kind),
                    Some(table),
                    Some(name),
                    Some(definition),
                    validated,
                ] if kind == "constraint" => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.constraints.insert(
                            name.clone(),
                            (definition.clone(), validated.as_deref() == Some("true")),
                        );
                    }
                }
                [Some(kind), Some(table), Some(name), Some(definition)] if kind == "index" => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.indexes.insert(name.clone(), definition.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(catalog)
    }
}

fn column_text(column: &Column) -> String {
    let mut text = column.data_type.clone();
    if column.not_null {
        text.push_str(" NOT NULL");
    }
    if let Some(default) = &column.default {
        text.push_str(&format!(" DEFAULT {default}"));
    }
    match column.identity {
        Some('a') => text.push_str(" GENERATED ALWAYS AS IDENTITY"),
        Some('d') => text.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        _ => {}
    }
    if column.generated == Some('s') {
        text.push_str(" (generated, stored)");
    }
    text
}

/// Whether a default can be added without a rewrite: a constant (PostgreSQL 11+ stores it).
fn constant_default(default: &str) -> bool {
    !default.contains('(') || default.starts_with('\'')
}

/// The differences that make `actual` what `expected` describes, grouped by table in name
/// order.
pub fn diff(expected: &Catalog, actual: &Catalog) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, want) in &expected.tables {
        match actual.tables.get(name) {
            None => out.push(Difference {
                object: format!("table {name}"),
                expected: Some(format!("{} column(s)", want.columns.len())),
                actual: None,
                severity: Severity::Review,
                fix: None,
            }),
            Some(have) => diff_table(name, want, have, &mut out),
        }
    }
    for name in actual.tables.keys() {
        if !expected.tables.contains_key(name) {
            out.push(Difference {
                object: format!("table {name}"),
                expected: None,
                actual: Some("present".to_owned()),
                severity: Severity::Destructive,
                fix: Some(format!("DROP TABLE {name};")),
            });
        }
    }
    out
}

fn diff_table(table: &str, want: &Table, have: &Table, out: &mut Vec<Difference>) {
    for column in &want.columns {
        let object = format!("column {table}.{}", column.name);
        match have.columns.iter().find(|c| c.name == column.name) {
            None => {
                // Nullable, or with a constant default: instant. NOT NULL needs that default.
                let mut add = format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    column.name, column.data_type
                );
                let default = column.default.as_deref().filter(|d| constant_default(d));
                if let Some(default) = default {
                    add.push_str(&format!(" DEFAULT {default}"));
                    if column.not_null {
                        add.push_str(" NOT NULL");
                    }
                }
                let safe = default.is_some() || (!column.not_null && column.default.is_none());
                out.push(Difference {
                    object,
                    expected: Some(column_text(column)),
                    actual: None,
                    severity: if safe {
                        Severity::Safe
                    } else {
                        Severity::Review
                    },
                    fix: Some(format!("{add};")),
                });
            }
            Some(found) if found != column => {
                let mut fixes = Vec::new();
                if found.data_type != column.data_type {
                    fixes.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {name} TYPE {ty} USING {name}::{ty};",
                        name = column.name,
                        ty = column.data_type
                    ));
                }
                if found.not_null != column.not_null {
                    fixes.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {} {} NOT NULL;",
                        column.name,
                        if column.not_null { "SET" } else { "DROP" }
                    ));
                }
                if found.default != column.default {
                    fixes.push(match &column.default {
                        Some(default) => format!(
                            "ALTER TABLE {table} ALTER COLUMN {} SET DEFAULT {default};",
                            column.name
                        ),
                        None => format!(
                            "ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT;",
                            column.name
                        ),
                    });
                }
                out.push(Difference {
                    object,
                    expected: Some(column_text(column)),
                    actual: Some(column_text(found)),
                    severity: Severity::Review,
                    fix: (!fixes.is_empty()).then(|| fixes.join("\n")),
                });
            }
            Some(_) => {}
        }
    }
    for found in &have.columns {
        if !want.columns.iter().any(|c| c.name == found.name) {
            out.push(Difference {
                object: format!("column {table}.{}", found.name),
                expected: None,
                actual: Some(column_text(found)),
                severity: Severity::Destructive,
                fix: Some(format!("ALTER TABLE {table} DROP COLUMN {};", found.name)),
            });
        }
    }
    diff_named(
        table,
        "constraint",
        &want
            .constraints
            .iter()
            .map(|(n, (d, _))| (n.clone(), d.clone()))
            .collect(),
        &have
            .constraints
            .iter()
            .map(|(n, (d, _))| (n.clone(), d.clone()))
            .collect(),
        out,
    );
    diff_named(table, "index", &want.indexes, &have.indexes, out);
}

/// Constraints or indexes: by name, and an object with another name but the same definition is
/// a rename, not a drop and an add.
fn diff_named(
    table: &str,
    kind: &str,
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
    out: &mut Vec<Difference>,
) {
    let unmatched_have: Vec<(&String, &String)> = have
        .iter()
        .filter(|(name, _)| !want.contains_key(*name))
        .collect();
    let mut renamed_from = Vec::new();
    for (name, definition) in want {
        let object = format!("{kind} {table}.{name}");
        match have.get(name) {
            Some(found) if found == definition => {}
            Some(found) => out.push(Difference {
                object,
                expected: Some(definition.clone()),
                actual: Some(found.clone()),
                severity: Severity::Review,
                fix: None,
            }),
            None => {
                let rename = unmatched_have
                    .iter()
                    .find(|(old, found)| *found == definition && !renamed_from.contains(*old));
                if let Some((old, _)) = rename {
                    renamed_from.push((*old).clone());
                    let fix = if kind == "index" {
                        let schema = table.split_once('.').map_or("public", |(s, _)| s);
                        format!("ALTER INDEX {schema}.{old} RENAME TO {name};")
                    } else {
                        format!("ALTER TABLE {table} RENAME CONSTRAINT {old} TO {name};")
                    };
                    out.push(Difference {
                        object,
                        expected: Some(definition.clone()),
                        actual: Some(format!("the same, named {old}")),
                        severity: Severity::Safe,
                        fix: Some(fix),
                    });
                    continue;
                }
                out.push(Difference {
                    object,
                    expected: Some(definition.clone()),
                    actual: None,
                    severity: Severity::Safe,
                    fix: Some(add_named(table, kind, name, definition)),
                });
            }
        }
    }
    for (name, found) in unmatched_have {
        if renamed_from.contains(name) {
            continue;
        }
        let schema = table.split_once('.').map_or("public", |(s, _)| s);
        out.push(Difference {
            object: format!("{kind} {table}.{name}"),
            expected: None,
            actual: Some(found.clone()),
            severity: Severity::Destructive,
            fix: Some(if kind == "index" {
                format!("DROP INDEX CONCURRENTLY {schema}.{name};")
            } else {
                format!("ALTER TABLE {table} DROP CONSTRAINT {name};")
            }),
        });
    }
}

/// The safe way to add a missing constraint or index: checks and foreign keys unchecked, then
/// validated; indexes (and the ones under unique keys) built concurrently.
fn add_named(table: &str, kind: &str, name: &str, definition: &str) -> String {
    if kind == "index" {
        return format!(
            "{};",
            definition.replacen(" INDEX ON ", &format!(" INDEX CONCURRENTLY {name} ON "), 1)
        );
    }
    if definition.starts_with("CHECK") || definition.starts_with("FOREIGN KEY") {
        return format!(
            "ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID;\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"
        );
    }
    if let Some(columns) = definition
        .strip_prefix("UNIQUE ")
        .or_else(|| definition.strip_prefix("PRIMARY KEY "))
    {
        let kind = if definition.starts_with("UNIQUE") {
            "UNIQUE"
        } else {
            "PRIMARY KEY"
        };
        return format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} {columns};\nALTER TABLE {table} ADD CONSTRAINT {name} {kind} USING INDEX {name};"
        );
    }
    format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition};")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(client: &mut postgres::Client) -> Catalog {
        super::super::Migrator::new(&super::super::status::tests::SET)
            .catalog(client)
            .unwrap()
    }

    #[test]
    fn a_drifted_users_table_is_found_column_by_column_with_safe_fixes() {
        let expected_db = pg_harness::test_database();
        let actual_db = pg_harness::test_database();
        expected_db
            .client()
            .batch_execute(
                "CREATE TABLE users (id uuid PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), plan text DEFAULT 'free');
                 CREATE INDEX users_email_idx ON users (email);
                 CREATE TABLE posts (id bigint PRIMARY KEY, user_id uuid, CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id));
                 CREATE TABLE migrate_history (revision text);",
            )
            .unwrap();
        actual_db
            .client()
            .batch_execute(
                "CREATE TABLE users (id varchar(36) PRIMARY KEY, email text NOT NULL, created_at timestamp NOT NULL DEFAULT now(), username text);
                 CREATE INDEX users_mail ON users (email);
                 CREATE TABLE posts (id bigint PRIMARY KEY, user_id varchar(36));",
            )
            .unwrap();
        let differences = diff(
            &catalog(&mut expected_db.client()),
            &catalog(&mut actual_db.client()),
        );
        let lines: Vec<String> = differences
            .iter()
            .map(|d| format!("{d} => {}", d.fix.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            lines,
            [
                "column public.posts.user_id [review]: migrations build uuid; the database has character varying(36) => ALTER TABLE public.posts ALTER COLUMN user_id TYPE uuid USING user_id::uuid;",
                "constraint public.posts.posts_user_fk [safe]: migrations build FOREIGN KEY (user_id) REFERENCES public.users(id); the database has (absent) => ALTER TABLE public.posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES public.users(id) NOT VALID;\nALTER TABLE public.posts VALIDATE CONSTRAINT posts_user_fk;",
                "column public.users.id [review]: migrations build uuid NOT NULL; the database has character varying(36) NOT NULL => ALTER TABLE public.users ALTER COLUMN id TYPE uuid USING id::uuid;",
                "column public.users.created_at [review]: migrations build timestamp with time zone NOT NULL DEFAULT now(); the database has timestamp without time zone NOT NULL DEFAULT now() => ALTER TABLE public.users ALTER COLUMN created_at TYPE timestamp with time zone USING created_at::timestamp with time zone;",
                "column public.users.plan [safe]: migrations build text DEFAULT 'free'::text; the database has (absent) => ALTER TABLE public.users ADD COLUMN plan text DEFAULT 'free'::text;",
                "column public.users.username [destructive]: migrations build (absent); the database has text => ALTER TABLE public.users DROP COLUMN username;",
                "index public.users.users_email_idx [safe]: migrations build CREATE INDEX ON public.users USING btree (email); the database has the same, named users_mail => ALTER INDEX public.users_mail RENAME TO users_email_idx;",
            ]
            .map(str::to_owned),
            "{lines:#?}"
        );
        // The history table is no schema object of the migrations.
        assert!(
            !catalog(&mut expected_db.client())
                .tables
                .contains_key("public.migrate_history")
        );
    }
}
