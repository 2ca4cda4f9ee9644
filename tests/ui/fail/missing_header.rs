static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/missing_header");

fn main() {
    let _ = MIGRATIONS.len();
}
