static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/two_heads");

fn main() {
    let _ = MIGRATIONS.len();
}
