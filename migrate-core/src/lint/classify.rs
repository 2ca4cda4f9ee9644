//! What one statement does to which tables, read off squawk's syntax tree. The lock modes and
//! costs themselves come from the model table; this only recognises the statement kind.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::locks::{ALL_MODES, LockMode, Op};

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

/// `name` in the schema of `qualified` (a rename keeps an object in its schema).
fn in_schema_of(qualified: &str, name: &str) -> String {
    match qualified.rsplit_once('.') {
        Some((schema, _)) if !name.contains('.') => format!("{schema}.{name}"),
        _ => name.to_owned(),
    }
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

/// The mode a `LOCK TABLE` asks for: ACCESS EXCLUSIVE unless the statement names one.
fn lock_mode(node: &SyntaxNode) -> LockMode {
    let Some(clause) = child(node, SyntaxKind::LOCK_MODE_CLAUSE) else {
        return LockMode::AccessExclusive;
    };
    let text = clause.text().to_string().to_uppercase();
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| *w != "IN" && *w != "MODE")
        .collect();
    let written = words.join(" ");
    ALL_MODES
        .iter()
        .copied()
        .find(|m| m.sql_name() == written)
        .unwrap_or(LockMode::AccessExclusive)
}

fn children(node: &SyntaxNode) -> impl Iterator<Item = SyntaxNode> {
    node.children()
}

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

/// The foreign key `node` defines (a table's `FOREIGN KEY (…) REFERENCES …` or a column's
/// `REFERENCES …`) on `table`; `column` is the column a `REFERENCES` is written on, when the
/// tree does not hold it around the constraint (`ADD COLUMN`).
fn foreign_key(node: &SyntaxNode, table: &str, column: Option<&str>) -> Option<ForeignKey> {
    let references = referenced_table(node)?;
    let names = |list: &SyntaxNode| -> Vec<String> {
        list.children()
            .map(|c| name_of(&c))
            .filter(|n| !n.is_empty())
            .collect()
    };
    let (mut columns, mut referenced_columns) = (Vec::new(), Vec::new());
    let mut past_references = false;
    for element in node.children_with_tokens() {
        if element.kind() == SyntaxKind::REFERENCES_KW {
            past_references = true;
        }
        let Some(list) = element.as_node() else {
            continue;
        };
        if matches!(
            list.kind(),
            SyntaxKind::COLUMN_LIST | SyntaxKind::FOREIGN_KEY_COLUMN_LIST
        ) {
            if past_references {
                referenced_columns = names(list);
            } else {
                columns = names(list);
            }
        }
    }
    if node.kind() == SyntaxKind::REFERENCES_CONSTRAINT {
        columns = node
            .ancestors()
            .find(|a| a.kind() == SyntaxKind::COLUMN)
            .and_then(|c| child(&c, SyntaxKind::COLUMN_NAME))
            .map(|n| name_of(&n))
            .or_else(|| column.map(str::to_owned))
            .into_iter()
            .collect();
        if referenced_columns.is_empty() {
            referenced_columns = child(node, SyntaxKind::COLUMN_NAME_REF)
                .map(|n| vec![name_of(&n)])
                .unwrap_or_default();
        }
    }
    Some(ForeignKey {
        name: constraint_name(node),
        table: table.to_owned(),
        columns,
        references,
        referenced_columns,
    })
}

fn child(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.children().find(|c| c.kind() == kind)
}

fn descendant(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.descendants().find(|c| c.kind() == kind)
}

fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.children_with_tokens().any(|t| t.kind() == kind)
}

/// A name as PostgreSQL resolves it: unquoted parts folded to lower case, `public.` dropped.
pub fn normalize(text: &str) -> String {
    let mut parts = Vec::new();
    for part in text.split('.') {
        let part = part.trim();
        if let Some(quoted) = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            parts.push(quoted.replace("\"\"", "\""));
        } else {
            parts.push(part.to_lowercase());
        }
    }
    if parts.len() == 2 && parts[0] == "public" {
        parts.remove(0);
    }
    parts.join(".")
}

fn name_of(node: &SyntaxNode) -> String {
    normalize(&node.text().to_string())
}

/// The first table reference under `node` of one of the usual kinds.
fn table_ref(node: &SyntaxNode) -> Option<String> {
    for kind in [
        SyntaxKind::TABLE_RELATION_NAME,
        SyntaxKind::TABLE_NAME_REF,
        SyntaxKind::RELATION_NAME,
        SyntaxKind::RELATION_NAME_REF,
    ] {
        if let Some(found) = child(node, kind) {
            let inner = descendant(&found, SyntaxKind::PATH_REF).unwrap_or(found);
            return Some(name_of(&inner));
        }
    }
    None
}

