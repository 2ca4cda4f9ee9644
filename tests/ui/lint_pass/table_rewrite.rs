// The safe form of what `table-rewrite` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/table-rewrite/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
