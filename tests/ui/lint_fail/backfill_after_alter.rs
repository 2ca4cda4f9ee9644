static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/backfill-after-alter");

fn main() {
    let _ = MIGRATIONS.len();
}
