// migrate.toml beside the migrations lowers a rule to a warning; the build passes.
static MIGRATIONS: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/config-file");

fn main() {
    assert_eq!(MIGRATIONS.len(), 2);
}
