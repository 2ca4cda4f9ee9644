static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/renaming-column/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
