static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/require-concurrent-reindex/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
