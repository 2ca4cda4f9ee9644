static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/disallowed-unique-constraint/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
