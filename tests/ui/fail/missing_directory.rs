static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/no_such_directory");

fn main() {
    let _ = MIGRATIONS.len();
}
