// The safe form of what `lock-held-across-slow-statement` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/lock-held-across-slow-statement/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 6);
}
