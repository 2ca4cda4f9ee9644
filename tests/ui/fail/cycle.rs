static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/cycle");

fn main() {
    let _ = MIGRATIONS.len();
}
