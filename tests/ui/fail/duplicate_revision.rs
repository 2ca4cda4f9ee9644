static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/duplicate_revision");

fn main() {
    let _ = MIGRATIONS.len();
}
