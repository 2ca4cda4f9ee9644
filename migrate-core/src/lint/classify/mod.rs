//! What one statement does to which tables, read off squawk's syntax tree. The lock modes and
//! costs themselves come from the model table; this only recognises the statement kind.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::locks::{LockMode, Op};

mod alter_table;
mod indexes;
mod objects;
mod syntax;
mod tables;

use syntax::child;
pub use syntax::normalize;

/// One effect of a statement on a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub op: Op,
    /// The table locked with the model's `table` mode (normalised name).
    pub table: String,
    /// The other table, locked with the model's `other` mode.
    pub other: Option<String>,
    pub detail: Detail,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Detail {
    #[default]
    None,
    Column(String),
    /// `ALTER COLUMN c TYPE new_type [USING expression]`.
    TypeChange {
        column: String,
        new_type: String,
        /// The USING expression when it computes the values anew: anything but the column
        /// itself or a cast of it (those PostgreSQL judges like no USING at all, measured).
        computed: Option<String>,
    },
    /// An added or referenced constraint; for a check `c IS NOT NULL`, the column.
    Constraint {
        name: Option<String>,
        not_null_column: Option<String>,
    },
    Index(String),
    RenameColumn,
    RenameTable,
    /// ADD COLUMN NOT NULL without a default (fails on a non-empty table).
    RequiredColumn(String),
    /// `LOCK TABLE`: the mode the statement asks for.
    LockMode(LockMode),
}

/// Everything the linter needs to know about one statement.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    pub effects: Vec<Effect>,
    /// `CREATE TABLE` / `CREATE TABLE AS` / `CREATE MATERIALIZED VIEW`: a table with no traffic.
    pub creates_table: Option<String>,
    /// Columns and types of a created table (for later type changes).
    pub columns: Vec<(String, String)>,
    /// `CREATE INDEX`: the index and its table.
    pub creates_index: Option<(String, String)>,
    /// The foreign keys a created table or an ALTER TABLE defines.
    pub foreign_keys: Vec<ForeignKey>,
    /// Uses CONCURRENTLY (cannot run in a transaction block).
    pub concurrently: bool,
    /// A DO block or a function call: opaque, assumed to scan what it touches.
    pub opaque: bool,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT.
    pub transaction_control: bool,
    /// A statement (or an ALTER TABLE action) the lock model does not know: what it locks and
    /// what it costs is not checked.
    pub unknown: bool,
    /// Renames, so that what is known of the object follows it to its new name.
    pub renames: Vec<Rename>,
    /// `CREATE [OR REPLACE] VIEW`: the view and the tables it reads. Reading the view reads
    /// them.
    pub creates_view: Option<(String, Vec<String>)>,
    /// (table, column) pairs an index this statement builds covers: an index, a primary key,
    /// a unique constraint. A type change of such a column rebuilds the index.
    pub indexed_columns: Vec<(String, String)>,
    /// `CREATE INDEX`: each column of its table it reads, and whether an expression or the
    /// predicate reads it (`lower(keyword)`, `WHERE NOT processed`): a type change of such a
    /// column builds the index again even when the rows stay, which a plain column's does not.
    pub index_reads: Vec<(String, bool)>,
    /// `ADD COLUMN … DEFAULT f(…)`: the column and the functions its default calls, for the
    /// walker to judge against the functions the migrations created.
    pub default_calls: Vec<(String, Vec<String>)>,
    /// `CREATE FUNCTION`: its name, and whether it is VOLATILE (PostgreSQL's default).
    pub creates_function: Option<(String, bool)>,
    /// `CREATE DOMAIN`: its name, its base type, and whether it checks values (CHECK or NOT
    /// NULL).
    pub creates_domain: Option<(String, String, bool)>,
    /// `ALTER DOMAIN … ADD CONSTRAINT / SET NOT NULL`: the domain now checks values.
    pub constrains_domain: Option<String>,
    /// `INSERT`: the table written, also when the lint leaves a few rows of `VALUES` unjudged.
    pub inserts_into: Option<String>,
    /// A kind of statement that locks nothing but the tables it names: creating, altering,
    /// indexing or filling a table, and creating a type, domain, sequence or schema. Whether
    /// those tables are new is the walker's to judge ([`crate::lint::WalkedStatement`]).
    pub names_all_it_locks: bool,
    /// A `SET`, `RESET`, `SET ROLE` or `SET SESSION AUTHORIZATION` of the session (not `LOCAL`):
    /// it outlives the migration's transaction.
    pub session_setting: Option<SessionSetting>,
    /// Object names written with their schema (`app.users`), as written; the system schemas'
    /// (`pg_catalog.…`, `information_schema.…`) are left out.
    pub schema_qualified: Vec<String>,
    /// `ALTER … SET SCHEMA s`: the schema the object is moved into, as written.
    pub moves_to_schema: Option<String>,
}

