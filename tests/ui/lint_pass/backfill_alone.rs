static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/backfill-alone");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
