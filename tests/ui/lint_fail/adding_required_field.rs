static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-required-field/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
