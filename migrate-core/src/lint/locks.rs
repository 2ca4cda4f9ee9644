//! The lock model: for each kind of statement, the lock it takes on its table (and on the other
//! table it involves: a foreign key's referenced table, a partition), and what it costs while
//! holding it. One table of data, checked row by row against a live server by
//! `tests/lock_ground_truth.rs` (the method of LOCKS.md: `pg_locks`, `relfilenode`, `seq_scan`).

/// PostgreSQL's table lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// The name `pg_locks.mode` uses.
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    pub fn from_pg_name(name: &str) -> Option<LockMode> {
        ALL_MODES.iter().copied().find(|m| m.pg_name() == name)
    }

    /// The name in SQL and in messages.
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// SHARE and stronger block INSERT/UPDATE/DELETE.
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::Share
    }

    /// ACCESS EXCLUSIVE blocks plain SELECT too.
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusive
    }

    /// What live traffic this lock stops, for messages.
    pub fn blocks(self) -> &'static str {
        if self.blocks_reads() {
            "blocks every read and write"
        } else if self.blocks_writes() {
            "blocks every write"
        } else {
            "blocks schema changes only"
        }
    }
}

pub const ALL_MODES: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

/// What a statement does while holding its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cost {
    /// Catalog change only.
    Instant,
    /// Reads every row (a validation, an index build, a backfill).
    Scan,
    /// Writes a new copy of the table and its indexes.
    Rewrite,
}

impl Cost {
    pub fn is_slow(self) -> bool {
        self != Cost::Instant
    }
}

/// The statement kinds the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    CreateIndex,
    CreateIndexConcurrently,
    DropIndex,
    DropIndexConcurrently,
    Reindex,
    ReindexConcurrently,
    AddColumn,
    AddColumnVolatileDefault,
    /// `ADD COLUMN … GENERATED ALWAYS AS (…) VIRTUAL` (PostgreSQL 18+): computed when read,
    /// nothing written. Before 18 the server refuses it.
    AddColumnVirtualGenerated,
    AddColumnReferences,
    /// `ADD COLUMN … DEFAULT x REFERENCES …`: every row's value is checked against the other
    /// table under the locks (without a default the new column is empty and nothing is checked).
    AddColumnReferencesValidated,
    /// `ADD COLUMN … UNIQUE` / `PRIMARY KEY`: the index is built under ACCESS EXCLUSIVE.
    AddColumnUnique,
    /// `ADD COLUMN … CHECK (…)`: every row is checked under ACCESS EXCLUSIVE, even when the new
    /// column is empty.
    AddColumnCheck,
    AlterColumnTypeRewrite,
    AlterColumnTypeCompatible,
    /// A type change that keeps the rows, on a column of a foreign key (either side): the key is
    /// dropped and made again, under ACCESS EXCLUSIVE on both of its tables.
    AlterKeyColumnType,
    /// A type change that keeps the rows, on a column an index reads in an expression or its
    /// predicate: that index is built again, reading every row under ACCESS EXCLUSIVE.
    AlterColumnTypeRebuildsIndex,
    SetNotNull,
    DropNotNullOrDefault,
    SetStatisticsOrStorage,
    /// `ALTER COLUMN … SET STORAGE` / `SET COMPRESSION`: ACCESS EXCLUSIVE on PostgreSQL 15.
    SetStorageOrCompression,
    AddForeignKey,
    AddForeignKeyNotValid,
    AddCheck,
    AddCheckNotValid,
    ValidateCheck,
    ValidateForeignKey,
    AddUniqueOrPrimaryKey,
    AddConstraintUsingIndex,
    /// `ADD PRIMARY KEY USING INDEX`: the columns must be proven NOT NULL, by a scan unless
    /// they already are.
    AddPrimaryKeyUsingIndex,
    DropCheckConstraint,
    DropForeignKey,
    DropTableCascade,
    Rename,
    AlterIndexRename,
    DropColumn,
    DropTable,
    /// `DROP VIEW`: ACCESS EXCLUSIVE on the view (and, with CASCADE, on the views and
    /// materialized views built on it) until commit, so every query of it waits.
    DropView,
    Truncate,
    VacuumFull,
    Cluster,
    SetLoggedUnlogged,
    /// `ALTER TABLE … SET TABLESPACE`: copies the table and its data files.
    SetTablespace,
    /// `LOCK TABLE … IN <mode> MODE`: the mode written in the statement (the row's mode is the
    /// default, ACCESS EXCLUSIVE), held until commit.
    LockTable,
    CreateTrigger,
    DropTrigger,
    /// `ALTER TRIGGER … ON t RENAME TO …`.
    AlterTrigger,
    EnableDisableTrigger,
    DropMaterializedView,
    /// `ALTER TABLE … ALTER CONSTRAINT` (deferrability of a foreign key).
    AlterConstraint,
    /// `CREATE STATISTICS … FROM t`.
    CreateStatistics,
    /// `ALTER TABLE … ENABLE / DISABLE / FORCE / NO FORCE ROW LEVEL SECURITY`.
    RowSecurity,
    /// `CREATE / ALTER / DROP POLICY … ON t`.
    Policy,
    RefreshMaterializedView,
    RefreshMaterializedViewConcurrently,
    AttachPartition,
    DetachPartition,
    DetachPartitionConcurrently,
    /// UPDATE / DELETE / INSERT … SELECT on an existing table: a backfill.
    WriteRows,
    /// SELECT / CREATE TABLE AS / INSERT … SELECT reading an existing table.
    ReadRows,
}

