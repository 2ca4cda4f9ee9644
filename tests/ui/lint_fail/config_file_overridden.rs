// The macro's settings win over migrate.toml.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/config-file",
    deny = ["renaming-column"],
);

fn main() {
    let _ = MIGRATIONS.len();
}