/// Every table read in FROM / JOIN clauses below `node`.
fn tables_read(node: &SyntaxNode) -> Vec<String> {
    let mut tables: Vec<String> = node
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::RELATION_FROM_ITEM)
        .filter_map(|n| {
            table_ref(&n)
                .or_else(|| descendant(&n, SyntaxKind::RELATION_NAME_REF).map(|r| name_of(&r)))
        })
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// The functions a default expression calls, by their unqualified name.
fn called_functions(node: &SyntaxNode) -> Vec<String> {
    node.descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
        .filter_map(|call| {
            let name = call
                .children()
                .find(|c| c.kind() == SyntaxKind::NAME_REF || c.kind() == SyntaxKind::FIELD_EXPR)
                .map(|n| n.text().to_string().to_lowercase())?;
            name.rsplit('.').next().map(|n| n.trim().to_owned())
        })
        .collect()
}

fn calls_volatile(node: &SyntaxNode) -> bool {
    node.descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
        .any(|call| {
            let name = call
                .children()
                .find(|c| c.kind() == SyntaxKind::NAME_REF)
                .map(|n| n.text().to_string().to_lowercase())
                .unwrap_or_default();
            let name = name.rsplit('.').next().unwrap_or_default();
            crate::volatile::VOLATILE_FUNCTIONS.contains(&name)
        })
}

