static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/header_and_graph");

fn main() {
    let _ = MIGRATIONS.len();
}
