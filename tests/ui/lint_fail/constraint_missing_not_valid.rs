static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/constraint-missing-not-valid/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
