//! One difference between what the migrations build and what a database has, and the fix
//! statements that reconcile it, each in the phase of the reconciling migration it runs in.

use std::fmt;

/// How a difference should be reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Adding what is missing, in a form that does not stall traffic.
    Safe,
    /// A change someone must look at (a type, a default, NOT NULL, a backfill).
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

/// When a fix statement runs within the reconciling migration: PostgreSQL accepts a foreign key
/// only once both columns have the same type, and a type change of a referenced key only once
/// the foreign keys on it are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Extensions, schemas, types and sequences.
    Objects,
    CreateTables,
    AddColumns,
    /// Foreign keys that stand in the way of a type change, dropped to be added back after it.
    DropDependents,
    ChangeTypes,
    /// Defaults, backfills and NOT NULL.
    ColumnSettings,
    /// Checks, primary keys, unique keys and exclusions, and renamed constraints.
    Keys,
    /// Foreign keys, once the keys they reference exist.
    ForeignKeys,
    Indexes,
    /// Functions, views, triggers, row security, policies and comments.
    Code,
    /// Drops, commented out in a written migration.
    Destructive,
}

/// One statement (or a few that belong together) of a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub phase: Phase,
    pub sql: String,
}

/// One difference between what the migrations build and what the database has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `table public.users`, `column public.users.email`, `index public.users.users_email_idx`…
    pub object: String,
    /// What the migrations build (`None`: they do not build it).
    pub expected: Option<String>,
    /// What the database has (`None`: it does not have it).
    pub actual: Option<String>,
    pub severity: Severity,
    /// The SQL that would make the database what the migrations build, in this project's safe
    /// forms; empty when it cannot be written without a human.
    pub fix: Vec<Fix>,
    /// Where its fixes go within their phase of a reconciling migration: the server's
    /// dependency order (see `depend`), reversed for drops.
    pub(crate) position: usize,
}

impl Difference {
    pub(super) fn at(self, position: usize) -> Difference {
        Difference { position, ..self }
    }

    /// The fix as one SQL text, `None` when there is none.
    pub fn fix_sql(&self) -> Option<String> {
        (!self.fix.is_empty()).then(|| {
            self.fix
                .iter()
                .map(|f| f.sql.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
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

pub(super) fn fix(phase: Phase, sql: impl Into<String>) -> Fix {
    Fix {
        phase,
        sql: sql.into(),
    }
}
