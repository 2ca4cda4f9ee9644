//! The benchmark host: one binary embedding the generated migration sets for both tools.
//! `host <tool> <set> <url>` applies (or checks) the set and exits. Tools: `migrate` (blocking
//! driver), `migrate-startup` (`migrate::startup_with`, what a service calls), `migrate-async` (tokio driver), `migrate-ungrouped` (one transaction per migration),
//! `migrate-unguarded` (no lock timeout), `refinery`, `refinery-grouped` (all in one transaction)
//! and `floor` (connect and run one query: what any runner costs at least).

static MIGRATE_100: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-100");
static MIGRATE_200: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-200");
static MIGRATE_500: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-500");
static MIGRATE_2000: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-2000");
static MIGRATE_STALL: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-stall");

mod refinery_100 {
    refinery::embed_migrations!("../target/bench/sets/refinery-100");
}
mod refinery_200 {
    refinery::embed_migrations!("../target/bench/sets/refinery-200");
}
mod refinery_500 {
    refinery::embed_migrations!("../target/bench/sets/refinery-500");
}
mod refinery_2000 {
    refinery::embed_migrations!("../target/bench/sets/refinery-2000");
}
mod refinery_stall {
    refinery::embed_migrations!("../target/bench/sets/refinery-stall");
}

fn migrate_set(set: &str) -> &'static migrate::Migrations {
    match set {
        "100" => &MIGRATE_100,
        "200" => &MIGRATE_200,
        "500" => &MIGRATE_500,
        "2000" => &MIGRATE_2000,
        _ => &MIGRATE_STALL,
    }
}

fn refinery(set: &str, url: &str, grouped: bool) -> Result<(), String> {
    let url = format!("{url}?application_name=bench-refinery");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
    let runner = match set {
        "100" => refinery_100::migrations::runner(),
        "200" => refinery_200::migrations::runner(),
        "500" => refinery_500::migrations::runner(),
        "2000" => refinery_2000::migrations::runner(),
        _ => refinery_stall::migrations::runner(),
    };
    let result = runner.set_grouped(grouped).run(&mut client).map(drop);
    result.map_err(|e| e.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tool, set, url) = match args.as_slice() {
        [_, tool, set, url, ..] => (tool.as_str(), set.as_str(), url.as_str()),
        _ => {
            eprintln!("usage: host <migrate|migrate-startup|migrate-async|migrate-ungrouped|migrate-unguarded|refinery|refinery-grouped|floor> <100|200|500|2000|stall> <url>");
            std::process::exit(2);
        }
    };
    let migrator = migrate::Migrator::new(migrate_set(set)).application_name("bench-migrate");
    let ok = match tool {
        "migrate" => migrator.run_url(url).map(drop).map_err(|e| e.to_string()),
        // What a service calls: the environment's settings, then the run.
        "migrate-startup" => {
            let config = migrate::EnvConfig {
                skip: false,
                url: Some(url.to_owned()),
                url_source: "DATABASE_URL",
                settings: migrate::Settings { application_name: "bench-migrate".to_owned(), ..migrate::Settings::default() },
            };
            match migrate::startup_with(migrate_set(set), &config) {
                migrate::Outcome::Migrated(_) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        "migrate-ungrouped" => migrator.group_limit(1).run_url(url).map(drop).map_err(|e| e.to_string()),
        // lock_timeout 0: wait for the lock as long as it takes, like an unguarded runner.
        "migrate-unguarded" => migrator.lock_timeout(std::time::Duration::ZERO).run_url(url).map(drop).map_err(|e| e.to_string()),
        "migrate-async" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|runtime| runtime.block_on(migrator.run_url_async(url)).map(drop).map_err(|e| e.to_string())),
        "floor" => postgres::Client::connect(&format!("{url}?application_name=bench-floor"), postgres::NoTls)
            .and_then(|mut client| client.simple_query("SELECT 1").map(drop))
            .map_err(|e| e.to_string()),
        "refinery-grouped" => refinery(set, url, true),
        _ => refinery(set, url, false),
    };
    if let Err(e) = ok {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
