// A CRLF checkout of a migration embeds the same SQL and checksum as the LF original.
static CRLF: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/crlf");
static LF: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/lf");

fn main() {
    let (crlf, lf) = (CRLF.head().unwrap(), LF.head().unwrap());
    assert_eq!(crlf.checksum(), lf.checksum());
    assert_eq!(crlf.sql(), lf.sql());
    assert!(!crlf.sql().contains('\r'));
}
