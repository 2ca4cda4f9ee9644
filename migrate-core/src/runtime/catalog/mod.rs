//! The schema as the server's catalog describes it, and the differences between two of them.
//!
//! One model serves drift detection and baselines: the catalog a shadow database gets from
//! replaying the applied revisions (what the migrations build) against the live one (what the
//! database has), and the SQL that creates a live schema from nothing. Both are read from
//! `pg_catalog` with `search_path = pg_catalog`, so that every name and every definition the
//! server prints comes out schema-qualified and the two compare as text.
//!
//! Left out: the system schemas, objects that belong to an extension (`pg_depend` deptype `e`),
//! constraints, indexes and triggers that partitions inherit, and the history table.

mod baseline;
mod depend;
mod diff;
mod difference;
mod fixes;
mod read;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub(crate) use baseline::creation_statements;
pub use baseline::{BaselineError, baseline_sql};
pub use diff::diff;
pub use difference::{Difference, Fix, Phase, Severity};
pub(crate) use read::{Dependencies, rows};
pub use render::fix_migration;

/// A column, as `pg_attribute` and `pg_attrdef` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Quoted where SQL needs it (`"Größe"`, `"order"`).
    pub name: String,
    /// `format_type`: `character varying(255)`, `timestamp with time zone`, `uuid`…
    pub data_type: String,
    pub not_null: bool,
    /// The default expression, or a generated column's expression.
    pub default: Option<String>,
    /// `a` (always) or `d` (by default) for an identity column.
    pub identity: Option<char>,
    /// The identity sequence's name and options, as `CREATE TABLE` takes them.
    pub identity_options: Option<String>,
    /// `s` for a stored generated column, `v` for a virtual one (PostgreSQL 18).
    pub generated: Option<char>,
    /// The column's collation when it is not its type's.
    pub collation: Option<String>,
}

/// A constraint of a table, as `pg_get_constraintdef` prints it (with `NOT VALID` when it is
/// not validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub definition: String,
    pub validated: bool,
    /// `p` primary key, `u` unique, `c` check, `f` foreign key, `x` exclusion.
    pub kind: char,
    /// The constraint's oid (0 when read from a snapshot), for the dependency order.
    pub(crate) order: u64,
}

/// A table or a partitioned table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// In `attnum` order: the order is information only, never a difference.
    pub columns: Vec<Column>,
    /// Constraint name -> its definition.
    pub constraints: BTreeMap<String, Constraint>,
    /// Index name -> `pg_get_indexdef` without the name, for indexes no constraint owns.
    pub indexes: BTreeMap<String, String>,
    /// Indexes left INVALID (a `CREATE INDEX CONCURRENTLY` that failed or was interrupted).
    pub invalid_indexes: BTreeSet<String>,
    /// Index name -> its oid (0 when read from a snapshot), for the dependency order.
    pub(crate) index_order: BTreeMap<String, u64>,
    pub unlogged: bool,
    /// `pg_get_partkeydef` of a partitioned table: `RANGE (issued_on)`.
    pub partition_key: Option<String>,
    /// The parent and the bound of a partition: `FOR VALUES FROM ('2025-01-01') TO (…)`.
    pub partition_of: Option<(String, String)>,
    /// Creation order (the table's oid), for a baseline that creates parents first.
    pub(crate) order: u64,
}

/// The kinds of schema objects beside tables, in the order a baseline creates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Extension,
    Schema,
    Type,
    Sequence,
    SequenceOwner,
    Function,
    View,
    ViewIndex,
    Trigger,
    RowSecurity,
    Policy,
    Comment,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Extension => "extension",
            ObjectKind::Schema => "schema",
            ObjectKind::Type => "type",
            ObjectKind::Sequence => "sequence",
            ObjectKind::SequenceOwner => "sequence owner",
            ObjectKind::Function => "function",
            ObjectKind::View => "view",
            ObjectKind::ViewIndex => "index",
            ObjectKind::Trigger => "trigger",
            ObjectKind::RowSecurity => "row security",
            ObjectKind::Policy => "policy",
            ObjectKind::Comment => "comment",
        })
    }
}

/// A schema object other than a table: the SQL that creates it and the SQL that drops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// As the server prints it: `CREATE TYPE public.state AS ENUM ('a', 'b');`,
    /// `pg_get_functiondef`, `pg_get_viewdef`…
    pub definition: String,
    pub drop: String,
    /// An extension's installed version: a difference is a warning, not a schema change.
    pub version: Option<String>,
    /// Creation order (the object's oid), for views built on views.
    pub(crate) order: u64,
}

