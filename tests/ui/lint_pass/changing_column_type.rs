// The safe form of what `changing-column-type` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/changing-column-type/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 5);
}
