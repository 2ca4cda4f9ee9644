//! A minimal host binary for the runtime tests: `migrate::startup` on one of the test
//! migration sets (chosen by MIGRATE_TEST_SET, or read at run time from the directory
//! MIGRATE_TEST_DIR, as the standalone command reads one), then a one-line summary on stdout. With
//! `MIGRATE_TEST_DRIVER=tokio`, `migrate::startup_async` on a tokio runtime instead.
//! Exit codes: 0 ready or skipped or not configured, 1 failed.

use std::io::Write;

static BASIC: migrate::Migrations = migrate::embed_migrations!("tests/migrations/basic");
static SLOW: migrate::Migrations = migrate::embed_migrations!("tests/migrations/slow");
static INDEX: migrate::Migrations = migrate::embed_migrations!("tests/migrations/index");

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        let _ = writeln!(std::io::stderr(), "{} {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

fn main() {
    let _ = log::set_logger(&StderrLogger);
    log::set_max_level(log::LevelFilter::Info);
    let set: &'static migrate::Migrations = match (
        std::env::var("MIGRATE_TEST_DIR"),
        std::env::var("MIGRATE_TEST_SET").as_deref(),
    ) {
        (Ok(dir), _) => {
            let analysis = migrate::analysis::check::analyze_dir(std::path::Path::new(&dir), &dir);
            Box::leak(Box::new(migrate::Migrations::from_analysis(&analysis)))
        }
        (_, Ok("slow")) => &SLOW,
        (_, Ok("index")) => &INDEX,
        _ => &BASIC,
    };
    let tokio = std::env::var("MIGRATE_TEST_DRIVER").as_deref() == Ok("tokio");
    log::info!(
        "host on the {} driver",
        if tokio { "tokio" } else { "blocking" }
    );
    let outcome = if tokio {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(migrate::startup_async(set))
    } else {
        migrate::startup(set)
    };
    match &outcome {
        migrate::Outcome::NotConfigured => println!("not-configured"),
        migrate::Outcome::Skipped { status } => match status {
            Some(Ok(status)) => println!("skipped pending={}", status.pending.len()),
            Some(Err(e)) => println!("skipped status-error={e}"),
            None => println!("skipped"),
        },
        migrate::Outcome::Migrated(report) => {
            let applied: Vec<&str> = report.applied.iter().map(|a| a.revision).collect();
            println!(
                "migrated applied={} health={:?}",
                applied.join(","),
                report.status.health()
            );
        }
        migrate::Outcome::Failed(error) => {
            println!("failed");
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
