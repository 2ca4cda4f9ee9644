// The safe form of what `require-concurrent-index-creation` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/require-concurrent-index-creation/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
