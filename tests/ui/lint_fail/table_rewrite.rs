static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/table-rewrite/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
