// A root, two branches and a merge embed in topological order, ties broken by revision id.
static MIGRATIONS: migrate::Migrations = migrate::embed_migrations!("../../../../tests/ui/fixtures/valid");
// The lint's target version travels with the migrations, for `plan`.
static FOR_PG_12: migrate::Migrations =
    migrate::embed_migrations!("../../../../tests/ui/fixtures/valid", target_postgres = 12);

fn main() {
    let order: Vec<&str> = MIGRATIONS.iter().map(|m| m.revision()).collect();
    assert_eq!(order, ["0001", "0002a", "0002b", "0003", "0004"]);
    let merge = MIGRATIONS.get("0003").unwrap();
    assert_eq!(merge.parents(), ["0002a", "0002b"]);
    assert_eq!(merge.message(), Some("merge themes and topics"));
    assert!(merge.statements().is_empty());
    let last = MIGRATIONS.head().unwrap();
    assert_eq!(last.lock_timeout(), Some(std::time::Duration::from_millis(500)));
    assert_eq!(last.statement_timeout(), Some(std::time::Duration::from_secs(5)));
    assert_eq!(last.path(), "../../../../tests/ui/fixtures/valid/0004_profiles.sql");
    let statements: Vec<&str> = last.statements().iter().map(|s| last.statement_sql(s)).collect();
    assert_eq!(statements[1], "COMMENT ON TABLE profiles IS $$one ; per user$$");
    assert_eq!(last.statements()[1].line, 6);
    assert_eq!(last.checksum().len(), 64);
    assert_eq!(MIGRATIONS.target_postgres(), 15);
    assert_eq!(FOR_PG_12.target_postgres(), 12);
}
