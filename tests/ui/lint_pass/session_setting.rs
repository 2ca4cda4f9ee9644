// The safe form of what `session-setting` flags compiles without findings.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/session-setting/good");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
