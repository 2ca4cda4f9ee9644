static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/migrations/basic");

#[migrate::test("migrations")]
fn signs_up(db: migrate::testing::TestDatabase) {
    let _ = db.url();
}

#[migrate::test(MIGRATIONS, seed = 7)]
fn logs_in(db: migrate::testing::TestDatabase) {
    let _ = db.url();
}

fn main() {
    let _ = &MIGRATIONS;
}
