static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/valid", warn = ["renaming-columns"]);

fn main() {
    let _ = MIGRATIONS.len();
}
