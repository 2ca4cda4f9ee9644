// The safe form of what `ban-drop-table` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/ban-drop-table/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
