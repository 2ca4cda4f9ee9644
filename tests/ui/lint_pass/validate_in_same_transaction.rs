// The safe form of what `validate-in-same-transaction` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/validate-in-same-transaction/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
