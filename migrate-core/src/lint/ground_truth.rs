//! What the lock model's examples run against on a live server: the schema of LOCKS.md, and
//! which of its relations each example locks. `tests/lock_ground_truth.rs` runs every row's
//! example there and reads `pg_locks`.

use super::locks::Op;

/// The tablespace `Op::SetTablespace`'s example moves `t` to: created in place (inside the data
/// directory) once per server, before the fixture, by a superuser.
pub const GROUND_TRUTH_TABLESPACE: [&str; 2] = [
    "SET allow_in_place_tablespaces = on",
    "CREATE TABLESPACE migrate_ground_truth LOCATION ''",
];

/// The schema the model's examples run against, as in LOCKS.md: `t` with 2000 rows, a primary
/// key, a unique index, an index, a foreign key to `u`, a NOT VALID check and a NOT VALID foreign
/// key, a trigger; a materialized view `mv`; a partitioned `pt` with partition `p1` and a
/// detached `p2` holding rows for the next range; `q` with a unique index on a nullable column.
pub const GROUND_TRUTH_FIXTURE: &str = "CREATE TABLE u (id int PRIMARY KEY);
INSERT INTO u SELECT g FROM generate_series(1, 2000) AS g;
CREATE TABLE t (id int PRIMARY KEY, a int, b int, c int, v varchar(10), u_id int, CONSTRAINT t_u_fk FOREIGN KEY (u_id) REFERENCES u (id));
INSERT INTO t SELECT g, g, g, g, 'x', g FROM generate_series(1, 2000) AS g;
CREATE INDEX t_a_idx ON t (a);
CREATE UNIQUE INDEX t_b_uidx ON t (b);
ALTER TABLE t ADD CONSTRAINT t_b_check CHECK (b > 0) NOT VALID;
ALTER TABLE t ADD CONSTRAINT t_u_nv_fk FOREIGN KEY (u_id) REFERENCES u (id) NOT VALID;
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_noop BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION noop();
CREATE MATERIALIZED VIEW mv AS SELECT id FROM t;
CREATE UNIQUE INDEX mv_id ON mv (id);
CREATE TABLE pt (k int) PARTITION BY RANGE (k);
CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (100);
CREATE TABLE p2 (k int);
INSERT INTO p2 SELECT 100 + g % 100 FROM generate_series(1, 500) AS g;
CREATE TABLE q (a int);
INSERT INTO q SELECT g FROM generate_series(1, 500) AS g;
CREATE UNIQUE INDEX q_a_uidx ON q (a);
CREATE VIEW tv AS SELECT a FROM q;
CREATE TABLE w (k varchar(10));
INSERT INTO w SELECT 'k' || g FROM generate_series(1, 500) AS g;
CREATE INDEX w_lower_k ON w (lower(k));
ANALYZE";

/// Which relations a row's example locks: (the model's `table`, the model's `other`).
pub fn example_relations(op: Op) -> (&'static str, Option<&'static str>) {
    match op {
        Op::AddColumnReferences
        | Op::AddColumnReferencesValidated
        | Op::AddForeignKey
        | Op::AddForeignKeyNotValid
        | Op::ValidateForeignKey
        | Op::DropForeignKey
        | Op::AlterKeyColumnType => ("t", Some("u")),
        Op::DropTableCascade => ("u", Some("t")),
        Op::DropTable => ("p2", None),
        Op::DropView => ("tv", None),
        Op::AddPrimaryKeyUsingIndex => ("q", None),
        Op::AlterColumnTypeRebuildsIndex => ("w", None),
        Op::AlterIndexRename => ("t_a_idx", None),
        Op::RefreshMaterializedView
        | Op::RefreshMaterializedViewConcurrently
        | Op::DropMaterializedView => ("mv", None),
        Op::AttachPartition => ("pt", Some("p2")),
        Op::DetachPartition | Op::DetachPartitionConcurrently => ("pt", Some("p1")),
        _ => ("t", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::locks::{LOCK_MODEL, first_version};

    /// The walker recognises every example as its row's statement kind (with the fixture's schema
    /// known, as it would be from earlier migrations).
    #[test]
    fn every_example_classifies_to_its_row() {
        use crate::lint::rules::test_support::migrations;
        use crate::lint::{LintConfig, lock_plan};
        for row in LOCK_MODEL {
            let example = if row.transactional {
                format!("{};", row.example)
            } else {
                format!("-- migrate:no-transaction\n{};", row.example)
            };
            // Judged for a server that accepts the statement.
            let default = LintConfig::default();
            let config = LintConfig {
                target_version: default.target_version.max(first_version(row.op)),
                ..default
            };
            let plan = lock_plan(&migrations(&[GROUND_TRUTH_FIXTURE, &example]), &config);
            let effects: Vec<_> = plan[1].iter().flat_map(|s| s.effects.iter()).collect();
            let effect = effects.iter().find(|e| e.effect.op == row.op);
            let ops: Vec<Op> = effects.iter().map(|e| e.effect.op).collect();
            let Some(effect) = effect else {
                panic!("{:?}: `{}` classified as {ops:?}", row.op, row.example)
            };
            let (table, other) = example_relations(row.op);
            if row.op != Op::AlterIndexRename {
                assert_eq!(effect.effect.table, table, "{:?}", row.op);
            }
            if row.other.is_some() {
                assert_eq!(effect.effect.other.as_deref(), other, "{:?}", row.op);
            }
        }
    }
}
