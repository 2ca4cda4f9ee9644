// The safe form of what `adding-not-nullable-field` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-not-nullable-field/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 4);
}
