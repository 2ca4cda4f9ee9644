// A snapshot taken for other migrations is a warning, and is not embedded.
#![deny(deprecated)]

static MIGRATIONS: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/stale_snapshot");

fn main() {
    assert!(MIGRATIONS.snapshot().is_none());
}
