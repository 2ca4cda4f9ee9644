// A snapshot taken for exactly these migrations is embedded, without a warning.
#![deny(deprecated)]

static MIGRATIONS: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/fresh_snapshot");

fn main() {
    let snapshot = MIGRATIONS.snapshot().expect("the snapshot is embedded");
    assert!(snapshot.contains("\ntable\tpublic.t\t"), "{snapshot}");
}
