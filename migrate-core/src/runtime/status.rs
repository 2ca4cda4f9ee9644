//! Comparing the binary's migrations with the history table: what is applied, pending, ahead,
//! edited or interrupted. Pure functions over the two lists.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::Difference;
use super::error::Error;
use super::history::{HistoryRow, RowState};
use crate::{Migration, Migrations};

/// An applied revision this binary does not contain (the database is ahead, or diverged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AheadRevision {
    pub revision: String,
    /// Whether the binary's head is among its ancestors (provable from the stored parents): the
    /// database only moved forward from what this binary knows, as after a rollback deploy.
    pub descends_from_head: bool,
}

/// A no-transaction migration that started and did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub revision: String,
    pub statements_done: usize,
    pub statements_total: usize,
}

#[derive(Debug, Clone)]
pub struct Status {
    /// Whether the history table exists.
    pub initialized: bool,
    /// History rows of revisions this binary contains, in application order. In the report
    /// of a run that found the history unchanged since it was last complete (its digest), and
    /// for the migrations a run applied itself, a row holds what the binary knows (revision,
    /// parents, message, checksum) but no time or author: [`Migrator::status`] reads them.
    ///
    /// [`Migrator::status`]: super::protocol::Migrator::status
    pub applied: Vec<HistoryRow>,
    /// Migrations not applied yet, in application order (an interrupted one included).
    pub pending: Vec<&'static Migration>,
    pub ahead: Vec<AheadRevision>,
    /// `(revision, path)` of applied migrations whose file changed since.
    pub checksum_mismatches: Vec<(String, String)>,
    pub interrupted: Option<Interrupted>,
    /// The binary's head revision.
    pub head: Option<&'static str>,
    /// Where the live schema differs from the snapshot embedded with the migrations; `None`
    /// when nothing was compared (no snapshot, or the database is not at the binary's head).
    pub schema_drift: Option<Vec<Difference>>,
    /// A squash this database ran only part of: its revision, and the replaced revisions the
    /// history has. Applying the squash would create what they created again.
    pub partly_squashed: Option<(String, Vec<String>)>,
}

/// How a readiness endpoint should report the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Up to date.
    Pass,
    /// Usable, but the database is ahead of the binary (a rollback deploy), or its schema
    /// differs from the snapshot of what the migrations build.
    Warn,
    /// Pending work, edited migrations or a diverged history.
    Fail,
}

impl Status {
    pub fn compute(migrations: &Migrations, rows: Option<&[HistoryRow]>) -> Status {
        let rows = rows.unwrap_or_default();
        let by_revision: BTreeMap<&str, &HistoryRow> =
            rows.iter().map(|r| (r.revision.as_ref(), r)).collect();
        // A squashed migration's replaced revisions are its own: a database that ran them is
        // not ahead of the binary.
        let known: BTreeSet<&str> = migrations
            .iter()
            .flat_map(|m| std::iter::once(m.revision()).chain(m.replaces().iter().copied()))
            .collect();
        let mut status = Status::nothing_yet(migrations, !rows.is_empty());
        for migration in migrations {
            // A database that ran every revision a squash replaces recorded its own revision
            // with the text it had then: that row stands for the squashed file.
            let ran_what_it_squashed = !migration.replaces().is_empty()
                && migration.replaces().iter().all(|r| {
                    by_revision
                        .get(r)
                        .is_some_and(|row| row.state == RowState::Applied)
                });
            match by_revision.get(migration.revision()) {
                Some(row) if row.state == RowState::Applied => {
                    if row.checksum != migration.checksum() && !ran_what_it_squashed {
                        status
                            .checksum_mismatches
                            .push((migration.revision().to_owned(), migration.path().to_owned()));
                    }
                    status.applied.push((*row).clone());
                }
                Some(row) => {
                    status.interrupted = Some(Interrupted {
                        revision: row.revision.to_string(),
                        statements_done: row.statements_done,
                        statements_total: migration.statements().len(),
                    });
                    status.pending.push(migration);
                }
                None => {
                    let ran: Vec<String> = migration
                        .replaces()
                        .iter()
                        .filter(|r| by_revision.contains_key(*r))
                        .map(|r| (*r).to_owned())
                        .collect();
                    if !ran.is_empty() {
                        status.partly_squashed = Some((migration.revision().to_owned(), ran));
                    }
                    status.pending.push(migration);
                }
            }
        }
        // Parents of every revision either side knows, to walk ancestry through both.
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for migration in migrations {
            parents.insert(migration.revision(), migration.parents().to_vec());
        }
        for row in rows {
            parents
                .entry(row.revision.as_ref())
                .or_insert_with(|| row.parents.iter().map(AsRef::as_ref).collect());
        }
        for row in rows.iter().filter(|r| !known.contains(r.revision.as_ref())) {
            let descends_from_head = status
                .head
                .is_some_and(|head| is_ancestor(&parents, head, &row.revision));
            status.ahead.push(AheadRevision {
                revision: row.revision.to_string(),
                descends_from_head,
            });
        }
        status
    }

