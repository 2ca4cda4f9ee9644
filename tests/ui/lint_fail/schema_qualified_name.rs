// Off by default; a host that migrates every tenant schema asks for it.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/schema-qualified-name/bad",
    deny = ["schema-qualified-name"],
);

fn main() {
    let _ = MIGRATIONS.len();
}
