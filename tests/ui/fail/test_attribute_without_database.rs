static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/migrations/basic");

#[migrate::test(MIGRATIONS)]
fn signs_up() {}

fn main() {}
