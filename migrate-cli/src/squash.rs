//! `migrate squash --through REV`: the history up to REV replaced by one root migration that
//! creates the schema those revisions build, replayed into a shadow database and proven like a
//! baseline. It keeps REV's revision (later migrations still build on it) and names the others on
//! its `replaces:` line, so a database that ran them is up to date with it, and a fresh database
//! runs only it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use migrate_core::Migrations;
use migrate_core::analysis::header::render_squash_header;
use migrate_core::runtime::catalog::{self, Difference};
use migrate_core::runtime::{EnvConfig, Error, Migrator};

use crate::authoring::create_new;
use crate::checked::{Use, checked_migrations};

pub(crate) struct SquashRequest<'a> {
    pub dir: &'a Path,
    pub through: &'a str,
    /// The server the shadow databases are made on.
    pub url: &'a str,
    pub shadow_url: Option<&'a str>,
}

fn refused(err: &mut dyn Write, message: &str) -> u8 {
    let _ = writeln!(err, "error: {message}");
    1
}

pub(crate) fn squash(
    request: &SquashRequest<'_>,
    config: &EnvConfig,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let dir = request.dir;
    let through = request.through;
    let migrations = match checked_migrations(
        dir,
        Use::Read,
        err,
        "nothing was squashed",
        "fix the findings above (`migrate check` lists them)",
    ) {
        Ok(migrations) => migrations,
        Err(code) => return code,
    };
    let Some(last) = migrations.get(through) else {
        return refused(
            err,
            &format!(
                "no migration of {} has revision `{through}`\n  help: name one `migrate graph` lists",
                dir.display()
            ),
        );
    };
    let squashed = ancestors(&migrations, through);
    if squashed.len() < 2 {
        return refused(
            err,
            &format!(
                "`{through}` has no ancestor: there is nothing to squash\n  help: squash through a later revision"
            ),
        );
    }
    // A migration outside the squash may build only on its last revision.
    for migration in migrations.iter() {
        if squashed.contains(migration.revision()) {
            continue;
        }
        if let Some(parent) = migration
            .parents()
            .iter()
            .find(|p| squashed.contains(*p) && **p != through)
        {
            return refused(
                err,
                &format!(
                    "{} builds on `{parent}`, which the squash through `{through}` would replace\n  help: squash through a revision every later migration builds on (merge the branches first)",
                    migration.path()
                ),
            );
        }
    }
    // The squash recreates the schema: rows the migrations wrote would be lost on a new database.
    let writers = rows_written(&migrations, &squashed);
    if !writers.is_empty() {
        return refused(
            err,
            &format!(
                "{} statement(s) of the squashed migrations write rows, which a squash (the schema they build) does not carry; nothing was written:\n  {}\n  help: squash through a revision before them, or copy those rows into a migration after the squash first",
                writers.len(),
                writers.join("\n  ")
            ),
        );
    }
    let migrator = Migrator::with_settings(&migrations, config.settings.clone());
    let through_list: Vec<&str> = squashed.iter().copied().collect();
    let result = build(&migrator, request, &through_list, err);
    let sql = match result {
        Ok(Ok(sql)) => sql,
        Ok(Err(code)) => return code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    };
    // In application order, with what earlier squashes replaced: a database that ran the
    // history before them still has those rows.
    let mut replaced: Vec<&str> = Vec::new();
    for migration in migrations
        .iter()
        .filter(|m| squashed.contains(m.revision()))
    {
        replaced.extend(migration.replaces().iter().copied());
        if migration.revision() != through {
            replaced.push(migration.revision());
        }
    }
    let path = dir.join(format!("{through}_squash.sql"));
    let message = format!(
        "squash of {} migrations through {through}: the schema they build",
        squashed.len()
    );
    let text = format!(
        "{}\n{sql}",
        render_squash_header(through, &message, &replaced)
    );
    let old_files: Vec<&str> = migrations
        .iter()
        .filter(|m| squashed.contains(m.revision()))
        .map(|m| m.path())
        .collect();
    if old_files.iter().any(|f| Path::new(f) == path) {
        return refused(
            err,
            &format!(
                "{} is the name of one of the files it replaces\n  help: rename that file first",
                path.display()
            ),
        );
    }
    if let Err(e) = create_new(&path, &text) {
        let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
        return 2;
    }
    let mut left = Vec::new();
    for file in &old_files {
        if let Err(e) = std::fs::remove_file(file) {
            left.push(format!("{file} ({e})"));
        }
    }
    if !left.is_empty() {
        let _ = writeln!(
            err,
            "error: wrote {}, and could not remove what it replaces: {}\n  help: remove them by hand: the squash stands for them",
            path.display(),
            left.join(", ")
        );
        return 2;
    }
    if let Err(e) = refreeze(dir, through, &replaced, &text) {
        let _ = writeln!(err, "error: {e}");
        return 2;
    }
    let _ = writeln!(
        out,
        "squashed {} migrations through {through} into {} (last: {}); a database that ran them is up to date with it, a new one runs only it",
        squashed.len(),
        path.display(),
        last.path()
    );
    0
}

