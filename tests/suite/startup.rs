//! Start-up as an operator meets it: a database that answers but refuses ends start-up at
//! once with the problem and its fix (no 30 s of "not reachable yet"), and the port is bound
//! before the database is touched, so a clash is the first thing reported.

use inventory_runtime::{App, RuntimeError, Settings};
use inventory_testkit::{TestDatabase, new_id};
use sqlx::Connection;
use stock_service::StockApp;

/// Stock built with `vars` over a 30 s connect timeout; its start-up error.
async fn start_fails(vars: &[(&str, String)]) -> RuntimeError {
    let settings = Settings::defaults()
        .overlay([
            ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "30".to_owned()),
        ])
        .overlay(vars.iter().map(|(k, v)| (*k, v.clone())));
    match StockApp::build(&settings).await {
        Ok(_) => panic!("stock started with {vars:?}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_missing_database_is_named_with_its_fix_at_once() {
    let database = TestDatabase::create().await;
    let missing = format!("no_such_{}", new_id().replace('-', "")[..12].to_owned());
    let url = database.url.replace(&database.name, &missing);
    let error = start_fails(&[("DATABASE_URL", url)]).await.to_string();
    assert!(
        error.contains(&format!("database \"{missing}\" does not exist: create it")),
        "{error}"
    );
}

#[tokio::test]
async fn a_role_that_may_not_create_its_schema_is_told_what_to_grant() {
    let database = TestDatabase::create().await;
    let role = format!("no_create_{}", new_id().replace('-', "")[..12].to_owned());
    let mut admin = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw';
         REVOKE CREATE ON DATABASE \"{db}\" FROM PUBLIC;
         GRANT CONNECT ON DATABASE \"{db}\" TO {role};",
        db = database.name
    ))
    .execute(&mut admin)
    .await
    .expect("a role without CREATE");
    let rest = database.url.split_once('@').expect("a URL with a user").1;
    let url = format!("postgres://{role}:pw@{rest}");
    let error = start_fails(&[("DATABASE_URL", url)]).await.to_string();
    assert!(
        error.contains(&format!("role \"{role}\" may not create schema \"stock\"")),
        "{error}"
    );
    sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .expect("clean up the role");
}

#[tokio::test]
async fn a_port_clash_is_reported_before_the_database_is_tried() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    // No database answers on port 1: had it been tried first, this would wait 30 s.
    let error = start_fails(&[
        ("LISTEN_ADDR", address),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none".to_owned(),
        ),
    ])
    .await;
    assert!(matches!(error, RuntimeError::Io(_)), "{error}");
}
