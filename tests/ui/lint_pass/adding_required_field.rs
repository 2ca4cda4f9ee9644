// The safe form of what `adding-required-field` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-required-field/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
