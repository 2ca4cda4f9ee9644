// The safe form of what `disallowed-unique-constraint` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/disallowed-unique-constraint/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 3);
}