fn type_text(node: &SyntaxNode) -> Option<String> {
    node.children()
        .find(|c| {
            matches!(
                c.kind(),
                SyntaxKind::PATH_TYPE
                    | SyntaxKind::CHARACTER_TYPE
                    | SyntaxKind::VARCHAR_TYPE
                    | SyntaxKind::BIT_TYPE
                    | SyntaxKind::DOUBLE_TYPE
                    | SyntaxKind::TIME_TYPE
                    | SyntaxKind::TIMESTAMP_TYPE
                    | SyntaxKind::INTERVAL_TYPE
                    | SyntaxKind::ARRAY_TYPE
                    | SyntaxKind::PERCENT_TYPE
            )
        })
        .map(|t| {
            t.text()
                .to_string()
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

fn is_serial(type_name: &str) -> bool {
    matches!(
        type_name,
        "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
    )
}

fn constraint_name(node: &SyntaxNode) -> Option<String> {
    descendant(node, SyntaxKind::CONSTRAINT_NAME).map(|n| name_of(&n))
}

/// For `CHECK (col IS NOT NULL)`: the column.
fn not_null_check_column(check: &SyntaxNode) -> Option<String> {
    let text = check.text().to_string();
    let inner = text
        .split_once('(')?
        .1
        .rsplit_once(')')?
        .0
        .trim()
        .to_owned();
    let (column, rest) = inner.split_once(char::is_whitespace)?;
    let rest: Vec<String> = rest.split_whitespace().map(str::to_lowercase).collect();
    (rest == ["is", "not", "null"]).then(|| normalize(column))
}

fn referenced_table(node: &SyntaxNode) -> Option<String> {
    child(node, SyntaxKind::TABLE_NAME_REF)
        .or_else(|| descendant(node, SyntaxKind::TABLE_NAME_REF))
        .map(|n| name_of(&descendant(&n, SyntaxKind::PATH_REF).unwrap_or(n)))
}

/// Classifies one statement.
/// Whether a USING expression is `column`, `column::type` or `CAST(column AS type)`: values
/// converted by the type change itself, not computed anew.
fn is_the_column_or_its_cast(expr: &str, column: &str) -> bool {
    // Lower case, quotes dropped, runs of whitespace as one space.
    let expr = expr
        .replace('"', "")
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let value = if let Some(inner) = expr
        .strip_prefix("cast")
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix('('))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        inner.rsplit_once(" as ").map_or(inner, |(value, _)| value)
    } else {
        expr.split_once("::")
            .map_or(expr.as_str(), |(value, _)| value)
    };
    value.trim().trim_matches(|c| c == '(' || c == ')').trim() == column.to_lowercase()
}

pub fn classify(stmt: &ast::Stmt) -> Classified {
    let mut out = classify_effects(stmt);
    out.indexed_columns = indexed_columns(stmt.syntax(), &out);
    out.names_all_it_locks = names_all_it_locks(stmt.syntax());
    out.session_setting = session_setting(stmt.syntax());
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

/// What `CREATE INDEX` reads of its table: see [`Classified::index_reads`]. An item that is an
/// expression is a function call or parenthesized, so it holds a `(` token; a column with its
/// operator class, collation or order does not.
fn index_reads(node: &SyntaxNode) -> Vec<(String, bool)> {
    let names = |n: &SyntaxNode| -> Vec<String> {
        n.descendants()
            .filter(|d| d.kind() == SyntaxKind::NAME_REF)
            .map(|d| name_of(&d))
            .collect()
    };
    let mut reads = Vec::new();
    if let Some(items) = child(node, SyntaxKind::PARTITION_ITEM_LIST) {
        for item in items.children() {
            let computed = item
                .descendants_with_tokens()
                .any(|t| t.kind() == SyntaxKind::L_PAREN);
            reads.extend(names(&item).into_iter().map(|c| (c, computed)));
        }
    }
    if let Some(predicate) = child(node, SyntaxKind::WHERE_CLAUSE) {
        reads.extend(names(&predicate).into_iter().map(|c| (c, true)));
    }
    reads
}

/// The columns the indexes a statement builds cover (function names inside an expression
/// index come along: they name no column, so they never match one).
fn indexed_columns(node: &SyntaxNode, classified: &Classified) -> Vec<(String, String)> {
    let table = match &classified.creates_index {
        Some((_, table)) => Some(table.clone()),
        None if node.kind() == SyntaxKind::ALTER_TABLE => table_ref(node),
        None => classified.creates_table.clone(),
    };
    let Some(table) = table else {
        return Vec::new();
    };
    let mut columns = Vec::new();
    if classified.creates_index.is_some()
        && let Some(items) = child(node, SyntaxKind::PARTITION_ITEM_LIST)
    {
        columns.extend(
            items
                .descendants()
                .filter(|n| n.kind() == SyntaxKind::NAME_REF)
                .map(|n| name_of(&n)),
        );
    }
    for constraint in node.descendants().filter(|n| {
        matches!(
            n.kind(),
            SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::UNIQUE_CONSTRAINT
        )
    }) {
        let listed: Vec<String> = constraint
            .descendants()
            .filter(|n| n.kind() == SyntaxKind::COLUMN_NAME_REF)
            .map(|n| name_of(&n))
            .collect();
        if listed.is_empty() {
            if let Some(column) = constraint
                .parent()
                .filter(|p| p.kind() == SyntaxKind::COLUMN)
                .and_then(|p| child(&p, SyntaxKind::COLUMN_NAME))
            {
                columns.push(name_of(&column));
            }
        } else {
            columns.extend(listed);
        }
    }
    columns.into_iter().map(|c| (table.clone(), c)).collect()
}

fn classify_effects(stmt: &ast::Stmt) -> Classified {
    let node = stmt.syntax();
    let mut out = Classified::default();
    let effect = |op: Op, table: String| Effect {
        op,
        table,
        other: None,
        detail: Detail::None,
    };
    if node.kind() == SyntaxKind::CREATE_FUNCTION
        && let Some(name) = descendant(node, SyntaxKind::PATH).map(|p| name_of(&p))
    {
        // The words outside the body (a string whose words are no attributes). A function is
        // VOLATILE unless it says otherwise.
        let attributes: Vec<String> = node
            .descendants_with_tokens()
            .filter_map(|element| element.into_token())
            .filter(|token| {
                !token
                    .parent_ancestors()
                    .any(|a| a.kind() == SyntaxKind::AS_FUNC_OPTION)
            })
            .map(|token| token.text().to_lowercase())
            .collect();
        let declared = |word: &str| attributes.iter().any(|a| a == word);
        let bare = name.rsplit('.').next().unwrap_or_default().to_owned();
        out.creates_function = Some((bare, !(declared("immutable") || declared("stable"))));
    }
    if node.kind() == SyntaxKind::CREATE_DOMAIN
        && let Some(name) = child(node, SyntaxKind::DOMAIN)
            .and_then(|d| descendant(&d, SyntaxKind::PATH))
            .map(|p| name_of(&p))
    {
        let checks = node.descendants().any(|n| {
            matches!(
                n.kind(),
                SyntaxKind::CHECK_CONSTRAINT | SyntaxKind::NOT_NULL_CONSTRAINT
            )
        });
        out.creates_domain = Some((name, type_text(node).unwrap_or_default(), checks));
    }
    if node.kind() == SyntaxKind::ALTER_DOMAIN {
        let text = node.text().to_string().to_lowercase();
        if (text.contains("add constraint")
            || text.contains("add check")
            || text.contains("set not null"))
            && let Some(name) = descendant(node, SyntaxKind::PATH_REF).map(|p| name_of(&p))
        {
            out.constrains_domain = Some(name);
        }
    }
    if node.kind() == SyntaxKind::CREATE_VIEW
        && let Some(name) = child(node, SyntaxKind::VIEW)
            .and_then(|v| child(&v, SyntaxKind::PATH))
            .map(|p| name_of(&p))
    {
        out.creates_view = Some((name, tables_read(node)));
    }
    match node.kind() {
        SyntaxKind::DROP_VIEW => {
            for view in node
                .descendants()
                .filter(|c| c.kind() == SyntaxKind::PATH_REF)
            {
                if view
                    .parent()
                    .is_some_and(|p| p.kind() != SyntaxKind::PATH_REF)
                {
                    out.effects.push(effect(Op::DropView, name_of(&view)));
                }
            }
        }
        SyntaxKind::CREATE_TABLE
        | SyntaxKind::CREATE_TABLE_AS
        | SyntaxKind::CREATE_MATERIALIZED_VIEW
        | SyntaxKind::SELECT_INTO => {
            let name = child(node, SyntaxKind::PATH)
                .or_else(|| descendant(node, SyntaxKind::PATH))
                .map(|p| name_of(&p));
            out.creates_table = name.clone();
            if node.kind() == SyntaxKind::CREATE_TABLE {
                let table = name.unwrap_or_default();
                for column in node
                    .descendants()
                    .filter(|n| n.kind() == SyntaxKind::COLUMN)
                {
                    let col = column
                        .children()
                        .find(|c| c.kind() == SyntaxKind::COLUMN_NAME)
                        .map(|n| name_of(&n));
                    if let (Some(col), Some(ty)) = (col, type_text(&column)) {
                        out.columns.push((col, ty));
                    }
                }
                for reference in node.descendants().filter(|n| {
                    n.kind() == SyntaxKind::REFERENCES_CONSTRAINT
                        || n.kind() == SyntaxKind::FOREIGN_KEY_CONSTRAINT
                }) {
                    if let Some(key) = foreign_key(&reference, &table, None) {
                        let other = key.references.clone();
                        out.foreign_keys.push(key);
                        if other != table {
                            out.effects.push(Effect {
                                op: Op::AddColumnReferences,
                                table: table.clone(),
                                other: Some(other),
                                detail: Detail::None,
                            });
                        }
                    }
                }
            } else {
                for table in tables_read(node) {
                    out.effects.push(effect(Op::ReadRows, table));
                }
            }
        }
        SyntaxKind::CREATE_INDEX => {
            let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
            out.concurrently = concurrently;
            let table = table_ref(node).unwrap_or_default();
            let index = child(node, SyntaxKind::INDEX)
                .map(|i| name_of(&i))
                .unwrap_or_default();
            out.creates_index = Some((index.clone(), table.clone()));
            out.index_reads = index_reads(node);
            let op = if concurrently {
                Op::CreateIndexConcurrently
            } else {
                Op::CreateIndex
            };
            out.effects.push(Effect {
                op,
                table,
                other: None,
                detail: Detail::Index(index),
            });
        }
        SyntaxKind::DROP_INDEX => {
            let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
            out.concurrently = concurrently;
            for index in node
                .descendants()
                .filter(|n| n.kind() == SyntaxKind::INDEX_REF || n.kind() == SyntaxKind::PATH_REF)
                .take(1)
            {
                let index = name_of(&index);
                let op = if concurrently {
                    Op::DropIndexConcurrently
                } else {
                    Op::DropIndex
                };
                // The table is resolved from the index by the walker.
                out.effects.push(Effect {
                    op,
                    table: String::new(),
                    other: None,
                    detail: Detail::Index(index),
                });
            }
        }
        SyntaxKind::REINDEX => {
            let concurrently = node
                .descendants_with_tokens()
                .any(|t| t.kind() == SyntaxKind::CONCURRENTLY_KW);
            out.concurrently = concurrently;
            let op = if concurrently {
                Op::ReindexConcurrently
            } else {
                Op::Reindex
            };
            if let Some(target) = descendant(node, SyntaxKind::REINDEX_TARGET_TABLE) {
                let table = descendant(&target, SyntaxKind::TABLE_NAME_REF)
                    .map(|t| name_of(&t))
                    .unwrap_or_default();
                out.effects.push(effect(op, table));
            } else if let Some(index) = descendant(node, SyntaxKind::INDEX_REF) {
                out.effects.push(Effect {
                    op,
                    table: String::new(),
                    other: None,
                    detail: Detail::Index(name_of(&index)),
                });
            } else if let Some(schema) = descendant(node, SyntaxKind::REINDEX_TARGET_SCHEMA) {
                let name = descendant(&schema, SyntaxKind::SCHEMA_REF)
                    .map(|s| name_of(&s))
                    .unwrap_or_default();
                out.effects
                    .push(effect(op, format!("(every table in schema {name})")));
            } else if descendant(node, SyntaxKind::REINDEX_TARGET_SYSTEM).is_some() {
                out.effects
                    .push(effect(op, EVERY_SYSTEM_CATALOG.to_owned()));
            } else if descendant(node, SyntaxKind::REINDEX_TARGET_DATABASE).is_some() {
                out.effects.push(effect(op, EVERY_TABLE.to_owned()));
            } else {
                out.unknown = true;
            }
        }
        SyntaxKind::DROP_TABLE => {
            let cascade = child(node, SyntaxKind::CASCADE).is_some()
                || has_token(node, SyntaxKind::CASCADE_KW);
            for table in node.children().filter(|c| {
                c.kind() == SyntaxKind::TABLE_NAME_REF || c.kind() == SyntaxKind::PATH_REF
            }) {
                let op = if cascade {
                    Op::DropTableCascade
                } else {
                    Op::DropTable
                };
                out.effects.push(effect(op, name_of(&table)));
            }
        }
        SyntaxKind::TRUNCATE => {
            for table in node
                .descendants()
                .filter(|c| c.kind() == SyntaxKind::TABLE_NAME_REF)
            {
                out.effects.push(effect(Op::Truncate, name_of(&table)));
            }
        }
        SyntaxKind::VACUUM => {
            let full = node
                .descendants_with_tokens()
                .any(|t| t.kind() == SyntaxKind::FULL_KW);
            out.concurrently = true; // VACUUM cannot run in a transaction block either
            if full {
                let tables: Vec<String> = node
                    .descendants()
                    .filter(|c| c.kind() == SyntaxKind::TABLE_NAME_REF)
                    .map(|t| name_of(&t))
                    .collect();
                if tables.is_empty() {
                    out.effects
                        .push(effect(Op::VacuumFull, EVERY_TABLE.to_owned()));
                }
                for table in tables {
                    out.effects.push(effect(Op::VacuumFull, table));
                }
            }
        }
        SyntaxKind::CLUSTER => {
            let table = table_ref(node).unwrap_or_else(|| EVERY_CLUSTERED_TABLE.to_owned());
            out.effects.push(effect(Op::Cluster, table));
        }
        SyntaxKind::LOCK => {
            let mode = lock_mode(node);
            for relation in node
                .descendants()
                .filter(|c| c.kind() == SyntaxKind::RELATION_NAME_REF)
            {
                out.effects.push(Effect {
                    op: Op::LockTable,
                    table: name_of(&relation),
                    other: None,
                    detail: Detail::LockMode(mode),
                });
            }
        }
        SyntaxKind::REFRESH => {
            let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
            let view = descendant(node, SyntaxKind::VIEW_REF)
                .map(|v| name_of(&v))
                .unwrap_or_default();
            let op = if concurrently {
                Op::RefreshMaterializedViewConcurrently
            } else {
                Op::RefreshMaterializedView
            };
            out.effects.push(effect(op, view));
        }
        SyntaxKind::CREATE_POLICY | SyntaxKind::ALTER_POLICY | SyntaxKind::DROP_POLICY => {
            if let Some(table) = child(node, SyntaxKind::ON_TABLE)
                .and_then(|on| child(&on, SyntaxKind::TABLE_NAME_REF))
                .map(|t| {
                    let inner = descendant(&t, SyntaxKind::PATH_REF).unwrap_or(t);
                    name_of(&inner)
                })
            {
                out.effects.push(effect(Op::Policy, table));
            } else {
                out.unknown = true;
            }
        }
        SyntaxKind::CREATE_TRIGGER | SyntaxKind::DROP_TRIGGER | SyntaxKind::ALTER_TRIGGER => {
            let op = match node.kind() {
                SyntaxKind::CREATE_TRIGGER => Op::CreateTrigger,
                SyntaxKind::DROP_TRIGGER => Op::DropTrigger,
                _ => Op::AlterTrigger,
            };
            match child(node, SyntaxKind::ON_RELATION) {
                Some(on) => {
                    let table = descendant(&on, SyntaxKind::PATH_REF)
                        .map(|p| name_of(&p))
                        .unwrap_or_default();
                    out.effects.push(effect(op, table));
                }
                None => out.unknown = true,
            }
        }
        SyntaxKind::DROP_MATERIALIZED_VIEW => {
            for view in node
                .children()
                .filter(|c| c.kind() == SyntaxKind::VIEW_REF)
                .filter_map(|v| child(&v, SyntaxKind::PATH_REF))
            {
                out.effects
                    .push(effect(Op::DropMaterializedView, name_of(&view)));
            }
        }
        SyntaxKind::CREATE_STATISTICS => {
            match child(node, SyntaxKind::FROM_TABLE)
                .and_then(|from| descendant(&from, SyntaxKind::PATH_REF))
            {
                Some(table) => out
                    .effects
                    .push(effect(Op::CreateStatistics, name_of(&table))),
                None => out.unknown = true,
            }
        }
        SyntaxKind::ALTER_INDEX => {
            if let Some(rename) = child(node, SyntaxKind::INDEX_RENAME_TO)
                && let Some(index) = child(node, SyntaxKind::INDEX_REF)
            {
                if let Some(to) = child(&rename, SyntaxKind::INDEX) {
                    let from = name_of(&index);
                    out.renames.push(Rename::Index {
                        to: in_schema_of(&from, &name_of(&to)),
                        from,
                    });
                }
                out.effects.push(Effect {
                    op: Op::AlterIndexRename,
                    table: String::new(),
                    other: None,
                    detail: Detail::Index(name_of(&index)),
                });
            }
        }
        SyntaxKind::ALTER_TABLE => alter_table(node, &mut out),
        SyntaxKind::UPDATE | SyntaxKind::DELETE => {
            if let Some(table) = table_ref(node) {
                out.effects.push(effect(Op::WriteRows, table));
            }
            for table in tables_read(node) {
                out.effects.push(effect(Op::ReadRows, table));
            }
        }
        SyntaxKind::INSERT | SyntaxKind::MERGE => {
            out.inserts_into = table_ref(node);
            let sources = tables_read(node);
            // INSERT … VALUES writes a few rows: not a backfill.
            if !sources.is_empty() {
                if let Some(table) = table_ref(node) {
                    out.effects.push(effect(Op::WriteRows, table));
                }
                for table in sources {
                    out.effects.push(effect(Op::ReadRows, table));
                }
            }
        }
        SyntaxKind::SELECT | SyntaxKind::COMPOUND_SELECT | SyntaxKind::PAREN_SELECT => {
            for table in tables_read(node) {
                out.effects.push(effect(Op::ReadRows, table));
            }
        }
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
            if kind == SyntaxKind::ALTER_TYPE
                && let (Some(from), Some(to)) = (
                    child(node, SyntaxKind::TYPE_NAME_REF),
                    child(node, SyntaxKind::TYPE_RENAME_TO)
                        .and_then(|r| child(&r, SyntaxKind::TYPE_NAME)),
                )
            {
                let from = name_of(&from);
                out.renames.push(Rename::Type {
                    to: in_schema_of(&from, &name_of(&to)),
                    from,
                });
            }
        }
    }
    out
}

fn alter_table(node: &SyntaxNode, out: &mut Classified) {
    let table = table_ref(node).unwrap_or_default();
    let effect = |op: Op, detail: Detail| Effect {
        op,
        table: table.clone(),
        other: None,
        detail,
    };
    for action in children(node) {
        match action.kind() {
            SyntaxKind::ADD_COLUMN => {
                let column = child(&action, SyntaxKind::COLUMN_NAME)
                    .map(|c| name_of(&c))
                    .unwrap_or_default();
                let ty = type_text(&action).unwrap_or_default();
                let default = descendant(&action, SyntaxKind::DEFAULT_CONSTRAINT);
                let generated = descendant(&action, SyntaxKind::GENERATED_CONSTRAINT);
                let not_null = descendant(&action, SyntaxKind::NOT_NULL_CONSTRAINT).is_some()
                    || descendant(&action, SyntaxKind::PRIMARY_KEY_CONSTRAINT).is_some();
                // PostgreSQL 18's virtual generated column (`VIRTUAL`, or no kind at all) is
                // computed when read: nothing is written. Identity and STORED fill every row.
                let virtual_column = generated.as_ref().is_some_and(|g| {
                    !g.descendants_with_tokens().any(|t| {
                        matches!(t.kind(), SyntaxKind::STORED_KW | SyntaxKind::IDENTITY_KW)
                    })
                });
                let rewrites = is_serial(&ty)
                    || (generated.is_some() && !virtual_column)
                    || default.as_ref().is_some_and(calls_volatile);
                if let Some(default) = &default {
                    out.default_calls
                        .push((column.clone(), called_functions(default)));
                }
                out.columns.push((column.clone(), ty));
                if let Some(reference) = descendant(&action, SyntaxKind::REFERENCES_CONSTRAINT) {
                    let key = foreign_key(&reference, &table, Some(&column));
                    let other = key.as_ref().map(|key| key.references.clone());
                    out.foreign_keys.extend(key);
                    // With a default every existing row gets a value, and each one is checked
                    // against the other table (measured: both tables scanned).
                    let op = if default.is_some() {
                        Op::AddColumnReferencesValidated
                    } else {
                        Op::AddColumnReferences
                    };
                    out.effects.push(Effect {
                        op,
                        table: table.clone(),
                        other,
                        detail: Detail::Column(column.clone()),
                    });
                }
                if descendant(&action, SyntaxKind::UNIQUE_CONSTRAINT).is_some()
                    || descendant(&action, SyntaxKind::PRIMARY_KEY_CONSTRAINT).is_some()
                {
                    out.effects
                        .push(effect(Op::AddColumnUnique, Detail::Column(column.clone())));
                }
                if descendant(&action, SyntaxKind::CHECK_CONSTRAINT).is_some() {
                    out.effects
                        .push(effect(Op::AddColumnCheck, Detail::Column(column.clone())));
                }
                if rewrites {
                    out.effects
                        .push(effect(Op::AddColumnVolatileDefault, Detail::Column(column)));
                } else if virtual_column {
                    // Nothing is written, but NOT NULL is checked on every row (measured on 18).
                    if not_null {
                        out.effects
                            .push(effect(Op::SetNotNull, Detail::Column(column.clone())));
                    }
                    out.effects.push(effect(
                        Op::AddColumnVirtualGenerated,
                        Detail::Column(column),
                    ));
                } else if not_null && default.is_none() {
                    out.effects
                        .push(effect(Op::AddColumn, Detail::RequiredColumn(column)));
                } else {
                    out.effects
                        .push(effect(Op::AddColumn, Detail::Column(column)));
                }
            }
            SyntaxKind::ALTER_COLUMN => {
                let column = child(&action, SyntaxKind::COLUMN_NAME_REF)
                    .map(|c| name_of(&c))
                    .unwrap_or_default();
                for sub in children(&action) {
                    match sub.kind() {
                        SyntaxKind::SET_TYPE => {
                            let new_type = type_text(&sub).unwrap_or_default();
                            let computed = child(&sub, SyntaxKind::USING_EXPR)
                                .map(|using| {
                                    using
                                        .children()
                                        .map(|expr| expr.text().to_string())
                                        .collect::<String>()
                                })
                                .filter(|expr| !is_the_column_or_its_cast(expr, &column));
                            out.effects.push(effect(
                                Op::AlterColumnTypeRewrite,
                                Detail::TypeChange {
                                    column: column.clone(),
                                    new_type,
                                    computed,
                                },
                            ));
                        }
                        SyntaxKind::SET_NOT_NULL => out
                            .effects
                            .push(effect(Op::SetNotNull, Detail::Column(column.clone()))),
                        SyntaxKind::DROP_NOT_NULL
                        | SyntaxKind::SET_DEFAULT
                        | SyntaxKind::DROP_DEFAULT => {
                            out.effects.push(effect(
                                Op::DropNotNullOrDefault,
                                Detail::Column(column.clone()),
                            ));
                        }
                        SyntaxKind::SET_STATISTICS
                        | SyntaxKind::SET_OPTIONS
                        | SyntaxKind::RESET_OPTIONS => {
                            out.effects.push(effect(
                                Op::SetStatisticsOrStorage,
                                Detail::Column(column.clone()),
                            ));
                        }
                        SyntaxKind::SET_STORAGE | SyntaxKind::SET_COMPRESSION => {
                            out.effects.push(effect(
                                Op::SetStorageOrCompression,
                                Detail::Column(column.clone()),
                            ));
                        }
                        SyntaxKind::COLUMN_NAME_REF => {}
                        _ => out.unknown = true,
                    }
                }
            }
            SyntaxKind::SET_OPTIONS | SyntaxKind::RESET_OPTIONS => out
                .effects
                .push(effect(Op::SetStatisticsOrStorage, Detail::None)),
            SyntaxKind::ADD_CONSTRAINT => {
                let Some(constraint) = action.children().next() else {
                    continue;
                };
                let name = constraint_name(&constraint);
                let not_valid = descendant(&action, SyntaxKind::NOT_VALID).is_some();
                let using_index = descendant(&constraint, SyntaxKind::USING_INDEX_NAME).is_some()
                    || descendant(&constraint, SyntaxKind::USING_INDEX).is_some();
                match constraint.kind() {
                    SyntaxKind::FOREIGN_KEY_CONSTRAINT => {
                        let other = referenced_table(&constraint);
                        out.foreign_keys
                            .extend(foreign_key(&constraint, &table, None));
                        let op = if not_valid {
                            Op::AddForeignKeyNotValid
                        } else {
                            Op::AddForeignKey
                        };
                        out.effects.push(Effect {
                            op,
                            table: table.clone(),
                            other,
                            detail: Detail::Constraint {
                                name,
                                not_null_column: None,
                            },
                        });
                    }
                    SyntaxKind::CHECK_CONSTRAINT => {
                        let op = if not_valid {
                            Op::AddCheckNotValid
                        } else {
                            Op::AddCheck
                        };
                        let not_null_column = not_null_check_column(&constraint);
                        out.effects.push(effect(
                            op,
                            Detail::Constraint {
                                name,
                                not_null_column,
                            },
                        ));
                    }
                    SyntaxKind::UNIQUE_CONSTRAINT
                    | SyntaxKind::PRIMARY_KEY_CONSTRAINT
                    | SyntaxKind::EXCLUDE_CONSTRAINT => {
                        let op = match (using_index, constraint.kind()) {
                            (true, SyntaxKind::PRIMARY_KEY_CONSTRAINT) => {
                                Op::AddPrimaryKeyUsingIndex
                            }
                            (true, _) => Op::AddConstraintUsingIndex,
                            (false, _) => Op::AddUniqueOrPrimaryKey,
                        };
                        out.effects.push(effect(
                            op,
                            Detail::Constraint {
                                name,
                                not_null_column: None,
                            },
                        ));
                    }
                    _ => out.unknown = true,
                }
            }
            SyntaxKind::VALIDATE_CONSTRAINT => {
                let name =
                    descendant(&action, SyntaxKind::CONSTRAINT_NAME_REF).map(|n| name_of(&n));
                out.effects.push(effect(
                    Op::ValidateCheck,
                    Detail::Constraint {
                        name,
                        not_null_column: None,
                    },
                ));
            }
            SyntaxKind::DROP_CONSTRAINT => {
                let name =
                    descendant(&action, SyntaxKind::CONSTRAINT_NAME_REF).map(|n| name_of(&n));
                out.effects.push(effect(
                    Op::DropCheckConstraint,
                    Detail::Constraint {
                        name,
                        not_null_column: None,
                    },
                ));
            }
            SyntaxKind::RENAME_COLUMN => {
                out.effects.push(effect(Op::Rename, Detail::RenameColumn));
                if let (Some(from), Some(to)) = (
                    child(&action, SyntaxKind::COLUMN_NAME_REF),
                    child(&action, SyntaxKind::COLUMN_NAME),
                ) {
                    out.renames.push(Rename::Column {
                        table: table.clone(),
                        from: name_of(&from),
                        to: name_of(&to),
                    });
                }
            }
            SyntaxKind::TABLE_RENAME_TO => {
                out.effects.push(effect(Op::Rename, Detail::RenameTable));
                if let Some(to) = child(&action, SyntaxKind::TABLE_NAME) {
                    out.renames.push(Rename::Table {
                        from: table.clone(),
                        to: in_schema_of(&table, &name_of(&to)),
                    });
                }
            }
            SyntaxKind::SET_SCHEMA => {
                out.effects.push(effect(Op::Rename, Detail::None));
                if let Some(schema) = child(&action, SyntaxKind::SCHEMA_REF) {
                    let bare = table.rsplit('.').next().unwrap_or_default();
                    out.renames.push(Rename::Table {
                        from: table.clone(),
                        to: normalize(&format!("{}.{bare}", schema.text())),
                    });
                }
            }
            SyntaxKind::RENAME_CONSTRAINT => {
                out.effects.push(effect(Op::Rename, Detail::None));
                if let (Some(from), Some(to)) = (
                    child(&action, SyntaxKind::CONSTRAINT_NAME_REF),
                    child(&action, SyntaxKind::CONSTRAINT_NAME),
                ) {
                    out.renames.push(Rename::Constraint {
                        table: table.clone(),
                        from: name_of(&from),
                        to: name_of(&to),
                    });
                }
            }
            SyntaxKind::DROP_COLUMN => {
                let column = child(&action, SyntaxKind::COLUMN_NAME_REF)
                    .map(|c| name_of(&c))
                    .unwrap_or_default();
                out.effects
                    .push(effect(Op::DropColumn, Detail::Column(column)));
            }
            SyntaxKind::SET_LOGGED | SyntaxKind::SET_UNLOGGED | SyntaxKind::SET_ACCESS_METHOD => {
                out.effects
                    .push(effect(Op::SetLoggedUnlogged, Detail::None))
            }
            SyntaxKind::SET_TABLESPACE => out.effects.push(effect(Op::SetTablespace, Detail::None)),
            SyntaxKind::ENABLE_RLS
            | SyntaxKind::DISABLE_RLS
            | SyntaxKind::FORCE_RLS
            | SyntaxKind::NO_FORCE_RLS => out.effects.push(effect(Op::RowSecurity, Detail::None)),
            SyntaxKind::ALTER_CONSTRAINT => {
                out.effects.push(effect(Op::AlterConstraint, Detail::None))
            }
            SyntaxKind::ENABLE_TRIGGER
            | SyntaxKind::DISABLE_TRIGGER
            | SyntaxKind::ENABLE_ALWAYS_TRIGGER
            | SyntaxKind::ENABLE_REPLICA_TRIGGER => {
                out.effects
                    .push(effect(Op::EnableDisableTrigger, Detail::None));
            }
            SyntaxKind::ATTACH_PARTITION => {
                let partition =
                    descendant(&action, SyntaxKind::TABLE_NAME_REF).map(|t| name_of(&t));
                out.effects.push(Effect {
                    op: Op::AttachPartition,
                    table: table.clone(),
                    other: partition,
                    detail: Detail::None,
                });
            }
            SyntaxKind::DETACH_PARTITION => {
                let partition =
                    descendant(&action, SyntaxKind::TABLE_NAME_REF).map(|t| name_of(&t));
                let concurrently = descendant(&action, SyntaxKind::DETACH_CONCURRENTLY).is_some();
                out.concurrently |= concurrently;
                let op = if concurrently {
                    Op::DetachPartitionConcurrently
                } else {
                    Op::DetachPartition
                };
                out.effects.push(Effect {
                    op,
                    table: table.clone(),
                    other: partition,
                    detail: Detail::None,
                });
            }
            SyntaxKind::IF_EXISTS | SyntaxKind::TABLE_RELATION_NAME | SyntaxKind::RELATION_NAME => {
            }
            _ => out.unknown = true,
        }
    }
}
