// The safe form of what `transaction-control` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/transaction-control/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
