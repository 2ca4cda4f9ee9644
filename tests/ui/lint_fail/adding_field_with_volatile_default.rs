static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/adding-field-with-volatile-default/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
