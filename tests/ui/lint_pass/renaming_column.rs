// The safe form of what `renaming-column` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/renaming-column/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
