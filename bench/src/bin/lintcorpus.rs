//! `scripts/lintcorpus`: the linter scored on real migrations. Each repository's migrations are
//! read from its git history at run time (never copied here), replayed on a throwaway
//! PostgreSQL 15, and every statement is labelled from what the server did: the session's
//! `pg_locks`, a changed `relfilenode` (a rewrite), a rise of `pg_stat_xact_user_tables`
//! scans. The linter and squawk then judge the same statements; the tables printed are recall
//! and precision per class.
//!
//! Usage: `lintcorpus <squawk binary> <git dir>:<layout>:<path>...`, layout `diesel`
//! (`<path>/<name>/up.sql`) or `sqlx` (`<path>/<name>.sql`, `.down.sql` left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use pg_harness::Cluster;

/// A migration of a repository, as its tool runs it.
struct Source {
    name: String,
    sql: String,
}

fn git(dir: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sources(dir: &str, layout: &str, path: &str) -> Vec<Source> {
    let files = git(dir, &["ls-tree", "-r", "--name-only", "HEAD", path]);
    let mut wanted: Vec<(String, String)> = files
        .lines()
        .filter_map(|file| {
            let rest = file.strip_prefix(path)?.trim_start_matches('/');
            match layout {
                "diesel" => rest
                    .strip_suffix("/up.sql")
                    .filter(|name| !name.contains('/'))
                    .map(|name| (name.to_owned(), file.to_owned())),
                "sqlx" => (rest.ends_with(".sql") && !rest.ends_with(".down.sql") && !rest.contains('/'))
                    .then(|| (rest.trim_end_matches(".up.sql").trim_end_matches(".sql").to_owned(), file.to_owned())),
                other => panic!("unknown layout {other}"),
            }
        })
        .collect();
    // Diesel orders by the version before the first `_`, dashes left out: `2017-09-23-182408`
    // comes after `20170804200817`.
    wanted.sort_by_key(|(name, _)| {
        let version: String = name.split('_').next().unwrap_or_default().replace('-', "");
        (version, name.clone())
    });
    wanted
        .into_iter()
        .map(|(name, file)| Source { name, sql: git(dir, &["show", &format!("HEAD:{file}")]) })
        .collect()
}

/// What the server did for one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    /// Took no lock that blocks traffic on an existing table, or took it without scanning.
    Safe,
    /// ACCESS EXCLUSIVE on an existing table, released at once (no scan, no rewrite).
    InstantExclusive,
    /// A scan or rewrite of an existing table while a write-blocking lock on one is held.
    Stalls(Kind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Rewrite,
    IndexBuild,
    Scan,
    /// Under a lock an earlier statement of the transaction took.
    HeldAcross,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rewrite => "rewrite under its own lock",
            Kind::IndexBuild => "index build under its own lock",
            Kind::Scan => "scan or validation under its own lock",
            Kind::HeldAcross => "scan while an earlier statement's lock is held",
        }
    }
}

/// Per table: (relfilenode, sequential scans in this transaction). Index lookups (a foreign key
/// check on insert) read a few pages and are left out.
fn table_state(client: &mut postgres::Client, tables: &BTreeSet<u32>) -> BTreeMap<u32, (u32, i64)> {
    if tables.is_empty() {
        return BTreeMap::new();
    }
    let list: Vec<String> = tables.iter().map(u32::to_string).collect();
    client
        .query(
            &format!(
                "SELECT c.oid, c.relfilenode::oid, coalesce(s.seq_scan, 0)::int8 FROM pg_class c LEFT JOIN pg_stat_xact_user_tables s ON s.relid = c.oid WHERE c.oid IN ({})",
                list.join(", ")
            ),
            &[],
        )
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get::<_, u32>(0), (r.get::<_, u32>(1), r.get::<_, i64>(2))))
                .collect()
        })
        .unwrap_or_default()
}