/// One row of the model.
#[derive(Debug, Clone, Copy)]
pub struct LockRow {
    pub op: Op,
    /// Lock on the statement's table (`None`: not a table lock, e.g. a type).
    pub table: Option<LockMode>,
    /// Lock on the other table involved (referenced table, partition, FK peer).
    pub other: Option<LockMode>,
    pub cost: Cost,
    /// Allowed inside a transaction block.
    pub transactional: bool,
    /// A representative statement on the ground-truth fixture (table `t` with rows, indexes, a
    /// FK `t_u_fk` to `u`, a NOT VALID check `t_b_check`, partitioned `pt` with detached `p2`).
    pub example: &'static str,
}

const fn row(
    op: Op,
    table: Option<LockMode>,
    other: Option<LockMode>,
    cost: Cost,
    example: &'static str,
) -> LockRow {
    LockRow {
        op,
        table,
        other,
        cost,
        transactional: true,
        example,
    }
}

const fn outside_tx(op: Op, table: LockMode, cost: Cost, example: &'static str) -> LockRow {
    LockRow {
        op,
        table: Some(table),
        other: None,
        cost,
        transactional: false,
        example,
    }
}

use Cost::{Instant, Rewrite, Scan};
use LockMode::*;

/// The model, for PostgreSQL 15 (the default target). Version-dependent facts are applied by
/// [`lookup`].
pub static LOCK_MODEL: &[LockRow] = &[
    row(
        Op::CreateIndex,
        Some(Share),
        None,
        Scan,
        "CREATE INDEX t_c_idx ON t (c)",
    ),
    outside_tx(
        Op::CreateIndexConcurrently,
        ShareUpdateExclusive,
        Scan,
        "CREATE INDEX CONCURRENTLY t_c_idx ON t (c)",
    ),
    row(
        Op::DropIndex,
        Some(AccessExclusive),
        None,
        Instant,
        "DROP INDEX t_a_idx",
    ),
    outside_tx(
        Op::DropIndexConcurrently,
        ShareUpdateExclusive,
        Instant,
        "DROP INDEX CONCURRENTLY t_a_idx",
    ),
    row(Op::Reindex, Some(Share), None, Scan, "REINDEX TABLE t"),
    outside_tx(
        Op::ReindexConcurrently,
        ShareUpdateExclusive,
        Scan,
        "REINDEX TABLE CONCURRENTLY t",
    ),
    row(
        Op::AddColumn,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ADD COLUMN d int DEFAULT 0",
    ),
    row(
        Op::AddColumnVolatileDefault,
        Some(AccessExclusive),
        None,
        Rewrite,
        "ALTER TABLE t ADD COLUMN d float8 DEFAULT random()",
    ),
    row(
        Op::AddColumnReferences,
        Some(AccessExclusive),
        Some(ShareRowExclusive),
        Instant,
        "ALTER TABLE t ADD COLUMN u2 int REFERENCES u (id)",
    ),
    row(
        Op::AddColumnReferencesValidated,
        Some(AccessExclusive),
        Some(ShareRowExclusive),
        Scan,
        "ALTER TABLE t ADD COLUMN u3 int DEFAULT 1 REFERENCES u (id)",
    ),
    row(
        Op::AddColumnUnique,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE t ADD COLUMN d int UNIQUE",
    ),
    row(
        Op::AddColumnCheck,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE t ADD COLUMN d int CHECK (d > 0)",
    ),
    row(
        Op::AlterColumnTypeRewrite,
        Some(AccessExclusive),
        None,
        Rewrite,
        "ALTER TABLE t ALTER COLUMN a TYPE bigint",
    ),
    row(
        Op::AlterColumnTypeCompatible,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ALTER COLUMN v TYPE varchar(20)",
    ),
    row(
        Op::AddColumnVirtualGenerated,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) VIRTUAL",
    ),
    row(
        Op::AlterKeyColumnType,
        Some(AccessExclusive),
        Some(AccessExclusive),
        Instant,
        "ALTER TABLE t ALTER COLUMN u_id TYPE int",
    ),
    row(
        Op::AlterColumnTypeRebuildsIndex,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE w ALTER COLUMN k TYPE text",
    ),
    row(
        Op::SetNotNull,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE t ALTER COLUMN c SET NOT NULL",
    ),
    row(
        Op::DropNotNullOrDefault,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ALTER COLUMN c SET DEFAULT 5",
    ),
    row(
        Op::SetStatisticsOrStorage,
        Some(ShareUpdateExclusive),
        None,
        Instant,
        "ALTER TABLE t ALTER COLUMN c SET STATISTICS 200",
    ),
    row(
        Op::SetStorageOrCompression,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ALTER COLUMN v SET STORAGE EXTERNAL",
    ),
    row(
        Op::AddForeignKey,
        Some(ShareRowExclusive),
        Some(ShareRowExclusive),
        Scan,
        "ALTER TABLE t ADD CONSTRAINT t_u2_fk FOREIGN KEY (u_id) REFERENCES u (id)",
    ),
    row(
        Op::AddForeignKeyNotValid,
        Some(ShareRowExclusive),
        Some(ShareRowExclusive),
        Instant,
        "ALTER TABLE t ADD CONSTRAINT t_u2_fk FOREIGN KEY (u_id) REFERENCES u (id) NOT VALID",
    ),
    row(
        Op::AddCheck,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a > 0)",
    ),
    row(
        Op::AddCheckNotValid,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a > 0) NOT VALID",
    ),
    row(
        Op::ValidateCheck,
        Some(ShareUpdateExclusive),
        None,
        Scan,
        "ALTER TABLE t VALIDATE CONSTRAINT t_b_check",
    ),
    row(
        Op::ValidateForeignKey,
        Some(ShareUpdateExclusive),
        Some(RowShare),
        Scan,
        "ALTER TABLE t VALIDATE CONSTRAINT t_u_nv_fk",
    ),
    row(
        Op::AddUniqueOrPrimaryKey,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE t ADD CONSTRAINT t_c_key UNIQUE (c)",
    ),
    row(
        Op::AddConstraintUsingIndex,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ADD CONSTRAINT t_b_key UNIQUE USING INDEX t_b_uidx",
    ),
    row(
        Op::AddPrimaryKeyUsingIndex,
        Some(AccessExclusive),
        None,
        Scan,
        "ALTER TABLE q ADD CONSTRAINT q_pkey PRIMARY KEY USING INDEX q_a_uidx",
    ),
    row(
        Op::DropCheckConstraint,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t DROP CONSTRAINT t_b_check",
    ),
    row(
        Op::DropForeignKey,
        Some(AccessExclusive),
        Some(AccessExclusive),
        Instant,
        "ALTER TABLE t DROP CONSTRAINT t_u_fk",
    ),
    row(
        Op::DropTableCascade,
        Some(AccessExclusive),
        Some(AccessExclusive),
        Instant,
        "DROP TABLE u CASCADE",
    ),
    row(
        Op::Rename,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t RENAME COLUMN c TO c2",
    ),
    row(
        Op::AlterIndexRename,
        Some(ShareUpdateExclusive),
        None,
        Instant,
        "ALTER INDEX t_a_idx RENAME TO t_a_idx2",
    ),
    row(
        Op::DropColumn,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t DROP COLUMN c",
    ),
    row(
        Op::DropTable,
        Some(AccessExclusive),
        None,
        Instant,
        "DROP TABLE p2",
    ),
    row(
        Op::DropView,
        Some(AccessExclusive),
        None,
        Instant,
        "DROP VIEW tv",
    ),
    row(
        Op::Truncate,
        Some(AccessExclusive),
        None,
        Instant,
        "TRUNCATE t",
    ),
    outside_tx(Op::VacuumFull, AccessExclusive, Rewrite, "VACUUM FULL t"),
    row(
        Op::Cluster,
        Some(AccessExclusive),
        None,
        Rewrite,
        "CLUSTER t USING t_pkey",
    ),
    row(
        Op::SetLoggedUnlogged,
        Some(AccessExclusive),
        None,
        Rewrite,
        "ALTER TABLE t SET UNLOGGED",
    ),
    row(
        Op::SetTablespace,
        Some(AccessExclusive),
        None,
        Rewrite,
        "ALTER TABLE t SET TABLESPACE migrate_ground_truth",
    ),
    row(
        Op::LockTable,
        Some(AccessExclusive),
        None,
        Instant,
        "LOCK TABLE t",
    ),
    row(
        Op::CreateTrigger,
        Some(ShareRowExclusive),
        None,
        Instant,
        "CREATE TRIGGER t_trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION noop()",
    ),
    row(
        Op::DropTrigger,
        Some(AccessExclusive),
        None,
        Instant,
        "DROP TRIGGER t_noop ON t",
    ),
    row(
        Op::AlterTrigger,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TRIGGER t_noop ON t RENAME TO t_noop_renamed",
    ),
    row(
        Op::DropMaterializedView,
        Some(AccessExclusive),
        None,
        Instant,
        "DROP MATERIALIZED VIEW mv",
    ),
    row(
        Op::AlterConstraint,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ALTER CONSTRAINT t_u_fk DEFERRABLE",
    ),
    row(
        Op::CreateStatistics,
        Some(ShareUpdateExclusive),
        None,
        Instant,
        "CREATE STATISTICS t_ab ON a, b FROM t",
    ),
    row(
        Op::RowSecurity,
        Some(AccessExclusive),
        None,
        Instant,
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    ),
    row(
        Op::Policy,
        Some(AccessExclusive),
        None,
        Instant,
        "CREATE POLICY t_policy ON t USING (true)",
    ),
    row(
        Op::EnableDisableTrigger,
        Some(ShareRowExclusive),
        None,
        Instant,
        "ALTER TABLE t DISABLE TRIGGER t_noop",
    ),
    row(
        Op::RefreshMaterializedView,
        Some(AccessExclusive),
        None,
        Rewrite,
        "REFRESH MATERIALIZED VIEW mv",
    ),
    row(
        Op::RefreshMaterializedViewConcurrently,
        Some(Exclusive),
        None,
        Scan,
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
    ),
    row(
        Op::AttachPartition,
        Some(ShareUpdateExclusive),
        Some(AccessExclusive),
        Scan,
        "ALTER TABLE pt ATTACH PARTITION p2 FOR VALUES FROM (100) TO (200)",
    ),
    row(
        Op::DetachPartition,
        Some(AccessExclusive),
        Some(AccessExclusive),
        Instant,
        "ALTER TABLE pt DETACH PARTITION p1",
    ),
    outside_tx(
        Op::DetachPartitionConcurrently,
        ShareUpdateExclusive,
        Instant,
        "ALTER TABLE pt DETACH PARTITION p1 CONCURRENTLY",
    ),
    row(
        Op::WriteRows,
        Some(RowExclusive),
        None,
        Scan,
        "UPDATE t SET c = 1",
    ),
    row(
        Op::ReadRows,
        Some(AccessShare),
        None,
        Scan,
        "SELECT count(*) FROM t",
    ),
];