/// A statement that changes the session's settings beyond its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSetting {
    /// The same change, scoped to the transaction (`SET LOCAL …`); `None` when there is no one
    /// statement for it (`RESET ALL`).
    pub local: Option<String>,
    /// `SET ROLE` / `SET SESSION AUTHORIZATION` (or their RESET): who runs the statements after
    /// it, which the runner cannot put back.
    pub identity: bool,
}

/// An object that changes its name (normalised names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// `ALTER TABLE … RENAME TO`, `ALTER TABLE … SET SCHEMA`.
    Table {
        from: String,
        to: String,
    },
    Column {
        table: String,
        from: String,
        to: String,
    },
    Constraint {
        table: String,
        from: String,
        to: String,
    },
    Index {
        from: String,
        to: String,
    },
    Type {
        from: String,
        to: String,
    },
}

/// Relations that stand for more than one table: statements without a table name.
pub const EVERY_TABLE: &str = "(every table in the database)";
pub const EVERY_CLUSTERED_TABLE: &str = "(every table clustered before)";
pub const EVERY_SYSTEM_CATALOG: &str = "(every system catalog)";

/// Statement kinds that take no lock a migration must worry about on tables carrying traffic:
/// objects other than tables (types, functions, schemas, sequences, views, roles, grants,
/// comments) and session commands.
const TABLE_FREE_STATEMENTS: &[SyntaxKind] = &[
    SyntaxKind::CREATE_SCHEMA,
    SyntaxKind::CREATE_TYPE,
    SyntaxKind::CREATE_DOMAIN,
    SyntaxKind::CREATE_FUNCTION,
    SyntaxKind::CREATE_PROCEDURE,
    SyntaxKind::CREATE_EXTENSION,
    SyntaxKind::CREATE_SEQUENCE,
    SyntaxKind::CREATE_VIEW,
    SyntaxKind::CREATE_COLLATION,
    SyntaxKind::CREATE_AGGREGATE,
    SyntaxKind::CREATE_OPERATOR,
    SyntaxKind::CREATE_CAST,
    SyntaxKind::CREATE_ROLE,
    SyntaxKind::CREATE_USER,
    SyntaxKind::DROP_FUNCTION,
    SyntaxKind::DROP_PROCEDURE,
    SyntaxKind::DROP_TYPE,
    SyntaxKind::DROP_DOMAIN,
    SyntaxKind::DROP_SCHEMA,
    SyntaxKind::DROP_SEQUENCE,
    SyntaxKind::DROP_VIEW,
    SyntaxKind::DROP_EXTENSION,
    SyntaxKind::DROP_ROLE,
    SyntaxKind::ALTER_FUNCTION,
    SyntaxKind::ALTER_PROCEDURE,
    SyntaxKind::ALTER_TYPE,
    SyntaxKind::ALTER_DOMAIN,
    SyntaxKind::ALTER_SEQUENCE,
    SyntaxKind::ALTER_SCHEMA,
    SyntaxKind::ALTER_EXTENSION,
    SyntaxKind::ALTER_ROLE,
    SyntaxKind::ALTER_DEFAULT_PRIVILEGES,
    SyntaxKind::GRANT,
    SyntaxKind::REVOKE,
    SyntaxKind::COMMENT_ON,
    SyntaxKind::SET,
    SyntaxKind::RESET,
    SyntaxKind::SHOW,
    SyntaxKind::SET_ROLE,
    SyntaxKind::SET_SESSION_AUTH,
    // Extended statistics: SHARE UPDATE EXCLUSIVE on their table, which no query or write
    // waits for.
    SyntaxKind::DROP_STATISTICS,
    SyntaxKind::ALTER_STATISTICS,
    SyntaxKind::ANALYZE,
    SyntaxKind::NOTIFY,
    SyntaxKind::DISCARD,
    SyntaxKind::VALUES,
    SyntaxKind::EXPLAIN,
    SyntaxKind::CHECKPOINT,
];

