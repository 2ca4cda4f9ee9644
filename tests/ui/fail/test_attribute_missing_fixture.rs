static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/migrations/basic");

#[migrate::test(MIGRATIONS, fixtures("absent"))]
fn signs_up(db: migrate::testing::TestDatabase) {
    let _ = db.url();
}

fn main() {}
