static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/drop-constraint-locks-both-tables/bad");

fn main() {
    let _ = MIGRATIONS.len();
}
