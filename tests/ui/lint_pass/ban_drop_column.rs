// The safe form of what `ban-drop-column` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/ban-drop-column/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
