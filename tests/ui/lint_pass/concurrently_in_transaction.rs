// The safe form of what `concurrently-in-transaction` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/concurrently-in-transaction/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
