static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/session-setting/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
