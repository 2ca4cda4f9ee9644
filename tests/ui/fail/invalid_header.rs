static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/invalid_header");

fn main() {
    let _ = MIGRATIONS.len();
}
