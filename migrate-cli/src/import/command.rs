//! The `import` command: read the other tool's directory, check its history table when asked,
//! write the converted files and the frozen history, then stamp what ran.

use std::io::Write;
use std::path::Path;

use migrate_core::runtime::{EnvConfig, Error, Migrator, connect};

use super::history::applied_prefix;
use super::{ImportError, Tool, read, write};
use crate::checked::{Use, checked_migrations};

/// What `import` was asked.
pub struct ImportRequest<'a> {
    pub tool: Tool,
    pub source: &'a Path,
    pub out: &'a Path,
    /// The database to adopt, when `--stamp` was given.
    pub stamp_url: Option<&'a str>,
}

pub fn import(
    request: &ImportRequest<'_>,
    config: &EnvConfig,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let listing = match read(request.tool, request.source) {
        Ok(listing) => listing,
        Err(e) => return report(err, &e),
    };
    // The database is read before anything is written: a refusal leaves no file behind.
    let mut adopt = None;
    if let Some(url) = request.stamp_url {
        let mut client = match connect(url, &config.settings.application_name) {
            Ok(client) => client,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return 2;
            }
        };
        match applied_prefix(&mut client, request.tool, &listing) {
            Ok(count) => adopt = Some((client, count)),
            Err(refusal) => {
                let _ = writeln!(err, "error: {refusal}");
                return 1;
            }
        }
    }
    let written = match write(request.tool, &listing, request.out) {
        Ok(written) => written,
        Err(e) => return report(err, &e),
    };
    let first = written.files.first().map_or("", |(r, _)| r.as_str());
    let last = written.files.last().map_or("", |(r, _)| r.as_str());
    let _ = writeln!(
        out,
        "imported {} {} migration(s) into {} ({first} … {last}), frozen in {}",
        written.files.len(),
        request.tool.name(),
        request.out.display(),
        written.config.display()
    );
    for (path, why) in &listing.skipped {
        let _ = writeln!(out, "  skipped {}: {why}", path.display());
    }
    let Some((mut client, count)) = adopt else {
        return 0;
    };
    if count == 0 {
        let _ = writeln!(out, "the database applied none of them: nothing to stamp");
        return 0;
    }
    let migrations = match checked_migrations(
        request.out,
        Use::Read,
        err,
        "nothing was stamped",
        "fix the findings above, then run `migrate stamp`",
    ) {
        Ok(migrations) => migrations,
        Err(code) => return code,
    };
    let through = &written.files[count - 1].0;
    let migrator = Migrator::with_settings(&migrations, config.settings.clone());
    match migrator.stamp(&mut client, through) {
        Ok(_) => {
            let _ = writeln!(
                out,
                "stamped the {count} migration(s) {} applied as applied, through {through} (and {}, whose table is there); {} pending",
                request.tool.name(),
                written.root.0,
                written.files.len() - count
            );
            0
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            match e {
                Error::UnknownRevision { .. } => 1,
                _ => 2,
            }
        }
    }
}

fn report(err: &mut dyn Write, e: &ImportError) -> u8 {
    let _ = writeln!(err, "error: {e}");
    match e {
        ImportError::Unreadable { .. } | ImportError::Write { .. } => 2,
        ImportError::Refused(_)
        | ImportError::NoMigrations { .. }
        | ImportError::NotEmpty { .. } => 1,
    }
}
