static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/renaming-table/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
