// The safe form of what `require-concurrent-reindex` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/require-concurrent-reindex/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
