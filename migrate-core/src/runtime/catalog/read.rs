//! Reading a [`Catalog`] from `pg_catalog`, in one read-only round trip.

use postgres::SimpleQueryMessage;
use postgres_protocol::escape::escape_literal;

use super::{Catalog, Column, Constraint, Object, ObjectKind, Table};
use crate::runtime::config::Settings;
use crate::runtime::driver::Session;
use crate::snapshot::Row;

/// A namespace of the user's, not the server's; only the tenant's schema when the settings name
/// one (a fleet's target: the database holds the other tenants too).
fn user_namespace(settings: &Settings) -> String {
    let system =
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'";
    match &settings.tenant_schema {
        Some(tenant) => format!("{system} AND n.nspname = {}", escape_literal(tenant)),
        None => system.to_owned(),
    }
}

/// An object no extension owns (`class` is its catalog, `oid` the expression for its oid).
fn not_from_extension(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{class}'::regclass AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// Whether a catalog read also reads what depends on what (`pg_depend`): the creation order a
/// baseline and a written fix need, and a status check or a snapshot does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dependencies {
    Read,
    Skip,
}

/// Every query of the read, each row tagged with what it describes. Tables come first, so that
/// the rows after them find their table.
fn queries(settings: &Settings, dependencies: Dependencies) -> Vec<String> {
    let user_namespace = user_namespace(settings);
    // A tenant's schema holds none of the database's own objects (extensions, event triggers),
    // and only its own comments.
    let (database_wide, database_wide_and, tenant_comments) = match &settings.tenant_schema {
        Some(tenant) => (
            " WHERE false",
            " AND false",
            format!(
                " AND (o.schema = {0} OR (o.type = 'schema' AND o.identity = quote_ident({0})))",
                escape_literal(tenant)
            ),
        ),
        None => ("", "", String::new()),
    };
    // The history table and what belongs with it (the sequence of its digest, the function
    // of its trigger, and the schema it was created in: `MIGRATE_SCHEMA=ops`) are the
    // runner's, not the migrations'.
    let (digest, changed) = crate::runtime::history::companion_objects(settings);
    let schema = escape_literal(&settings.schema);
    let relation = format!(
        "{user_namespace} AND {} AND NOT (n.nspname = {schema} AND c.relname IN ({}, {}))",
        not_from_extension("pg_class", "c.oid"),
        escape_literal(&settings.table),
        escape_literal(&digest)
    );
    let tables = format!("c.relkind IN ('r', 'p') AND {relation}");
    let from = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace";
    let types = format!(
        "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {user_namespace} AND {}",
        not_from_extension("pg_type", "t.oid")
    );
    let functions = format!(
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_namespace} AND {} AND NOT (n.nspname = {schema} AND p.proname = {})",
        not_from_extension("pg_proc", "p.oid"),
        escape_literal(&changed)
    );
    let mut queries = vec![
        format!(
            "SELECT 'table', c.oid::regclass::text, c.relpersistence::text, pg_get_partkeydef(c.oid), \
               (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition), \
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, c.oid::text \
             {from} WHERE {tables} ORDER BY c.oid"
        ),
        format!(
            "SELECT 'column', c.oid::regclass::text, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull::text, \
               pg_get_expr(d.adbin, d.adrelid), nullif(a.attidentity, ''), nullif(a.attgenerated, ''), \
               CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END, \
               (SELECT 'SEQUENCE NAME ' || s.seqrelid::regclass::text || ' START WITH ' || s.seqstart || ' INCREMENT BY ' || s.seqincrement \
                       || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax || ' CACHE ' || s.seqcache || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END \
                  FROM pg_depend sd JOIN pg_sequence s ON s.seqrelid = sd.objid \
                 WHERE sd.classid = 'pg_class'::regclass AND sd.refobjid = c.oid AND sd.refobjsubid = a.attnum AND sd.deptype = 'i') \
             {from} JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid \
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
               LEFT JOIN pg_collation co ON co.oid = a.attcollation LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND {tables} ORDER BY c.oid, a.attnum"
        ),
        // NOT NULL is a column's (`attnotnull`): PostgreSQL 18 also lists it in `pg_constraint`,
        // and 17 a domain's, as constraints of type `n`.
        format!(
            "SELECT 'constraint', c.oid::regclass::text, quote_ident(k.conname), pg_get_constraintdef(k.oid), k.convalidated::text, k.contype::text, k.oid::text \
             {from} JOIN pg_constraint k ON k.conrelid = c.oid WHERE k.conislocal AND k.conparentid = 0 AND k.contype <> 'n' AND {tables}"
        ),
        // An index of a partitioned table prints as `ON ONLY`, which would create it without the
        // partitions' indexes: written without it, it builds them too.
        format!(
            "SELECT 'index', c.oid::regclass::text, quote_ident(i.relname), replace(replace(pg_get_indexdef(i.oid), ' INDEX ' || quote_ident(i.relname) || ' ON ', ' INDEX ON '), ' INDEX ON ONLY ', ' INDEX ON '), x.indisvalid::text, i.oid::text \
             {from} JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE NOT i.relispartition AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = c.oid) AND {tables}"
        ),
        // The other objects: kind, name, what creates it, what drops it, a version, the order.
        format!(
            "SELECT 'object', 'extension', quote_ident(x.extname), 'CREATE EXTENSION IF NOT EXISTS ' || quote_ident(x.extname) || ' WITH SCHEMA ' || quote_ident(n.nspname) || ';', \
               'DROP EXTENSION IF EXISTS ' || quote_ident(x.extname) || ';', x.extversion, x.oid::text \
             FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace{database_wide}"
        ),
        format!(
            "SELECT 'object', 'schema', quote_ident(n.nspname), 'CREATE SCHEMA ' || quote_ident(n.nspname) || ';', 'DROP SCHEMA IF EXISTS ' || quote_ident(n.nspname) || ';', NULL, n.oid::text \
             FROM pg_namespace n WHERE {user_namespace} AND n.nspname <> 'public' AND n.nspname <> {schema} AND {}",
            not_from_extension("pg_namespace", "n.oid")
        ),
        format!(
            "SELECT 'object', 'type', t.oid::regtype::text, 'CREATE TYPE ' || t.oid::regtype::text || ' AS ENUM (' \
               || (SELECT string_agg(quote_literal(l.enumlabel), ', ' ORDER BY l.enumsortorder) FROM pg_enum l WHERE l.enumtypid = t.oid) || ');', \
               'DROP TYPE IF EXISTS ' || t.oid::regtype::text || ';', NULL, t.oid::text {types} AND t.typtype = 'e'"
        ),
        format!(
            "SELECT 'object', 'type', t.oid::regtype::text, 'CREATE DOMAIN ' || t.oid::regtype::text || ' AS ' || format_type(t.typbasetype, t.typtypmod) \
               || CASE WHEN t.typcollation <> b.typcollation THEN ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                    FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) ELSE '' END \
               || coalesce(' DEFAULT ' || t.typdefault, '') || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
               || coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), '' ORDER BY k.conname) FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n'), '') || ';', \
               'DROP DOMAIN IF EXISTS ' || t.oid::regtype::text || ';', NULL, t.oid::text \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type b ON b.oid = t.typbasetype \
             WHERE t.typtype = 'd' AND {user_namespace} AND {}",
            not_from_extension("pg_type", "t.oid")
        ),
        format!(
            "SELECT 'object', 'type', t.oid::regtype::text, 'CREATE TYPE ' || t.oid::regtype::text || ' AS (' \
               || (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ');', \
               'DROP TYPE IF EXISTS ' || t.oid::regtype::text || ';', NULL, t.oid::text \
             {types} AND t.typtype = 'c' AND (SELECT r.relkind FROM pg_class r WHERE r.oid = t.typrelid) = 'c'"
        ),
        format!(
            "SELECT 'object', 'sequence', c.oid::regclass::text, 'CREATE ' || CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END || 'SEQUENCE ' || c.oid::regclass::text || ' AS ' || format_type(s.seqtypid, NULL) \
               || ' START WITH ' || s.seqstart || ' INCREMENT BY ' || s.seqincrement || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax \
               || ' CACHE ' || s.seqcache || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END || ';', \
               'DROP SEQUENCE IF EXISTS ' || c.oid::regclass::text || ';', NULL, c.oid::text \
             {from} JOIN pg_sequence s ON s.seqrelid = c.oid WHERE c.relkind = 'S' AND {relation} \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')"
        ),
        format!(
            "SELECT 'object', 'sequence owner', c.oid::regclass::text, 'ALTER SEQUENCE ' || c.oid::regclass::text || ' OWNED BY ' || d.refobjid::regclass::text || '.' || quote_ident(a.attname) || ';', \
               'ALTER SEQUENCE IF EXISTS ' || c.oid::regclass::text || ' OWNED BY NONE;', NULL, c.oid::text \
             {from} JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' \
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE c.relkind = 'S' AND {relation}"
        ),
        format!(
            "SELECT 'object', 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid) || ';', \
               'DROP ' || CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END || ' IF EXISTS ' || p.oid::regprocedure::text || ';', NULL, p.oid::text \
             {functions} AND p.prokind IN ('f', 'p')"
        ),
        format!(
            "SELECT 'object', 'view', c.oid::regclass::text, \
               CASE c.relkind WHEN 'v' THEN 'CREATE VIEW ' || c.oid::regclass::text || coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '') || ' AS' || chr(10) || pg_get_viewdef(c.oid) \
                 ELSE 'CREATE MATERIALIZED VIEW ' || c.oid::regclass::text || ' AS' || chr(10) || rtrim(pg_get_viewdef(c.oid), ';') || chr(10) || '  WITH DATA;' END, \
               'DROP ' || CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'MATERIALIZED VIEW' END || ' IF EXISTS ' || c.oid::regclass::text || ';', NULL, c.oid::text \
             {from} WHERE c.relkind IN ('v', 'm') AND {relation}"
        ),
        format!(
            "SELECT 'object', 'index', i.oid::regclass::text, pg_get_indexdef(i.oid) || ';', 'DROP INDEX IF EXISTS ' || i.oid::regclass::text || ';', NULL, i.oid::text \
             {from} JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class i ON i.oid = x.indexrelid WHERE c.relkind = 'm' AND {relation}"
        ),
        format!(
            "SELECT 'object', 'trigger', quote_ident(g.tgname) || ' ON ' || c.oid::regclass::text, pg_get_triggerdef(g.oid) || ';', \
               'DROP TRIGGER IF EXISTS ' || quote_ident(g.tgname) || ' ON ' || c.oid::regclass::text || ';', NULL, g.oid::text \
             {from} JOIN pg_trigger g ON g.tgrelid = c.oid WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND {relation}"
        ),
        format!(
            "SELECT 'object', 'row security', c.oid::regclass::text, 'ALTER TABLE ' || c.oid::regclass::text || ' ENABLE ROW LEVEL SECURITY;', \
               'ALTER TABLE ' || c.oid::regclass::text || ' DISABLE ROW LEVEL SECURITY;', NULL, c.oid::text {from} WHERE c.relrowsecurity AND {tables} \
             UNION ALL SELECT 'object', 'row security', c.oid::regclass::text || ' (forced)', 'ALTER TABLE ' || c.oid::regclass::text || ' FORCE ROW LEVEL SECURITY;', \
               'ALTER TABLE ' || c.oid::regclass::text || ' NO FORCE ROW LEVEL SECURITY;', NULL, c.oid::text {from} WHERE c.relforcerowsecurity AND {tables}"
        ),
        format!(
            "SELECT 'object', 'policy', quote_ident(p.polname) || ' ON ' || c.oid::regclass::text, \
               'CREATE POLICY ' || quote_ident(p.polname) || ' ON ' || c.oid::regclass::text || ' AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END \
               || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END \
               || ' TO ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ' ORDER BY r) FROM unnest(p.polroles) r) \
               || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '') || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') || ';', \
               'DROP POLICY IF EXISTS ' || quote_ident(p.polname) || ' ON ' || c.oid::regclass::text || ';', NULL, p.oid::text \
             {from} JOIN pg_policy p ON p.polrelid = c.oid WHERE {tables}"
        ),
        // Comments, named as `COMMENT ON` names their object. An object type this model has no
        // `COMMENT ON` form for comes out without a definition: unrenderable. Oids below 16384
        // are the server's own objects (access methods, languages).
        format!(
            "SELECT 'object', 'comment', o.type || ' ' || o.identity, CASE WHEN o.target IS NOT NULL THEN 'COMMENT ON ' || o.target || ' IS ' || quote_literal(d.description) || ';' END, \
               CASE WHEN o.target IS NOT NULL THEN 'COMMENT ON ' || o.target || ' IS NULL;' END, NULL, d.objoid::text \
             FROM pg_description d, LATERAL (SELECT i.type, i.schema, i.identity, CASE \
                 WHEN i.type IN ('table', 'view', 'materialized view', 'index', 'sequence', 'function', 'procedure', 'type', 'domain', 'schema') THEN upper(i.type) || ' ' || i.identity \
                 WHEN i.type LIKE '% column' THEN 'COLUMN ' || i.identity \
                 WHEN i.type IN ('table constraint', 'trigger', 'policy') THEN upper(replace(i.type, 'table ', '')) || ' ' || replace(i.identity, ' on ', ' ON ') \
                 WHEN i.type = 'domain constraint' THEN 'CONSTRAINT ' || replace(i.identity, ' on ', ' ON DOMAIN ') END AS target \
               FROM pg_identify_object(d.classoid, d.objoid, d.objsubid) i) o \
             WHERE d.classoid <> 'pg_extension'::regclass AND d.objoid >= 16384 AND coalesce(o.schema, '') NOT IN ('pg_catalog', 'information_schema') AND coalesce(o.schema, '') !~ '^pg_(toast|temp)' \
               AND NOT (o.type = 'schema' AND o.identity IN ('public', 'pg_catalog', 'information_schema')) \
               AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e') \
               AND NOT EXISTS (SELECT 1 FROM pg_class h JOIN pg_namespace hn ON hn.oid = h.relnamespace \
                 WHERE d.classoid = 'pg_class'::regclass AND h.oid = d.objoid AND h.relname = {} AND hn.nspname = {}){tenant_comments}",
            escape_literal(&settings.table),
            escape_literal(&settings.schema)
        ),
        // What this model cannot recreate.
        format!(
            "SELECT 'unrenderable', CASE c.relkind WHEN 'f' THEN 'foreign table ' ELSE 'table ' END || c.oid::regclass::text {from} WHERE c.relkind = 'f' AND {relation} \
             UNION ALL SELECT 'unrenderable', 'rule ' || quote_ident(r.rulename) || ' ON ' || c.oid::regclass::text {from} JOIN pg_rewrite r ON r.ev_class = c.oid WHERE r.rulename <> '_RETURN' AND {relation} \
             UNION ALL SELECT 'unrenderable', CASE t.typtype WHEN 'r' THEN 'range type ' ELSE 'base type ' END || t.oid::regtype::text {types} AND (t.typtype = 'r' OR (t.typtype = 'b' AND t.typcategory <> 'A')) \
             UNION ALL SELECT 'unrenderable', 'aggregate ' || p.oid::regprocedure::text {functions} AND p.prokind IN ('a', 'w') \
             UNION ALL SELECT 'unrenderable', 'operator ' || o.oid::regoperator::text FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {user_namespace} AND {} \
             UNION ALL SELECT 'unrenderable', 'collation ' || quote_ident(n.nspname) || '.' || quote_ident(l.collname) FROM pg_collation l JOIN pg_namespace n ON n.oid = l.collnamespace WHERE {user_namespace} AND {} \
             UNION ALL SELECT 'unrenderable', 'statistics ' || quote_ident(n.nspname) || '.' || quote_ident(s.stxname) FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {user_namespace} \
             UNION ALL SELECT 'unrenderable', 'event trigger ' || quote_ident(v.evtname) FROM pg_event_trigger v WHERE {}{database_wide_and}",
            not_from_extension("pg_operator", "o.oid"),
            not_from_extension("pg_collation", "l.oid"),
            not_from_extension("pg_event_trigger", "v.oid"),
        ),
    ];
    if dependencies == Dependencies::Read {
        // What depends on what, between the objects above: the creation order.
        queries.push(format!(
                "SELECT DISTINCT 'depends', CASE WHEN d.deptype = 'a' AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                     AND (SELECT s.relkind FROM pg_class s WHERE s.oid = d.objid) = 'S' THEN 'owned:' || d.objid ELSE {} END, {} \
                 FROM pg_depend d WHERE d.deptype IN ('n', 'a') AND d.objid >= 16384 AND d.refobjid >= 16384",
                dependency_node("d.classid", "d.objid"),
                dependency_node("d.refclassid", "d.refobjid"),
            ));
    }
    queries
}

