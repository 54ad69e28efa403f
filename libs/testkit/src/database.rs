use inventory_runtime::{Config, Settings, connect_database};
use sqlx::migrate::Migrator;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

/// Server of the databases tests create: `TEST_DATABASE_URL`, by default the local server.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Worker nodes of a Citus cluster whose coordinator is the test server:
/// `TEST_CITUS_WORKERS`, comma-separated `host:port` (empty: a plain PostgreSQL server).
pub fn citus_workers() -> Vec<String> {
    std::env::var("TEST_CITUS_WORKERS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The URL of `database` on the server `admin` (a URL) or, given, on `host:port`.
fn database_url(admin: &str, host_port: Option<&str>, database: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    match host_port {
        Some(node) => {
            let (scheme_user, _) = base.rsplit_once('@').unwrap_or(("postgres://postgres", ""));
            format!("{scheme_user}@{node}/{database}")
        }
        None => format!("{base}/{database}"),
    }
}

async fn execute(url: &str, statements: &[String]) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL {url} reachable: {e}"));
    for statement in statements {
        sqlx::raw_sql(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement} on {url}: {e}"));
    }
    conn.close().await.ok();
}

/// A uniquely named database on the test server, dropped with this value. On a Citus
/// cluster (`TEST_CITUS_WORKERS`) it is created on every node with the extension, and the
/// coordinator knows itself and the workers, as `citus-cluster up` sets up its database.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server it lives on (a URL to any database there), and its Citus workers.
    admin: String,
    workers: Vec<String>,
}

impl TestDatabase {
    pub async fn create() -> Self {
        Self::create_on(&admin_url(), citus_workers()).await
    }

    /// A fresh database on another server (`admin`: a URL to any database there).
    pub async fn create_on(admin: &str, workers: Vec<String>) -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let url = create_database(admin, &name, &workers).await;
        Self {
            name,
            url,
            admin: admin.to_owned(),
            workers,
        }
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
        let (database, admin, workers) =
            (self.name.clone(), self.admin.clone(), self.workers.clone());
        // A fresh runtime on its own thread: Drop cannot await, and the test's runtime may be
        // shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_database(&admin, &database, &workers));
            }
        })
        .join();
    }
}

/// Creates `name` on the server of `admin` (a URL to any database there) and returns its URL.
/// With Citus `workers` (`host:port`), the database is created on each of them too, with the
/// extension, and the coordinator registered with itself and its workers, as
/// `citus-cluster up` sets up its database.
pub async fn create_database(admin: &str, name: &str, workers: &[String]) -> String {
    let create = vec![format!("CREATE DATABASE {name}")];
    let url = database_url(admin, None, name);
    if workers.is_empty() {
        execute(admin, &create).await;
        return url;
    }
    // One set-up at a time across every test process: adding the same workers to several
    // new databases at once makes Citus update the same shared catalog rows concurrently
    // ("tuple concurrently updated"). Advisory locks are per database: all take it in the
    // admin database.
    let mut guard = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL {admin} reachable: {e}"));
    sqlx::query("SELECT pg_advisory_lock(hashtext('inventory test database set-up'))")
        .execute(&mut guard)
        .await
        .expect("set-up lock");
    let extension = vec!["CREATE EXTENSION citus".to_owned()];
    for worker in workers {
        execute(&database_url(admin, Some(worker), "postgres"), &create).await;
        execute(&database_url(admin, Some(worker), name), &extension).await;
    }
    execute(admin, &create).await;
    let coordinator = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(node, _)| node.rsplit_once(':'))
        .map(|(host, port)| (host.to_owned(), port.to_owned()))
        .expect("the admin URL names host:port");
    let mut setup = extension;
    // 4 shards per table (2 on each of two workers) instead of 32: the tables are spread
    // just the same and created in a fraction of the time.
    setup.push(format!("ALTER DATABASE {name} SET citus.shard_count = 4"));
    setup.push(format!(
        "SELECT citus_set_coordinator_host('{}', {})",
        coordinator.0, coordinator.1
    ));
    for worker in workers {
        let (host, port) = worker.rsplit_once(':').expect("worker host:port");
        setup.push(format!("SELECT citus_add_node('{host}', {port})"));
    }
    execute(&url, &setup).await;
    // Closing the session releases the lock.
    guard.close().await.ok();
    url
}

/// Drops `name` from the server of `admin` and from `workers`, whoever is connected.
pub async fn drop_database(admin: &str, name: &str, workers: &[String]) {
    let servers = std::iter::once(admin.to_owned()).chain(
        workers
            .iter()
            .map(|w| database_url(admin, Some(w), "postgres")),
    );
    for server in servers {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
            let _ = sqlx::raw_sql(&(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut conn)
                .await;
        }
    }
}
