static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/syntax_error");

fn main() {
    let _ = MIGRATIONS.len();
}
