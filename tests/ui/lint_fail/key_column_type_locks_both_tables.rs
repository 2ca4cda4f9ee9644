static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/key-column-type-locks-both-tables/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
