static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/concurrently-in-transaction/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
