// A rule lowered to a warning or turned off no longer fails the build.
static WARNED: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/renaming-column/bad", warn = ["renaming-column"]);
static OFF: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/ban-drop-table/bad",
    target_postgres = 14,
    off = ["ban-drop-table"],
);

fn main() {
    assert_eq!(WARNED.len(), 2);
    assert_eq!(OFF.len(), 2);
}
