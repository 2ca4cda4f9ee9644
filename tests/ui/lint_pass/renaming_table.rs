// The safe form of what `renaming-table` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/renaming-table/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
