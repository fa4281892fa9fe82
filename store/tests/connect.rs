//! Connecting against a real PostgreSQL: plain text to a server on this machine unless TLS is
//! asked for (over TCP and over the Unix socket), and the schema check that replaces running
//! the migrator on every start (a fresh database per test; needs `DATABASE_URL`).

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng};
use dmarcpipe_store::{Outcome, Store, StoreError};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

/// A pool on the test database, for looking at it beside the store.
async fn inspect(pool: PgPoolOptions, options: &PgConnectOptions) -> PgPool {
    pool.connect_with(options.clone()).await.expect("the test database")
}

/// The test database over TCP to 127.0.0.1, with `query` appended.
fn tcp_url(options: &PgConnectOptions, query: &str) -> String {
    format!(
        "postgres://{}@127.0.0.1:{}/{}{query}",
        options.get_username(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// The test database over the server's first Unix socket directory.
async fn socket_url(pool: &PgPool, options: &PgConnectOptions) -> String {
    let directories: String =
        sqlx::query_scalar("SELECT current_setting('unix_socket_directories')").fetch_one(pool).await.expect("setting");
    let directory = directories.split(',').next().unwrap_or_default().trim().to_owned();
    assert!(!directory.is_empty(), "the test server has no Unix socket");
    format!(
        "postgres://{}@localhost/{}?host={directory}&port={}",
        options.get_username(),
        options.get_database().unwrap_or("postgres"),
        options.get_port()
    )
}

/// Whether the test server accepts TCP connections on 127.0.0.1 (the project-local cluster
/// of `scripts/db.sh` listens only on its Unix socket).
async fn listens_on_loopback_tcp(pool: &PgPool) -> bool {
    let addresses: String = sqlx::query_scalar("SHOW listen_addresses").fetch_one(pool).await.expect("setting");
    addresses.split(',').map(str::trim).any(|address| matches!(address, "*" | "localhost" | "127.0.0.1" | "0.0.0.0"))
}

/// The test database as the store is told to reach it: over TCP to 127.0.0.1 when the server
/// listens there, else over its Unix socket.
async fn store_url(pool: &PgPool, options: &PgConnectOptions) -> String {
    if listens_on_loopback_tcp(pool).await { tcp_url(options, "") } else { socket_url(pool, options).await }
}

/// Whether the store's connection uses TLS, as the server sees it.
async fn uses_tls(store: &Store) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl")
}

async fn server_offers_tls(pool: &PgPool) -> bool {
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(pool).await.expect("SHOW ssl");
    ssl == "on"
}

#[sqlx::test(migrations = false)]
async fn a_local_server_is_reached_in_plain_text_unless_tls_is_asked_for(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = inspect(pool, &options).await;
    let store = Store::connect(&socket_url(&pool, &options).await, 2).await.expect("connects over the socket");
    assert!(!uses_tls(&store).await, "the Unix socket is plain text");

    if !listens_on_loopback_tcp(&pool).await {
        eprintln!("the test server does not listen on 127.0.0.1: the TCP half of this test is skipped");
        return;
    }
    let store = Store::connect(&tcp_url(&options, ""), 2).await.expect("connects over TCP");
    assert!(!uses_tls(&store).await, "TCP to 127.0.0.1 without sslmode is plain text");

    let asked = Store::connect(&tcp_url(&options, "?sslmode=require"), 2).await;
    if server_offers_tls(&pool).await {
        assert!(uses_tls(&asked.expect("connects with TLS")).await, "sslmode=require is followed on loopback");
    } else {
        let err = asked.map(|_| ()).expect_err("sslmode=require against a server without TLS fails");
        assert!(err.to_string().contains("TLS"), "{err}");
    }
}

#[sqlx::test(migrations = false)]
async fn the_first_connect_migrates_and_later_ones_only_check(pool: PgPoolOptions, options: PgConnectOptions) {
    let pool = inspect(pool, &options).await;
    let url = store_url(&pool, &options).await;
    let store = Store::connect(&url, 2).await.expect("migrates a new database");
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&pool).await.expect("rows");
    assert_eq!(applied as usize, dmarcpipe_store::MIGRATOR.iter().count());

    let mut rng = Rng(7);
    let xml = ReportBuilder::new("connect.example", "c-1", "example.com", 1_793_577_600).random_records(3, &mut rng);
    let envelope = Envelope::new(Origin::Stdin, Payload::Bytes(xml.xml().into_bytes()));
    let stored = store.ingest(envelope, &Limits::default()).await.expect("stored");
    assert_eq!(stored.outcome, Outcome::Stored);

    // A later start finds everything applied: the data stays, nothing is re-run.
    let again = Store::connect(&url, 2).await.expect("an up-to-date database is accepted");
    let reports: i64 =
        sqlx::query_scalar("SELECT count(*) FROM aggregate_reports").fetch_one(again.pool()).await.expect("count");
    assert_eq!(reports, 1);
}

#[sqlx::test(migrations = false)]
async fn a_database_lacking_the_newest_migration_is_upgraded_on_connect(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = inspect(pool, &options).await;
    // The database as the previous release left it: every migration but the newest.
    let mut older: Vec<_> = dmarcpipe_store::MIGRATOR.iter().cloned().collect();
    let newest = older.pop().expect("migrations").version;
    sqlx::migrate::Migrator::with_migrations(older).run(&pool).await.expect("older schema");

    Store::connect(&store_url(&pool, &options).await, 2).await.expect("upgrades");
    let applied: bool = sqlx::query_scalar("SELECT success FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .fetch_one(&pool)
        .await
        .expect("the newest migration is recorded");
    assert!(applied);
}

#[sqlx::test(migrations = false)]
async fn a_newer_changed_or_unfinished_schema_is_refused_with_the_migration_named(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = inspect(pool, &options).await;
    let url = store_url(&pool, &options).await;
    Store::connect(&url, 2).await.expect("migrates a new database");
    let refused = async || {
        let err = Store::connect(&url, 2).await.map(|_| ()).expect_err("refused");
        assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
        assert!(!err.is_transient(), "a schema mismatch is not retried");
        err.to_string()
    };

    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from the future', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    let err = refused().await;
    assert!(err.contains("99991231000000") && err.contains("newer dmarcpipe"), "{err}");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 99991231000000").execute(&pool).await.expect("delete");

    let first = dmarcpipe_store::MIGRATOR.iter().map(|m| m.version).min().expect("migrations");
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = $1")
        .bind(first)
        .execute(&pool)
        .await
        .expect("update");
    let err = refused().await;
    assert!(err.contains(&first.to_string()) && err.contains("differs"), "{err}");

    let checksum = dmarcpipe_store::MIGRATOR.iter().find(|m| m.version == first).expect("first").checksum.to_vec();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = $2, success = false WHERE version = $1")
        .bind(first)
        .bind(checksum)
        .execute(&pool)
        .await
        .expect("update");
    let err = refused().await;
    assert!(err.contains(&first.to_string()) && err.contains("unfinished"), "{err}");
}

/// A connection that the server ended while it sat idle in the pool (a restart, an
/// administrator) is found out by a ping before use and replaced, so that the next input is
/// stored rather than failed. Only a connection idle for more than a second is pinged (one given
/// back a moment ago costs no round trip): the test waits past that.
#[sqlx::test(migrations = false)]
async fn a_connection_ended_while_idle_is_replaced_before_the_next_input(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = inspect(pool, &options).await;
    let store = Store::connect(&store_url(&pool, &options).await, 2).await.expect("connects");
    let backend: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(store.pool()).await.expect("the pooled connection");
    // The pool may hold one connection or two (the schema check's, given back on another task,
    // and the query's): every one of them is ended, once all are back in the pool.
    for _ in 0..100 {
        if store.pool().num_idle() == store.pool().size() as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.pool().num_idle() >= 1, "the connections are back in the pool");
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&pool)
    .await
    .expect("ended");
    assert!(ended >= 1 && ended as usize >= store.pool().num_idle(), "ended {ended} connections");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let mut rng = Rng(3);
    let xml = ReportBuilder::new("idle.example", "idle-1", "example.com", 1_793_577_600).random_records(2, &mut rng);
    let envelope = Envelope::new(Origin::Stdin, Payload::Bytes(xml.xml().into_bytes()));
    let stored = store.ingest_alone(envelope, &Limits::default()).await.expect("stored on a new connection");
    assert_eq!(stored.outcome, Outcome::Stored);
    let now: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(store.pool()).await.expect("the pooled connection");
    assert_ne!(now, backend);
}