/// The schema of a database: tables by their qualified name (`public.users`), every other
/// object by kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
    pub objects: BTreeMap<(ObjectKind, String), Object>,
    /// Objects this model does not render (rules, foreign tables, aggregates, operators…), as
    /// `kind name`: a baseline cannot recreate them.
    pub unrenderable: Vec<String>,
    /// `pg_depend` between the objects above, as (dependent, what it requires) node names: see
    /// [`depend`]. Empty for a catalog read from a snapshot.
    pub(crate) dependencies: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each difference between the two databases' catalogs with its fix, one line each.
    fn report(expected: &mut postgres::Client, actual: &mut postgres::Client) -> Vec<String> {
        diff(&catalog(expected), &catalog(actual))
            .iter()
            .map(|d| format!("{d} => {}", d.fix_sql().unwrap_or_default()))
            .collect()
    }

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
        let lines = report(&mut expected_db.client(), &mut actual_db.client());
        assert_eq!(
            lines,
            [
                "column public.posts.user_id [review]: migrations build uuid; the database has character varying(36) => -- review: the database has character varying(36) here; check the USING clause (most type changes rewrite the table)\nALTER TABLE public.posts ALTER COLUMN user_id TYPE uuid USING user_id::uuid;",
                "constraint public.posts.posts_user_fk [safe]: migrations build FOREIGN KEY (user_id) REFERENCES public.users(id); the database has (absent) => DO $fix$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = 'public.posts'::pg_catalog.regclass AND conname = 'posts_user_fk') THEN ALTER TABLE public.posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES public.users(id) NOT VALID; END IF; END $fix$;\nALTER TABLE public.posts VALIDATE CONSTRAINT posts_user_fk;",
                "column public.users.id [review]: migrations build uuid NOT NULL; the database has character varying(36) NOT NULL => -- review: the database has character varying(36) here; check the USING clause (most type changes rewrite the table)\nALTER TABLE public.users ALTER COLUMN id TYPE uuid USING id::uuid;",
                "column public.users.created_at [review]: migrations build timestamp with time zone DEFAULT now() NOT NULL; the database has timestamp without time zone DEFAULT now() NOT NULL => -- review: the database has timestamp without time zone here; check the USING clause (most type changes rewrite the table)\nALTER TABLE public.users ALTER COLUMN created_at TYPE timestamp with time zone USING created_at::timestamp with time zone;",
                "column public.users.plan [safe]: migrations build text DEFAULT 'free'::text; the database has (absent) => ALTER TABLE public.users ADD COLUMN IF NOT EXISTS plan text DEFAULT 'free'::text;",
                "column public.users.username [destructive]: migrations build (absent); the database has text => -- migrate:allow ban-drop-column: only the database has it\nALTER TABLE public.users DROP COLUMN IF EXISTS username;",
                "index public.users.users_email_idx [safe]: migrations build CREATE INDEX ON public.users USING btree (email); the database has the same, named users_mail => ALTER INDEX IF EXISTS public.users_mail RENAME TO users_email_idx;",
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

    /// A key that foreign keys of the database depend on, changed: dropping it would fail
    /// (2BP01), so the fix is left to a human.
    #[test]
    fn a_changed_key_that_foreign_keys_depend_on_needs_a_human() {
        let expected_db = pg_harness::test_database();
        let actual_db = pg_harness::test_database();
        let child = "CREATE TABLE enfant (a int, b int, CONSTRAINT enfant_fk FOREIGN KEY (a, b) REFERENCES parent (a, b));";
        expected_db
            .client()
            .batch_execute(&format!(
                "CREATE TABLE parent (a int NOT NULL, b int NOT NULL, c text, CONSTRAINT parent_ab UNIQUE (a, b)); {child}"
            ))
            .unwrap();
        actual_db
            .client()
            .batch_execute(&format!(
                "CREATE TABLE parent (a int NOT NULL, b int NOT NULL, c text, CONSTRAINT parent_ab UNIQUE (a, b) INCLUDE (c)); {child}"
            ))
            .unwrap();
        let lines = report(&mut expected_db.client(), &mut actual_db.client());
        assert_eq!(
            lines,
            [
                "constraint public.parent.parent_ab [review]: migrations build UNIQUE (a, b); the database has UNIQUE (a, b) INCLUDE (c) => "
            ],
            "{lines:#?}"
        );
    }

    #[test]
    fn an_index_left_invalid_by_a_failed_concurrent_build_is_drift() {
        let expected_db = pg_harness::test_database();
        let actual_db = pg_harness::test_database();
        let schema =
            "CREATE TABLE tags (label text); CREATE UNIQUE INDEX tags_label ON tags (label);";
        expected_db.client().batch_execute(schema).unwrap();
        let mut actual = actual_db.client();
        actual
            .batch_execute(
                "CREATE TABLE tags (label text); INSERT INTO tags VALUES ('été'), ('été');",
            )
            .unwrap();
        // Fails on the duplicate and leaves the index behind, INVALID.
        assert!(
            actual
                .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY tags_label ON tags (label)")
                .is_err()
        );
        let lines = report(&mut expected_db.client(), &mut actual);
        assert_eq!(
            lines,
            [
                "index public.tags.tags_label [safe]: migrations build valid; the database has INVALID (an index build that failed or was interrupted) => DROP INDEX CONCURRENTLY IF EXISTS public.tags_label;\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tags_label ON public.tags USING btree (label);"
            ],
            "{lines:#?}"
        );
    }
}
