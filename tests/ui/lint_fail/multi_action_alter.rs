static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/multi-action-alter");

fn main() {
    let _ = MIGRATIONS.len();
}