/// The SQL naming the object at (`class`, `oid`) as the catalog's nodes name it (see
/// [`super::depend`]): a part folded into its whole (a constraint's index into the constraint, a
/// view's rewrite rule into the view, a table's row type into the table, an array type into its
/// element, itself folded so), an extension's member into the extension, and a column default as
/// itself, so that
/// a cycle through it can be broken.
fn dependency_node(class: &str, oid: &str) -> String {
    format!(
        "coalesce((SELECT 'pg_extension:' || e.refobjid FROM pg_depend e WHERE e.classid = {class} AND e.objid = {oid} AND e.deptype = 'e' LIMIT 1), \
           CASE {class} \
             WHEN 'pg_class'::regclass THEN (SELECT CASE WHEN r.relkind IN ('i', 'I') THEN coalesce((SELECT 'pg_constraint:' || k.oid FROM pg_constraint k \
                   WHERE k.conindid = r.oid AND k.contype IN ('p', 'u', 'x') LIMIT 1), 'pg_class:' || r.oid) \
                 WHEN r.relkind = 'c' THEN 'pg_type:' || r.reltype ELSE 'pg_class:' || r.oid END FROM pg_class r WHERE r.oid = {oid}) \
             WHEN 'pg_attrdef'::regclass THEN (SELECT 'default:' || ad.adrelid || ':' || quote_ident(a.attname) FROM pg_attrdef ad \
                   JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.oid = {oid}) \
             WHEN 'pg_constraint'::regclass THEN (SELECT CASE WHEN k.contypid <> 0 THEN 'pg_type:' || k.contypid ELSE 'pg_constraint:' || k.oid END \
                   FROM pg_constraint k WHERE k.oid = {oid}) \
             WHEN 'pg_type'::regclass THEN (SELECT CASE WHEN t.typrelid <> 0 AND (SELECT r.relkind FROM pg_class r WHERE r.oid = t.typrelid) <> 'c' \
                   THEN 'pg_class:' || t.typrelid \
                   WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN (SELECT CASE WHEN e.typrelid <> 0 AND (SELECT r.relkind FROM pg_class r WHERE r.oid = e.typrelid) <> 'c' \
                     THEN 'pg_class:' || e.typrelid ELSE coalesce((SELECT 'pg_extension:' || x.refobjid FROM pg_depend x WHERE x.classid = 'pg_type'::regclass \
                     AND x.objid = e.oid AND x.deptype = 'e' LIMIT 1), 'pg_type:' || e.oid) END FROM pg_type e WHERE e.oid = t.typelem) \
                   ELSE 'pg_type:' || t.oid END \
                   FROM pg_type t WHERE t.oid = {oid}) \
             WHEN 'pg_rewrite'::regclass THEN (SELECT 'pg_class:' || w.ev_class FROM pg_rewrite w WHERE w.oid = {oid}) \
             ELSE {class}::regclass::text || ':' || {oid} END)"
    )
}

