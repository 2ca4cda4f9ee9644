static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!(migrations);

fn main() {
    let _ = MIGRATIONS.len();
}
