static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/non_utf8");

fn main() {
    let _ = MIGRATIONS.len();
}