    /// The status of a database whose history is exactly `migrations`, all applied, as the
    /// history's digest proves without reading the rows: each applied row holds what the
    /// binary knows of its migration, with no time, duration or author (the history has them).
    pub fn all_applied(migrations: &Migrations) -> Status {
        Status {
            applied: migrations
                .iter()
                .map(|m| super::history::applied_row(m, 0, String::new()))
                .collect(),
            ..Status::nothing_yet(migrations, true)
        }
    }

    /// A status with nothing applied, pending or found yet, for `migrations`.
    fn nothing_yet(migrations: &Migrations, initialized: bool) -> Status {
        Status {
            initialized,
            applied: Vec::new(),
            pending: Vec::new(),
            ahead: Vec::new(),
            checksum_mismatches: Vec::new(),
            interrupted: None,
            head: migrations.head().map(Migration::revision),
            schema_drift: None,
            partly_squashed: None,
        }
    }

    /// Whether the history holds exactly the binary's migrations, all applied: what the
    /// history's digest may stand for.
    pub fn is_exactly_applied(&self) -> bool {
        self.initialized
            && self.is_up_to_date()
            && self.ahead.is_empty()
            && self.interrupted.is_none()
    }

    /// The first pending migration, or none when up to date.
    pub fn next(&self) -> Option<&'static Migration> {
        self.pending.first().copied()
    }

    pub fn is_up_to_date(&self) -> bool {
        self.pending.is_empty() && self.checksum_mismatches.is_empty() && !self.is_diverged()
    }

    /// Applied revisions unknown to the binary that do not build on its head, or a database
    /// ahead of the binary that also misses some of the binary's migrations.
    pub fn is_diverged(&self) -> bool {
        self.ahead.iter().any(|a| !a.descends_from_head)
            || (!self.ahead.is_empty() && !self.pending.is_empty())
    }

    pub fn health(&self) -> Health {
        if !self.is_up_to_date() {
            Health::Fail
        } else if self.ahead.is_empty() && !self.has_schema_drift() {
            Health::Pass
        } else {
            Health::Warn
        }
    }

    /// Whether the live schema differs from the embedded snapshot.
    pub fn has_schema_drift(&self) -> bool {
        self.schema_drift.as_ref().is_some_and(|d| !d.is_empty())
    }

    /// The errors that must stop a deploy: edited applied migrations and a diverged history.
    pub fn check(&self) -> Result<(), Error> {
        if !self.checksum_mismatches.is_empty() {
            return Err(Error::ChecksumMismatch {
                revisions: self.checksum_mismatches.clone(),
            });
        }
        if let Some((revision, ran)) = &self.partly_squashed {
            return Err(Error::PartlySquashed {
                revision: revision.clone(),
                ran: ran.clone(),
            });
        }
        if self.is_diverged() {
            let unknown: Vec<String> = self.ahead.iter().map(|a| a.revision.clone()).collect();
            return Err(Error::Diverged {
                unknown,
                head: self.head.unwrap_or("(none)").to_owned(),
            });
        }
        Ok(())
    }
}

