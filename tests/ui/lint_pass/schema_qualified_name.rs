// The safe form of what `schema-qualified-name` flags compiles without findings, and the rule
// is off unless asked for.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/schema-qualified-name/good",
    deny = ["schema-qualified-name"],
);
static UNASKED: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/schema-qualified-name/bad");

fn main() {
    let _ = (MIGRATIONS.len(), UNASKED.len());
}
