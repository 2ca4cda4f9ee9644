static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/transaction-control/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