/// The first PostgreSQL major version that accepts a row's statement.
pub fn first_version(op: Op) -> u32 {
    match op {
        Op::AddColumnVirtualGenerated => 18,
        _ => 0,
    }
}

/// The row for `op`, adjusted to the target PostgreSQL major version.
pub fn lookup(op: Op, target_version: u32) -> LockRow {
    let mut row = LOCK_MODEL
        .iter()
        .copied()
        .find(|r| r.op == op)
        .unwrap_or(LOCK_MODEL[0]);
    match op {
        // Before PG11 every ADD COLUMN with a default rewrote the table.
        Op::AddColumn if target_version < 11 => row.cost = Rewrite,
        // Before PG12 ALTER INDEX ... RENAME took ACCESS EXCLUSIVE; so did ATTACH on the parent.
        Op::AlterIndexRename if target_version < 12 => row.table = Some(AccessExclusive),
        Op::AttachPartition if target_version < 12 => row.table = Some(AccessExclusive),
        _ => {}
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_exactly_one_row() {
        for (i, a) in LOCK_MODEL.iter().enumerate() {
            for b in &LOCK_MODEL[i + 1..] {
                assert_ne!(a.op, b.op, "duplicate row for {:?}", a.op);
            }
        }
    }

    #[test]
    fn modes_order_and_names() {
        assert!(LockMode::Share.blocks_writes());
        assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
        assert!(LockMode::AccessExclusive.blocks_reads());
        for mode in ALL_MODES {
            assert_eq!(LockMode::from_pg_name(mode.pg_name()), Some(mode));
        }
    }

    #[test]
    fn version_dependent_facts() {
        assert_eq!(lookup(Op::AddColumn, 10).cost, Cost::Rewrite);
        assert_eq!(lookup(Op::AddColumn, 15).cost, Cost::Instant);
        assert_eq!(
            lookup(Op::AlterIndexRename, 11).table,
            Some(LockMode::AccessExclusive)
        );
    }
}
