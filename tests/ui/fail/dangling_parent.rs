static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/dangling_parent");

fn main() {
    let _ = MIGRATIONS.len();
}
