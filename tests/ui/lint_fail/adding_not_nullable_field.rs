static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-not-nullable-field/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
