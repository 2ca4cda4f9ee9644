// The safe forms of inline column constraints lint clean.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/inline-column-constraints-safe");

fn main() {
    assert_eq!(MIGRATIONS.len(), 6);
}