fn object_kind(name: &str) -> Option<ObjectKind> {
    Some(match name {
        "extension" => ObjectKind::Extension,
        "schema" => ObjectKind::Schema,
        "type" => ObjectKind::Type,
        "sequence" => ObjectKind::Sequence,
        "sequence owner" => ObjectKind::SequenceOwner,
        "function" => ObjectKind::Function,
        "view" => ObjectKind::View,
        "index" => ObjectKind::ViewIndex,
        "trigger" => ObjectKind::Trigger,
        "row security" => ObjectKind::RowSecurity,
        "policy" => ObjectKind::Policy,
        "comment" => ObjectKind::Comment,
        _ => return None,
    })
}

/// Every row of a batch, as text cells.
pub(crate) fn rows(
    messages: &[SimpleQueryMessage],
) -> impl Iterator<Item = Vec<Option<String>>> + '_ {
    messages.iter().filter_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(
            (0..row.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect(),
        ),
        _ => None,
    })
}

fn order(cell: &Option<String>) -> u64 {
    cell.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn flag(cell: &Option<String>) -> bool {
    cell.as_deref() == Some("true")
}

fn first_char(cell: &Option<String>) -> Option<char> {
    cell.as_deref().and_then(|v| v.chars().next())
}

impl Catalog {
    /// Reads the catalog in one round trip, inside a read-only transaction with
    /// `search_path = pg_catalog`.
    pub(crate) async fn read<S: Session>(
        client: &mut S,
        settings: &Settings,
        dependencies: Dependencies,
    ) -> Result<Catalog, postgres::Error> {
        Ok(Catalog::from_rows(
            Catalog::read_rows(client, settings, dependencies).await?,
        ))
    }

    /// The rows [`Catalog::read`] builds the catalog from: what a schema snapshot stores.
    pub(crate) async fn read_rows<S: Session>(
        client: &mut S,
        settings: &Settings,
        dependencies: Dependencies,
    ) -> Result<Vec<Row>, postgres::Error> {
        let sql = format!(
            "BEGIN READ ONLY; SET LOCAL search_path = pg_catalog; {}; COMMIT",
            queries(settings, dependencies).join("; ")
        );
        let messages = client.simple_query(&sql).await?;
        Ok(rows(&messages).collect())
    }

    /// The catalog a schema snapshot holds; `None` when the text is not a snapshot.
    pub fn from_snapshot(text: &str) -> Option<Catalog> {
        crate::snapshot::decode(text).map(Catalog::from_rows)
    }

    fn from_rows(rows: impl IntoIterator<Item = Row>) -> Catalog {
        let mut catalog = Catalog::default();
        for row in rows {
            let Some(Some(tag)) = row.first() else {
                continue;
            };
            match (tag.as_str(), &row[1..]) {
                ("table", [Some(name), persistence, key, parent, bound, oid]) => {
                    catalog.tables.insert(
                        name.clone(),
                        Table {
                            unlogged: persistence.as_deref() == Some("u"),
                            partition_key: key.clone(),
                            partition_of: parent.clone().zip(bound.clone()),
                            order: order(oid),
                            ..Table::default()
                        },
                    );
                }
                (
                    "column",
                    [
                        Some(table),
                        Some(name),
                        Some(data_type),
                        not_null,
                        default,
                        identity,
                        generated,
                        collation,
                        identity_options,
                    ],
                ) => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.columns.push(Column {
                            name: name.clone(),
                            data_type: data_type.clone(),
                            not_null: flag(not_null),
                            default: default.clone(),
                            identity: first_char(identity),
                            identity_options: identity_options.clone(),
                            generated: first_char(generated),
                            collation: collation.clone(),
                        });
                    }
                }
                // A snapshot holds no oid of a constraint or an index.
                (
                    "constraint",
                    [
                        Some(table),
                        Some(name),
                        Some(definition),
                        validated,
                        kind,
                        oid @ ..,
                    ],
                ) => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.constraints.insert(
                            name.clone(),
                            Constraint {
                                definition: definition.clone(),
                                validated: flag(validated),
                                kind: first_char(kind).unwrap_or('c'),
                                order: oid.first().map_or(0, order),
                            },
                        );
                    }
                }
                ("index", [Some(table), Some(name), Some(definition), valid, oid @ ..]) => {
                    if let Some(entry) = catalog.tables.get_mut(table) {
                        entry.indexes.insert(name.clone(), definition.clone());
                        entry
                            .index_order
                            .insert(name.clone(), oid.first().map_or(0, order));
                        if !flag(valid) {
                            entry.invalid_indexes.insert(name.clone());
                        }
                    }
                }
                ("object", [Some(kind), Some(name), definition, drop, version, oid]) => {
                    let Some(kind) = object_kind(kind) else {
                        continue;
                    };
                    match (definition, drop) {
                        (Some(definition), Some(drop)) => {
                            catalog.objects.insert(
                                (kind, name.clone()),
                                Object {
                                    definition: definition.clone(),
                                    drop: drop.clone(),
                                    version: version.clone(),
                                    order: order(oid),
                                },
                            );
                        }
                        _ => catalog.unrenderable.push(format!("{kind} on {name}")),
                    }
                }
                ("unrenderable", [Some(what)]) => catalog.unrenderable.push(what.clone()),
                ("depends", [Some(node), Some(required)]) if node != required => {
                    catalog.dependencies.push((node.clone(), required.clone()))
                }
                _ => {}
            }
        }
        catalog
    }
}
