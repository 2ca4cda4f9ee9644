// A warning by default; `deny` makes it fail the build.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/unknown-statement/bad",
    deny = ["unknown-statement"],
);

fn main() {
    let _ = MIGRATIONS.len();
}
