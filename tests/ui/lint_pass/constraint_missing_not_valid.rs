// The safe form of what `constraint-missing-not-valid` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/constraint-missing-not-valid/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
