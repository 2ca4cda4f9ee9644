// The safe form of what `key-column-type-locks-both-tables` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/key-column-type-locks-both-tables/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
