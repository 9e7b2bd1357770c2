//! The PostgreSQL the store's tests run against: a cluster of the test's
//! own, started from Debian's binaries on a free loopback port.

mod support;

use support::postgres::{Postgres, USER};

/// The cluster answers on loopback, asks for the password and refuses a
/// wrong one, and takes a database of the tests' own.
#[tokio::test]
async fn a_cluster_of_the_tests_own_answers_on_loopback_with_a_password() {
    let cluster = Postgres::start("correct horse");
    let config = |password: &str| {
        format!(
            "host=127.0.0.1 port={} user={USER} password='{password}' dbname=postgres",
            cluster.port
        )
    };
    let refused = tokio_postgres::connect(&config("wrong"), tokio_postgres::NoTls).await;
    let error = refused.err().expect("a wrong password is refused");
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("password authentication failed")),
        "{error:?}"
    );

    let (client, connection) =
        tokio_postgres::connect(&config("correct horse"), tokio_postgres::NoTls)
            .await
            .expect("the right password connects");
    tokio::spawn(connection);
    client
        .batch_execute("CREATE DATABASE rl_lab_test")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT current_user, (SELECT count(*) FROM pg_database WHERE datname = 'rl_lab_test')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), USER);
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(
        cluster.url("rl_lab_test"),
        format!("postgres://{USER}@127.0.0.1:{}/rl_lab_test", cluster.port)
    );
}
