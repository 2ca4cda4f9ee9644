static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/allow-suppressing-nothing");

fn main() {
    let _ = MIGRATIONS.len();
}