/// The tables a DML statement's plan reads in full. With the corpus's tables empty, executing
/// it proves nothing (a hash join over an empty side never reads the other), so its plan says
/// what it would read on a live table.
fn planned_scans(client: &mut postgres::Client, statement: &str) -> BTreeSet<u32> {
    fn walk(plan: &serde_json::Value, out: &mut Vec<String>) {
        if matches!(plan["Node Type"].as_str(), Some("Seq Scan" | "Bitmap Heap Scan"))
            && let (Some(schema), Some(relation)) = (plan["Schema"].as_str(), plan["Relation Name"].as_str())
        {
            out.push(format!("{}.{}", quote(schema), quote(relation)));
        }
        for child in plan["Plans"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    fn quote(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
    let Ok(messages) = client.simple_query(&format!("EXPLAIN (FORMAT JSON, VERBOSE) {statement}")) else {
        return BTreeSet::new();
    };
    let Some(text) = messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    }) else {
        return BTreeSet::new();
    };
    let text: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut names = Vec::new();
    walk(&text[0]["Plan"], &mut names);
    names
        .iter()
        .filter_map(|name| {
            client
                .query_one(&format!("SELECT {}::regclass::oid", postgres_literal(name)), &[])
                .ok()
                .map(|r| r.get::<_, u32>(0))
        })
        .collect()
}

fn postgres_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn is_dml(statement: &str) -> bool {
    let first = statement.split_whitespace().next().unwrap_or_default().to_lowercase();
    matches!(first.as_str(), "update" | "delete" | "insert" | "select" | "with")
}

/// This session's strongest granted lock per relation.
fn locks(client: &mut postgres::Client) -> BTreeMap<u32, u8> {
    let rows = client
        .query(
            "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted AND relation IS NOT NULL",
            &[],
        )
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for row in rows {
        let relation: u32 = row.get(0);
        let mode: String = row.get(1);
        let strength = match mode.as_str() {
            "AccessShareLock" => 1,
            "RowShareLock" => 2,
            "RowExclusiveLock" => 3,
            "ShareUpdateExclusiveLock" => 4,
            "ShareLock" => 5,
            "ShareRowExclusiveLock" => 6,
            "ExclusiveLock" => 7,
            "AccessExclusiveLock" => 8,
            _ => 0,
        };
        let entry = out.entry(relation).or_insert(0);
        *entry = (*entry).max(strength);
    }
    out
}

const SHARE: u8 = 5;
const ACCESS_EXCLUSIVE: u8 = 8;

/// The user tables (and materialized views) that exist now.
fn existing_tables(client: &mut postgres::Client) -> BTreeSet<u32> {
    client
        .query(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'",
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

/// One statement of the corpus, judged.
struct Judged {
    repository: String,
    migration: String,
    line: usize,
    text: String,
    label: Label,
    /// Flagged by one of the lock rules (what precision counts).
    ours: bool,
    /// Flagged by any rule, a compatibility rule included (what recall counts: the statement
    /// does not reach production unreviewed).
    ours_any: bool,
    squawk: bool,
    squawk_any: bool,
    squawk_with_timeouts: bool,
    /// Flagged `unknown-statement`: the lock model does not know the statement.
    unknown: bool,
}

/// Rules that judge a statement's locks and cost. Left out, as in the issue's figures: the
/// deliberate DROP INDEX rule and the compatibility rules (renames, drops, a required field).
const OUR_LOCK_RULES: &[&str] = &[
    "require-concurrent-index-creation",
    "constraint-missing-not-valid",
    "validate-in-same-transaction",
    "lock-held-across-slow-statement",
    "adding-not-nullable-field",
    "adding-field-with-volatile-default",
    "changing-column-type",
    "disallowed-unique-constraint",
    "require-concurrent-reindex",
    "table-rewrite",
    "drop-constraint-locks-both-tables",
    "key-column-type-locks-both-tables",
];

/// squawk's rules on locks and cost, by the same measure.
const SQUAWK_LOCK_RULES: &[&str] = &[
    "adding-field-with-default",
    "adding-foreign-key-constraint",
    "adding-not-nullable-field",
    "adding-serial-primary-key-field",
    "changing-column-type",
    "constraint-missing-not-valid",
    "disallowed-unique-constraint",
    "require-concurrent-index-creation",
    "ban-alter-domain-with-add-constraint",
];

/// The compatibility rules, left out of precision (a rename or a drop is flagged for the
/// previous release, not for its locks).
const OUR_COMPATIBILITY_RULES: &[&str] = &[
    "renaming-column",
    "renaming-table",
    "ban-drop-column",
    "ban-drop-table",
    "adding-required-field",
];
const SQUAWK_COMPATIBILITY_RULES: &[&str] = &[
    "renaming-column",
    "renaming-table",
    "ban-drop-column",
    "ban-drop-table",
    "ban-drop-database",
    "adding-required-field",
];

/// squawk's rules that ask for timeouts: about any ACCESS EXCLUSIVE statement, not its cost.
const SQUAWK_TIMEOUT_RULES: &[&str] = &["require-lock-timeout", "require-statement-timeout"];

/// squawk's findings in `file`, as (0-based line, rule).
fn squawk(binary: &Path, file: &Path, in_transaction: bool) -> Vec<(usize, String)> {
    let mut command = Command::new(binary);
    command.args(["--reporter", "json", "--pg-version", "15"]);
    if in_transaction {
        command.arg("--assume-in-transaction");
    }
    let out = command.arg(file).output().expect("run squawk");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["line"].as_u64()? as usize, v["rule_name"].as_str()?.to_owned())))
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let squawk_binary = PathBuf::from(args.next().expect("the squawk binary"));
    let repositories: Vec<String> = args.collect();
    let cluster = Cluster::start();
    let work = std::env::temp_dir().join(format!("lintcorpus-{}", std::process::id()));
    let mut judged: Vec<Judged> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for spec in &repositories {
        let mut parts = spec.splitn(3, ':');
        let (dir, layout, path) = (parts.next().unwrap(), parts.next().expect("layout"), parts.next().expect("path"));
        let repository = dir
            .trim_end_matches("/repo")
            .rsplit('/')
            .next()
            .unwrap_or(dir)
            .replace('+', "/");
        let sources = sources(dir, layout, path);
        // The same files with this project's header, in one chain: what the linter reads.
        let migrations = work.join(repository.replace('/', "_"));
        let _ = std::fs::remove_dir_all(&migrations);
        std::fs::create_dir_all(&migrations).unwrap();
        let mut header_lines = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let parents = if i == 0 { "none".to_owned() } else { format!("m{:04}", i - 1) };
            let no_transaction = source.sql.to_lowercase().contains("concurrently");
            // The blank line ends the header: the file's own comments stay comments.
            let header = format!(
                "-- revision: m{i:04}\n-- parents: {parents}\n{}\n",
                if no_transaction { "-- migrate:no-transaction\n" } else { "" }
            );
            header_lines.push(header.lines().count());
            std::fs::write(migrations.join(format!("{i:04}.sql")), format!("{header}{}", source.sql)).unwrap();
        }
        let analysis = migrate::analysis::check::analyze_dir_with(&migrations, "m", &migrate::LintConfig::default());
        let findings_of = |rules: &[&[&str]]| -> BTreeSet<(String, usize)> {
            analysis
                .diagnostics
                .iter()
                .filter(|d| d.is_error() && rules.iter().any(|r| r.contains(&d.check)))
                .filter_map(|d| d.location.as_ref().map(|l| (l.path.clone(), l.line)))
                .collect()
        };
        let findings = findings_of(&[OUR_LOCK_RULES]);
        let findings_any = findings_of(&[OUR_LOCK_RULES, OUR_COMPATIBILITY_RULES]);
        let unknown = findings_of(&[&["unknown-statement"]]);

        let db = cluster.create_database();
        let mut client = db.client();
        // Not UTC: a linter cannot know a server's TimeZone, and under UTC alone
        // `timestamp -> timestamptz` skips its rewrite.
        client.batch_execute("SET TimeZone = 'Europe/Paris'").unwrap();
        for (i, source) in sources.iter().enumerate() {
            let lowered = source.sql.to_lowercase();
            let Some(migration) = analysis.migrations.iter().find(|m| m.path.ends_with(&format!("/{i:04}.sql"))) else {
                skipped.push(format!("{repository} {}: the analysis did not accept it", source.name));
                let _ = client.batch_execute(&source.sql);
                continue;
            };
            if lowered.contains("\nbegin;") || lowered.starts_with("begin;") || lowered.contains("\ncommit;") {
                skipped.push(format!("{repository} {}: its own transaction control", source.name));
                let _ = client.batch_execute(&source.sql);
                continue;
            }
            let no_transaction = migration.header.no_transaction;
            let file = migrations.join(format!("{i:04}.sql"));
            let squawked = squawk(&squawk_binary, &file, !no_transaction);
            let before_migration = existing_tables(&mut client);
            // Tables created in this migration from existing ones: as big as their sources.
            let mut filled: BTreeSet<u32> = BTreeSet::new();
            let mut results = Vec::new();
            let mut failed = None;
            if !no_transaction {
                client.batch_execute("BEGIN").unwrap();
            }
            let mut held: BTreeMap<u32, u8> = BTreeMap::new();
            for statement in &migration.statements {
                let span = &statement.span;
                let text = &migration.sql[span.start..span.end];
                let concurrent = text.to_lowercase().contains("concurrently");
                let own_transaction = no_transaction && !concurrent;
                if own_transaction {
                    client.batch_execute("BEGIN").unwrap();
                }
                let tracked: BTreeSet<u32> = before_migration.union(&filled).copied().collect();
                let state_before = if concurrent { BTreeMap::new() } else { table_state(&mut client, &tracked) };
                let planned = if !concurrent && is_dml(text) { planned_scans(&mut client, text) } else { BTreeSet::new() };
                let tables_before = if concurrent { BTreeSet::new() } else { existing_tables(&mut client) };
                if let Err(e) = client.batch_execute(text) {
                    let reason = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
                    failed = Some(format!("{}:{}: {reason}", source.name, span.line - header_lines[i]));
                    break;
                }
                let label = if concurrent {
                    Label::Safe
                } else {
                    let state_after = table_state(&mut client, &tracked);
                    let now = locks(&mut client);
                    let touched: Vec<(u32, bool)> = tracked
                        .iter()
                        .filter_map(|oid| {
                            let (file_before, scans_before) = state_before.get(oid)?;
                            let (file_after, scans_after) = state_after.get(oid)?;
                            let rewrote = file_before != file_after;
                            let scanned = if is_dml(text) { planned.contains(oid) } else { scans_after > scans_before };
                            (rewrote || scanned).then_some((*oid, rewrote))
                        })
                        .collect();
                    if !touched.is_empty() {
                        // What this statement created or wrote to from them is filled too.
                        for oid in existing_tables(&mut client).difference(&tables_before) {
                            filled.insert(*oid);
                        }
                        for (oid, mode) in &now {
                            if *mode >= 3 && !before_migration.contains(oid) && held.get(oid).copied().unwrap_or(0) < 3 {
                                filled.insert(*oid);
                            }
                        }
                    }
                    let strong_now = before_migration
                        .iter()
                        .any(|oid| now.get(oid).copied().unwrap_or(0) >= SHARE && now.get(oid) > held.get(oid));
                    let held_before = before_migration.iter().any(|oid| held.get(oid).copied().unwrap_or(0) >= SHARE);
                    let exclusive_now = before_migration
                        .iter()
                        .any(|oid| now.get(oid).copied().unwrap_or(0) == ACCESS_EXCLUSIVE && held.get(oid).copied().unwrap_or(0) < ACCESS_EXCLUSIVE);
                    let label = if !touched.is_empty() && strong_now {
                        let lowered = text.to_lowercase();
                        Label::Stalls(if touched.iter().any(|(_, rewrote)| *rewrote) {
                            Kind::Rewrite
                        } else if lowered.starts_with("create index") || lowered.starts_with("create unique index") || lowered.contains(" unique") || lowered.contains("primary key") {
                            Kind::IndexBuild
                        } else {
                            Kind::Scan
                        })
                    } else if !touched.is_empty() && held_before {
                        Label::Stalls(Kind::HeldAcross)
                    } else if exclusive_now {
                        Label::InstantExclusive
                    } else {
                        Label::Safe
                    };
                    held = now;
                    label
                };
                if own_transaction {
                    client.batch_execute("COMMIT").unwrap();
                    held.clear();
                }
                let file_name = format!("m/{i:04}.sql");
                let statement_lines = span.line..migration.statements.iter().map(|s| s.span.line).find(|l| *l > span.line).unwrap_or(usize::MAX);
                let flags = |rules: &[&str]| squawked.iter().any(|(line, rule)| statement_lines.contains(&(line + 1)) && rules.contains(&rule.as_str()));
                results.push(Judged {
                    repository: repository.clone(),
                    migration: source.name.clone(),
                    line: span.line - header_lines[i],
                    text: text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(110).collect(),
                    label,
                    ours: findings.iter().any(|(path, line)| path == &file_name && statement_lines.contains(line)),
                    ours_any: findings_any.iter().any(|(path, line)| path == &file_name && statement_lines.contains(line)),
                    unknown: unknown.iter().any(|(path, line)| path == &file_name && statement_lines.contains(line)),
                    squawk: flags(SQUAWK_LOCK_RULES),
                    squawk_any: flags(SQUAWK_LOCK_RULES) || flags(SQUAWK_COMPATIBILITY_RULES),
                    squawk_with_timeouts: flags(SQUAWK_LOCK_RULES) || flags(SQUAWK_TIMEOUT_RULES),
                });
            }
            match failed {
                None => {
                    if !no_transaction {
                        client.batch_execute("COMMIT").unwrap();
                    }
                    judged.extend(results);
                }
                Some(reason) => {
                    let _ = client.batch_execute("ROLLBACK");
                    skipped.push(format!("{repository} {reason}"));
                    // Left unapplied: what comes after may fail in turn and is skipped too.
                }
            }
        }
    }
    report(&judged, &skipped);
    let _ = std::fs::remove_dir_all(&work);
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 { "–".to_owned() } else { format!("{:.1} %", 100.0 * part as f64 / whole as f64) }
}

