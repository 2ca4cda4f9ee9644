static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/unreadable");

fn main() {
    let _ = MIGRATIONS.len();
}
