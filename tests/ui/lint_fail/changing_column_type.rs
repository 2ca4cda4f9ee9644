static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/changing-column-type/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
