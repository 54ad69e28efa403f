use inventory_runtime::{Config, Settings, connect_database};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

/// Server of the databases tests create: `TEST_DATABASE_URL`, by default the local server.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A uniquely named database on the test server, dropped with this value.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("test PostgreSQL reachable (TEST_DATABASE_URL)");
        sqlx::raw_sql(&(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self { name, url }
    }

    /// Settings of anything running against this database in a test: its URL, and a pool of
    /// 4 per replica so parallel tests stay below PostgreSQL's connection limit.
    pub fn settings(&self) -> Settings {
        Settings::defaults().overlay([
            ("DATABASE_URL", self.url.as_str()),
            ("DATABASE_MAX_CONNECTIONS", "4"),
        ])
    }

    /// A pool on `schema`, created and migrated (with the platform's tables) as a service
    /// does at start: for tests of a service's parts without its server.
    pub async fn migrate(&self, schema: &'static str, migrator: &Migrator) -> PgPool {
        let config = Config::from_settings(&self.settings(), "127.0.0.1:0").expect("config");
        connect_database(&config, schema, migrator)
            .await
            .expect("schema migrated")
    }

    /// A direct connection with `schema` first on the search path, for assertions on what a
    /// service stored.
    pub async fn connect(&self, schema: &str) -> sqlx::PgConnection {
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect test database");
        sqlx::query("SELECT set_config('search_path', $1, false)")
            .bind(schema)
            .execute(&mut conn)
            .await
            .expect("search path");
        conn
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let database = self.name.clone();
        // A fresh runtime on its own thread: Drop cannot await, and the test's runtime may be
        // shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                        let _ = sqlx::raw_sql(
                            &(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")),
                        )
                        .execute(&mut admin)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}