/// A foreign key a statement defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: Option<String>,
    pub table: String,
    /// Its own columns, in `table`.
    pub columns: Vec<String>,
    pub references: String,
    /// The columns it references; empty where it names none (the referenced table's primary
    /// key).
    pub referenced_columns: Vec<String>,
}

/// Classifies one statement.
pub fn classify(stmt: &ast::Stmt) -> Classified {
    let mut out = classify_effects(stmt);
    out.indexed_columns = indexes::indexed_columns(stmt.syntax(), &out);
    out.names_all_it_locks = names_all_it_locks(stmt.syntax());
    out.session_setting = session_setting(stmt.syntax());
    out.schema_qualified = syntax::schema_qualified(stmt.syntax());
    out.moves_to_schema = syntax::moved_to_schema(stmt.syntax());
    out
}

/// See [`Classified::session_setting`]. The rewrite is made at the tokens' positions: `LOCAL`
/// after the `SET` keyword (in place of `SESSION` where it is written), and each `RESET` as the
/// `SET LOCAL … TO DEFAULT` (or `NONE`) that means the same for one transaction.
fn session_setting(node: &SyntaxNode) -> Option<SessionSetting> {
    let whole = node.text().to_string();
    // The parser keeps the terminating `;` inside the statement.
    let text = whole.trim_end().trim_end_matches(';');
    // Byte offsets within the statement's own text (a token's bounds are character bounds;
    // `get` refuses anything else all the same).
    let start = usize::from(node.text_range().start());
    let relative = |at: usize| at.saturating_sub(start);
    let identity = matches!(
        node.kind(),
        SyntaxKind::SET_ROLE
            | SyntaxKind::SET_SESSION_AUTH
            | SyntaxKind::RESET_ROLE
            | SyntaxKind::RESET_SESSION_AUTH
    );
    let local = match node.kind() {
        SyntaxKind::SET | SyntaxKind::SET_ROLE | SyntaxKind::SET_SESSION_AUTH => {
            if child(node, SyntaxKind::LOCAL_SCOPE).is_some() {
                return None;
            }
            match child(node, SyntaxKind::SESSION_SCOPE) {
                Some(scope) => {
                    let range = scope.text_range();
                    Some(format!(
                        "{}LOCAL{}",
                        text.get(..relative(usize::from(range.start())))?,
                        text.get(relative(usize::from(range.end()))..)?
                    ))
                }
                None => {
                    let set = node
                        .children_with_tokens()
                        .find(|t| t.kind() == SyntaxKind::SET_KW)?;
                    let at = relative(usize::from(set.text_range().end()));
                    Some(format!("{} LOCAL{}", text.get(..at)?, text.get(at..)?))
                }
            }
        }
        SyntaxKind::RESET => child(node, SyntaxKind::CONFIG_PARAMETER_REF)
            .map(|name| format!("SET LOCAL {} TO DEFAULT", name.text())),
        SyntaxKind::RESET_ROLE => Some("SET LOCAL ROLE NONE".to_owned()),
        SyntaxKind::RESET_SESSION_AUTH => {
            Some("SET LOCAL SESSION AUTHORIZATION DEFAULT".to_owned())
        }
        _ => return None,
    };
    Some(SessionSetting { local, identity })
}

/// See [`Classified::names_all_it_locks`]. A function is left out: creating one written in SQL
/// reads the tables its body names. So is a table built from another (`LIKE`, `INHERITS`,
/// `PARTITION OF`, `OF type`), which locks that one too.
fn names_all_it_locks(node: &SyntaxNode) -> bool {
    match node.kind() {
        SyntaxKind::CREATE_TABLE => !node.descendants().any(|n| {
            matches!(
                n.kind(),
                SyntaxKind::INHERITS
                    | SyntaxKind::LIKE_CLAUSE
                    | SyntaxKind::PARTITION_OF
                    | SyntaxKind::OF_TYPE
            )
        }),
        kind => matches!(
            kind,
            SyntaxKind::CREATE_TABLE_AS
                | SyntaxKind::CREATE_INDEX
                | SyntaxKind::ALTER_TABLE
                | SyntaxKind::INSERT
                | SyntaxKind::UPDATE
                | SyntaxKind::DELETE
                | SyntaxKind::CREATE_TYPE
                | SyntaxKind::CREATE_DOMAIN
                | SyntaxKind::CREATE_SEQUENCE
                | SyntaxKind::CREATE_SCHEMA
        ),
    }
}

