static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/allow-unknown-rule");

fn main() {
    let _ = MIGRATIONS.len();
}
