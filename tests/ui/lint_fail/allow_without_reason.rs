static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/allow-without-reason");

fn main() {
    let _ = MIGRATIONS.len();
}