/// Whether `ancestor` is reachable from `revision` by following parents.
fn is_ancestor(parents: &BTreeMap<&str, Vec<&str>>, ancestor: &str, revision: &str) -> bool {
    let mut stack = vec![revision];
    let mut seen = BTreeSet::new();
    while let Some(current) = stack.pop() {
        if current == ancestor {
            return true;
        }
        if seen.insert(current) {
            stack.extend(parents.get(current).into_iter().flatten().copied());
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::__private::{MigrationParts, migration, migrations};

    pub(crate) const fn m(revision: &'static str, parents: &'static [&'static str]) -> Migration {
        with_checksum(revision, parents, "sum")
    }

    pub(crate) const fn with_checksum(
        revision: &'static str,
        parents: &'static [&'static str],
        checksum: &'static str,
    ) -> Migration {
        migration(MigrationParts {
            revision,
            parents,
            message: None,
            no_transaction: false,
            lock_timeout: None,
            statement_timeout: None,
            path: "m.sql",
            sql: "",
            statements: &[],
            checksum,
            self_contained: false,
            replaces: &[],
        })
    }

    static LIST: [Migration; 3] = [m("a", &[]), m("b", &["a"]), m("c", &["b"])];

    /// `c` squashed: one root that replaces `a` and `b` and keeps `c`'s revision, then `d`.
    static SQUASHED_LIST: [Migration; 2] = [
        migration(MigrationParts {
            replaces: &["a", "b"],
            ..MigrationParts {
                revision: "c",
                parents: &[],
                message: None,
                no_transaction: false,
                lock_timeout: None,
                statement_timeout: None,
                path: "c_squash.sql",
                sql: "",
                statements: &[],
                checksum: "squashed",
                self_contained: false,
                replaces: &[],
            }
        }),
        m("d", &["c"]),
    ];
    static SQUASHED: Migrations = migrations(&SQUASHED_LIST);

    #[test]
    fn a_squash_stands_for_the_revisions_it_replaces() {
        let revisions = |list: &[&Migration]| list.iter().map(|m| m.revision()).collect::<Vec<_>>();
        // A database that ran the old history: up to date, nothing edited, nothing ahead.
        let old = vec![
            row("a", &[]),
            row("b", &["a"]),
            row("c", &["b"]),
            row("d", &["c"]),
        ];
        let status = Status::compute(&SQUASHED, Some(&old));
        assert_eq!(status.health(), Health::Pass, "{status:?}");
        assert!(status.checksum_mismatches.is_empty() && status.ahead.is_empty());
        // It ran the old history up to c: only d is pending.
        let status = Status::compute(&SQUASHED, Some(&old[..3]));
        assert_eq!(revisions(&status.pending), ["d"]);
        // A fresh database runs the squash.
        let status = Status::compute(&SQUASHED, None);
        assert_eq!(revisions(&status.pending), ["c", "d"]);
        // c's old text with a replaced revision missing from the history is an edit.
        // A database that ran a and b, not c: the squash would create their tables again.
        let status = Status::compute(&SQUASHED, Some(&old[..2]));
        assert_eq!(
            status.partly_squashed,
            Some(("c".to_owned(), vec!["a".to_owned(), "b".to_owned()]))
        );
        assert_eq!(
            status
                .check()
                .unwrap_err()
                .to_string()
                .lines()
                .next()
                .unwrap(),
            "the database ran 2 of the revisions the squash `c` replaces (a, b), and not `c` itself; the squash would create what they created again"
        );
        let partial = vec![row("b", &["a"]), row("c", &["b"])];
        let status = Status::compute(&SQUASHED, Some(&partial));
        assert_eq!(status.checksum_mismatches.len(), 1, "{status:?}");
    }
    pub(crate) static SET: Migrations = migrations(&LIST);

    pub(crate) fn row(revision: &str, parents: &[&str]) -> HistoryRow {
        HistoryRow {
            revision: revision.to_owned().into(),
            parents: parents.iter().map(|p| p.to_string().into()).collect(),
            message: None,
            checksum: "sum".into(),
            state: RowState::Applied,
            statements_done: 0,
            failed_statement: None,
            applied_at: String::new(),
            applied_at_us: 0,
            execution_ms: 0,
            applied_by: String::new(),
        }
    }

    #[test]
    fn fresh_database_has_everything_pending() {
        let status = Status::compute(&SET, None);
        assert!(!status.initialized);
        assert_eq!(
            status
                .pending
                .iter()
                .map(|m| m.revision())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(status.health(), Health::Fail);
    }

    #[test]
    fn up_to_date_then_ahead_then_diverged() {
        let mut rows = vec![row("a", &[]), row("b", &["a"]), row("c", &["b"])];
        assert_eq!(Status::compute(&SET, Some(&rows)).health(), Health::Pass);
        rows.push(row("d", &["c"]));
        rows.push(row("e", &["d"]));
        let ahead = Status::compute(&SET, Some(&rows));
        assert_eq!(ahead.health(), Health::Warn);
        assert!(ahead.check().is_ok());
        rows.push(row("x", &["b"]));
        let diverged = Status::compute(&SET, Some(&rows));
        assert_eq!(diverged.health(), Health::Fail);
        assert!(matches!(diverged.check(), Err(Error::Diverged { .. })));
    }

    #[test]
    fn ahead_while_missing_one_of_ours_is_diverged() {
        let rows = vec![row("a", &[]), row("b", &["a"]), row("d", &["c"])];
        let status = Status::compute(&SET, Some(&rows));
        assert!(status.ahead[0].descends_from_head);
        assert!(status.is_diverged(), "c is not applied, yet d built on it");
    }

    #[test]
    fn edited_and_interrupted() {
        let mut rows = vec![row("a", &[]), row("b", &["a"])];
        rows[0].checksum = "other".into();
        rows[1].state = RowState::Running;
        rows[1].statements_done = 1;
        let status = Status::compute(&SET, Some(&rows));
        assert_eq!(
            status.checksum_mismatches,
            [("a".to_owned(), "m.sql".to_owned())]
        );
        assert_eq!(
            status
                .interrupted
                .as_ref()
                .map(|i| (i.revision.as_str(), i.statements_done)),
            Some(("b", 1))
        );
        assert_eq!(status.next().map(|m| m.revision()), Some("b"));
        assert!(matches!(
            status.check(),
            Err(Error::ChecksumMismatch { .. })
        ));
    }
}
