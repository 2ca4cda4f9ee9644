static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/lock-held-across-slow-statement/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
