static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/validate-in-same-transaction/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
