static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/ban-drop-table/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
