// Reviewed and allowed with a reason; and as a plain warning it does not fail the build.
static ALLOWED: migrate::Migrations = migrate::embed_migrations!(
    "../../../../tests/ui/fixtures/lint/unknown-statement/good",
    deny = ["unknown-statement"],
);
static WARNED: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/lint/unknown-statement/bad");

fn main() {
    assert_eq!(ALLOWED.len(), 2);
    assert_eq!(WARNED.len(), 2);
}
