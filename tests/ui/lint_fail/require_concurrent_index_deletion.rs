static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/require-concurrent-index-deletion/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
