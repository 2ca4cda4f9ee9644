static MIGRATIONS: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/config-invalid");

fn main() {
    let _ = MIGRATIONS.len();
}
