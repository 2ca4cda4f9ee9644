//! The harness itself: a cluster starts, serves isolated databases, restarts, and is gone after drop.

use pg_harness::{Cluster, test_database};

#[test]
fn databases_are_isolated_and_dropped() {
    let a = test_database();
    let b = test_database();
    assert_ne!(a.name(), b.name());
    a.client()
        .batch_execute("CREATE TABLE only_in_a (id int)")
        .unwrap();
    let rows = b
        .client()
        .simple_query("SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'")
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("0"));
    let name = a.name().to_owned();
    drop(a);
    let rows = b
        .client()
        .simple_query(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(
        count.as_deref(),
        Some("0"),
        "the dropped guard removes its database"
    );
}

#[test]
fn own_cluster_runs_on_loopback_restarts_and_is_removed_on_drop() {
    let mut cluster = Cluster::start();
    let dir = cluster.dir().to_owned();
    let db = cluster.create_database();
    let mut client = db.client();
    let row = client.query_one("SELECT current_setting('fsync'), current_setting('listen_addresses'), current_user::text", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "off");
    assert_eq!(row.get::<_, String>(1), "127.0.0.1");
    assert_eq!(row.get::<_, String>(2), "postgres");
    drop(client);

    cluster.stop();
    assert!(postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).is_err());
    cluster.restart();
    db.client().batch_execute("SELECT 1").unwrap();
    drop(db);

    let port = cluster.port();
    drop(cluster);
    assert!(!dir.exists(), "the cluster directory is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is stopped"
    );
}
