//! The benchmark host: one binary embedding the generated migration sets for both tools.
//! `host <tool> <set> <url>` applies (or checks) the set and exits.

static MIGRATE_200: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-200");
static MIGRATE_500: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-500");
static MIGRATE_STALL: migrate::Migrations = migrate::embed_migrations!("../target/bench/sets/migrate-stall");

mod refinery_200 {
    refinery::embed_migrations!("../target/bench/sets/refinery-200");
}
mod refinery_500 {
    refinery::embed_migrations!("../target/bench/sets/refinery-500");
}
mod refinery_stall {
    refinery::embed_migrations!("../target/bench/sets/refinery-stall");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tool, set, url) = match args.as_slice() {
        [_, tool, set, url, ..] => (tool.as_str(), set.as_str(), url.as_str()),
        _ => {
            eprintln!("usage: host <migrate|migrate-unguarded|refinery> <200|500|stall> <url>");
            std::process::exit(2);
        }
    };
    let ok = match tool {
        "migrate" | "migrate-unguarded" => {
            let set = match set {
                "200" => &MIGRATE_200,
                "500" => &MIGRATE_500,
                _ => &MIGRATE_STALL,
            };
            let mut migrator = migrate::Migrator::new(set).application_name("bench-migrate");
            if tool == "migrate-unguarded" {
                // lock_timeout 0: wait for the lock as long as it takes, like an unguarded runner.
                migrator = migrator.lock_timeout(std::time::Duration::ZERO);
            }
            migrator.run_url(url).map(|_| ()).map_err(|e| e.to_string())
        }
        _ => {
            let url = format!("{url}?application_name=bench-refinery");
            match postgres::Client::connect(&url, postgres::NoTls) {
                Ok(mut client) => {
                    let result = match set {
                        "200" => refinery_200::migrations::runner().run(&mut client).map(|_| ()),
                        "500" => refinery_500::migrations::runner().run(&mut client).map(|_| ()),
                        _ => refinery_stall::migrations::runner().run(&mut client).map(|_| ()),
                    };
                    result.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
    };
    if let Err(e) = ok {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