impl Effect {
    /// An effect on `table` alone, with nothing more to say about it.
    fn on(op: Op, table: String) -> Self {
        Self::with(op, table, Detail::None)
    }

    /// An effect on `table` alone.
    fn with(op: Op, table: String, detail: Detail) -> Self {
        Self {
            op,
            table,
            other: None,
            detail,
        }
    }
}

/// What the statement does, by the family its kind belongs to.
fn classify_effects(stmt: &ast::Stmt) -> Classified {
    let node = stmt.syntax();
    let mut out = Classified::default();
    match node.kind() {
        SyntaxKind::CREATE_TABLE
        | SyntaxKind::CREATE_TABLE_AS
        | SyntaxKind::CREATE_MATERIALIZED_VIEW
        | SyntaxKind::SELECT_INTO => tables::create_table(node, &mut out),
        SyntaxKind::ALTER_TABLE => alter_table::alter_table(node, &mut out),
        SyntaxKind::DROP_TABLE => tables::drop_table(node, &mut out),
        SyntaxKind::TRUNCATE => tables::truncate(node, &mut out),
        SyntaxKind::VACUUM => tables::vacuum(node, &mut out),
        SyntaxKind::CLUSTER => tables::cluster(node, &mut out),
        SyntaxKind::LOCK => tables::lock(node, &mut out),
        SyntaxKind::UPDATE | SyntaxKind::DELETE => tables::update_or_delete(node, &mut out),
        SyntaxKind::INSERT | SyntaxKind::MERGE => tables::insert_or_merge(node, &mut out),
        SyntaxKind::SELECT | SyntaxKind::COMPOUND_SELECT | SyntaxKind::PAREN_SELECT => {
            tables::select(node, &mut out)
        }
        SyntaxKind::CREATE_INDEX => indexes::create_index(node, &mut out),
        SyntaxKind::DROP_INDEX => indexes::drop_index(node, &mut out),
        SyntaxKind::REINDEX => indexes::reindex(node, &mut out),
        SyntaxKind::ALTER_INDEX => indexes::alter_index(node, &mut out),
        SyntaxKind::DROP_VIEW => objects::drop_view(node, &mut out),
        SyntaxKind::REFRESH => objects::refresh(node, &mut out),
        SyntaxKind::CREATE_POLICY | SyntaxKind::ALTER_POLICY | SyntaxKind::DROP_POLICY => {
            objects::policy(node, &mut out)
        }
        SyntaxKind::CREATE_TRIGGER | SyntaxKind::DROP_TRIGGER | SyntaxKind::ALTER_TRIGGER => {
            objects::trigger(node, &mut out)
        }
        SyntaxKind::DROP_MATERIALIZED_VIEW => objects::drop_materialized_view(node, &mut out),
        SyntaxKind::CREATE_STATISTICS => objects::create_statistics(node, &mut out),
        SyntaxKind::DO | SyntaxKind::CALL => out.opaque = true,
        kind => {
            out.transaction_control = matches!(
                stmt,
                ast::Stmt::Begin(_)
                    | ast::Stmt::Commit(_)
                    | ast::Stmt::Rollback(_)
                    | ast::Stmt::SavepointCreate(_)
                    | ast::Stmt::ReleaseSavepoint(_)
                    | ast::Stmt::PrepareTransaction(_)
            );
            out.unknown = !out.transaction_control && !TABLE_FREE_STATEMENTS.contains(&kind);
            // Kinds that lock no table, but tell the walker what later statements rely on.
            match kind {
                SyntaxKind::CREATE_FUNCTION => objects::create_function(node, &mut out),
                SyntaxKind::CREATE_DOMAIN => objects::create_domain(node, &mut out),
                SyntaxKind::ALTER_DOMAIN => objects::alter_domain(node, &mut out),
                SyntaxKind::CREATE_VIEW => objects::create_view(node, &mut out),
                SyntaxKind::ALTER_TYPE => objects::alter_type(node, &mut out),
                _ => {}
            }
        }
    }
    out
}
