//! A fresh PostgreSQL database per test, dropped afterwards (also when the test
//! fails). PostgreSQL must be reachable: these tests fail rather than skip, so
//! CI can never pass without running them.
#![allow(dead_code)]

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The server the tests use: `TICKETGATE_TEST_POSTGRES_URL`, else the local default.
pub fn admin_url() -> String {
    std::env::var("TICKETGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("URL has a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

/// A database created for one test; `Drop` removes it `WITH (FORCE)`, which
/// also ends connections a failing test left open.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

async fn admin_connection(admin: &str) -> sqlx::PgConnection {
    let options = PgConnectOptions::from_str(admin).expect("valid TICKETGATE_TEST_POSTGRES_URL");
    options.connect().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin} ({e}); start it (scripts/test.sh does) \
             or set TICKETGATE_TEST_POSTGRES_URL"
        )
    })
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let name = format!("tg_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin_connection(&admin).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        Self { name, url, admin }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = admin_connection(&admin).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .map(|_| ())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