/// The statements of the squashed migrations that write rows (`INSERT`, `UPDATE`, `DELETE`,
/// `MERGE`, `COPY`), each as `path:line`.
fn rows_written(migrations: &Migrations, squashed: &BTreeSet<&str>) -> Vec<String> {
    use migrate_core::analysis::statements::parse_statements;
    use migrate_core::lint::locks::Op;
    let mut found = Vec::new();
    for migration in migrations
        .iter()
        .filter(|m| squashed.contains(m.revision()))
    {
        let Ok(statements) = parse_statements(migration.path(), migration.sql()) else {
            continue;
        };
        for statement in statements {
            let classified = migrate_core::lint::classify::classify(&statement.stmt);
            let kind = statement
                .span
                .text(migration.sql())
                .trim_start()
                .to_ascii_uppercase();
            let writes = classified.inserts_into.is_some()
                || classified.effects.iter().any(|e| e.op == Op::WriteRows)
                || kind.starts_with("COPY");
            if writes {
                found.push(format!("{}:{}", migration.path(), statement.span.line));
            }
        }
    }
    found
}

/// `through` and its ancestors.
fn ancestors<'a>(migrations: &'a Migrations, through: &'a str) -> BTreeSet<&'a str> {
    let mut wanted = BTreeSet::from([through]);
    for migration in migrations.iter().rev() {
        if wanted.contains(migration.revision()) {
            wanted.extend(migration.parents().iter().copied());
        }
    }
    wanted
}

/// The baseline of what `through` builds, proven: a database built from it has the same schema.
fn build(
    migrator: &Migrator<'_>,
    request: &SquashRequest<'_>,
    through: &[&str],
    err: &mut dyn Write,
) -> Result<Result<String, u8>, Error> {
    let built = migrator.catalog_through(request.url, request.shadow_url, through)?;
    let sql = match catalog::baseline_sql(&built, false) {
        Ok(sql) => sql,
        Err(e) => {
            return Ok(Err(refused(
                err,
                &format!(
                    "{e}\n  help: these objects cannot be recreated from the catalog: keep the history that creates them"
                ),
            )));
        }
    };
    let differences = migrator.verify_baseline(request.url, &sql, &built)?;
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(Difference::to_string).collect();
        return Ok(Err(refused(
            err,
            &format!(
                "a database built from the squash differs from one the history builds in {} place(s); nothing was written:\n  {}\n  help: this is a gap in the baseline's rendering; report it with the lines above",
                differences.len(),
                list.join("\n  ")
            ),
        )));
    }
    Ok(Ok(sql))
}

/// Keeps a frozen history (`migrate import`) true to the directory: the replaced revisions'
/// checksums go, the squash's is pinned under its revision, and `through` moves to it when it
/// named a replaced revision. Only the lines `import` writes are edited.
fn refreeze(dir: &Path, through: &str, replaced: &[&str], text: &str) -> Result<(), String> {
    let config = dir.join("migrate.toml");
    let Ok(content) = std::fs::read_to_string(&config) else {
        return Ok(());
    };
    if !content.lines().any(|l| l.trim() == "[frozen]") {
        return Ok(());
    }
    let shown = config.display().to_string();
    let checksum = migrate_core::analysis::source::normalize(&shown, text.as_bytes())
        .map(|t| migrate_core::analysis::source::checksum(&t))
        .map_err(|d| d.to_string())?;
    let key = |line: &str| -> Option<String> {
        let (key, _) = line.split_once('=')?;
        Some(key.trim().trim_matches('"').to_owned())
    };
    let mut lines = Vec::new();
    for line in content.lines() {
        match key(line) {
            Some(k)
                if k == "through"
                    && replaced.contains(
                        &line
                            .split_once('=')
                            .map_or("", |(_, v)| v.trim().trim_matches('"')),
                    ) =>
            {
                lines.push(format!("through = \"{through}\""));
            }
            Some(k) if replaced.contains(&k.as_str()) => {}
            Some(k) if k == through => lines.push(format!("\"{through}\" = \"{checksum}\"")),
            _ => lines.push(line.to_owned()),
        }
    }
    std::fs::write(&config, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {shown}: {e}"))
}
