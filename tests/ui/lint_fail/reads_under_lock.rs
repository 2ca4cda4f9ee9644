static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/reads-under-lock");

fn main() {
    let _ = MIGRATIONS.len();
}
