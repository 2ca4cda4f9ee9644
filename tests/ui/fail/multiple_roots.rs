static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/multiple_roots");

fn main() {
    let _ = MIGRATIONS.len();
}