fn report(judged: &[Judged], skipped: &[String]) {
    let repositories: BTreeSet<&str> = judged.iter().map(|j| j.repository.as_str()).collect();
    let migrations: BTreeSet<(&str, &str)> = judged.iter().map(|j| (j.repository.as_str(), j.migration.as_str())).collect();
    println!(
        "{} statements of {} migrations from {} repositories ({}); {} migration(s) not replayed\n",
        judged.len(),
        migrations.len(),
        repositories.len(),
        repositories.iter().copied().collect::<Vec<_>>().join(", "),
        skipped.len()
    );
    let stalls = |j: &&Judged| matches!(j.label, Label::Stalls(_));
    println!("| class | statements | migrate finds | squawk finds |");
    println!("|---|---|---|---|");
    for kind in [Kind::Rewrite, Kind::IndexBuild, Kind::Scan, Kind::HeldAcross] {
        let of: Vec<&Judged> = judged.iter().filter(|j| j.label == Label::Stalls(kind)).collect();
        println!(
            "| {} | {} | {} | {} |",
            kind.name(),
            of.len(),
            percent(of.iter().filter(|j| j.ours_any).count(), of.len()),
            percent(of.iter().filter(|j| j.squawk_any).count(), of.len())
        );
    }
    let dangerous: Vec<&Judged> = judged.iter().filter(stalls).collect();
    println!(
        "| **every statement that stalls traffic (recall)** | {} | {} | {} |",
        dangerous.len(),
        percent(dangerous.iter().filter(|j| j.ours_any).count(), dangerous.len()),
        percent(dangerous.iter().filter(|j| j.squawk_any).count(), dangerous.len())
    );
    println!();
    println!("| precision | migrate | squawk | squawk with its timeout rules |");
    println!("|---|---|---|---|");
    let precision = |flagged: &dyn Fn(&Judged) -> bool, fair: &dyn Fn(&Judged) -> bool| {
        let flags: Vec<&Judged> = judged.iter().filter(|j| flagged(j)).collect();
        format!("{} ({} flags)", percent(flags.iter().filter(|j| fair(j)).count(), flags.len()), flags.len())
    };
    let strict = |j: &Judged| matches!(j.label, Label::Stalls(_));
    let lenient = |j: &Judged| matches!(j.label, Label::Stalls(_) | Label::InstantExclusive);
    println!(
        "| flags on statements that stall traffic | {} | {} | {} |",
        precision(&|j| j.ours, &strict),
        precision(&|j| j.squawk, &strict),
        precision(&|j| j.squawk_with_timeouts, &strict)
    );
    println!(
        "| counting instant ACCESS EXCLUSIVE statements as fair | {} | {} | {} |",
        precision(&|j| j.ours, &lenient),
        precision(&|j| j.squawk, &lenient),
        precision(&|j| j.squawk_with_timeouts, &lenient)
    );
    println!("\nmisses (stall, not flagged by migrate):");
    for j in judged.iter().filter(|j| stalls(j) && !j.ours_any) {
        println!("  {} {}:{} {:?} {}", j.repository, j.migration, j.line, j.label, j.text);
    }
    println!("\nfalse flags (flagged by migrate, the server saw no stall):");
    for j in judged.iter().filter(|j| j.ours && !lenient(j)) {
        println!("  {} {}:{} {:?} {}", j.repository, j.migration, j.line, j.label, j.text);
    }
    // What the lock model does not know, by the statement's first words.
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    for j in judged.iter().filter(|j| j.unknown) {
        let words: Vec<String> = j.text.split_whitespace().take(3).map(str::to_uppercase).collect();
        *unknown.entry(words.join(" ")).or_default() += 1;
    }
    println!("\nstatements the lock model does not know (unknown-statement): {}", unknown.values().sum::<usize>());
    for (words, count) in &unknown {
        println!("  {count} × {words} …");
    }
    println!("\nnot replayed:");
    for s in skipped {
        println!("  {s}");
    }
}
