static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/inline-column-constraints");

fn main() {
    let _ = MIGRATIONS.len();
}
