static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/empty_directory");

fn main() {
    let _ = MIGRATIONS.len();
}
