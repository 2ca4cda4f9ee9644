// The safe form of what `adding-field-with-volatile-default` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-field-with-volatile-default/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
