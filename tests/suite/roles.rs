//! deploy/postgres/init.sql on the real database: each service's role owns its schema and
//! cannot read another's (run with its role and schema names suffixed, since roles are
//! global to the server).

use inventory_testkit::{TestDatabase, new_id};
use sqlx::Connection;

const SERVICES: [&str; 4] = ["stock", "allocation", "replenishment", "reconciliation"];

/// `sql` with every service name (as a whole word) suffixed and the database renamed.
fn localised(sql: &str, suffix: &str, database: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if SERVICES.contains(&word.as_str()) {
            out.push_str(&format!("{word}_{suffix}"));
        } else if word == "inventory" {
            out.push_str(&format!("\"{database}\""));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The SQLSTATE a statement failed with (42501: insufficient privilege).
fn sql_state<T>(result: &Result<T, sqlx::Error>) -> Option<String> {
    result
        .as_ref()
        .err()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn a_service_role_owns_its_schema_and_cannot_read_another_services_tables() {
    let database = TestDatabase::create().await;
    let init = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/postgres/init.sql"
    ))
    .expect("init.sql");
    // What runs inside the database (after `\connect inventory`), comments dropped.
    let inside: String = init
        .split_once("\\connect inventory")
        .expect("init.sql connects to the inventory database")
        .1
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let suffix = new_id().replace('-', "")[..12].to_owned();
    let mut admin = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::raw_sql(&localised(&inside, &suffix, &database.name))
        .execute(&mut admin)
        .await
        .expect("init.sql applies");
    let role = |service: &str| format!("{service}_{suffix}");

    // Reconciliation's role creates a table in its own schema...
    let own = sqlx::raw_sql(&format!(
        "SET ROLE {r}; CREATE TABLE {r}.count_probe (id int); INSERT INTO {r}.count_probe VALUES (1);
         RESET ROLE;",
        r = role("reconciliation")
    ))
    .execute(&mut admin)
    .await;
    assert!(own.is_ok(), "{own:?}");
    // ...which stock's role can neither read nor write, nor create tables beside it or in
    // public.
    for attempt in [
        format!("SELECT * FROM {}.count_probe", role("reconciliation")),
        format!(
            "INSERT INTO {}.count_probe VALUES (2)",
            role("reconciliation")
        ),
        format!("CREATE TABLE {}.intruder (id int)", role("reconciliation")),
        "CREATE TABLE public.intruder (id int)".to_owned(),
    ] {
        sqlx::raw_sql(&format!("SET ROLE {}", role("stock")))
            .execute(&mut admin)
            .await
            .expect("set role");
        let refused = sqlx::raw_sql(&attempt).execute(&mut admin).await;
        assert_eq!(
            sql_state(&refused).as_deref(),
            Some("42501"),
            "{attempt}: {refused:?}"
        );
        sqlx::raw_sql("RESET ROLE")
            .execute(&mut admin)
            .await
            .expect("reset role");
    }

    let roles: Vec<String> = SERVICES.iter().map(|s| role(s)).collect();
    sqlx::raw_sql(&format!(
        "DROP OWNED BY {0}; DROP ROLE {0}",
        roles.join(", ")
    ))
    .execute(&mut admin)
    .await
    .expect("clean up the roles");
}

/// `url` logging in as `role` with `password` instead.
fn as_role(url: &str, role: &str, password: &str) -> String {
    let rest = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(_, host)| host)
        .expect("a URL with a user");
    format!("postgres://{role}:{password}@{rest}")
}

/// The chart's layout (README, "Deploy"): a migration role owns stock's schema and migrates it
/// (`stock-service migrate`), the service runs with RUN_MIGRATIONS=false as a role with data
/// rights only, and that role can do stock's work but not change the schema.
#[tokio::test]
async fn stock_runs_with_data_rights_only_after_its_owner_migrated_it() {
    let database = std::sync::Arc::new(TestDatabase::create().await);
    let suffix = new_id().replace('-', "")[..12].to_owned();
    let (owner, service) = (format!("stock_owner_{suffix}"), format!("stock_{suffix}"));
    let mut admin = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {owner} LOGIN PASSWORD 'owner-pw';
         CREATE ROLE {service} LOGIN PASSWORD 'service-pw';
         GRANT CONNECT ON DATABASE \"{db}\" TO {owner}, {service};
         CREATE SCHEMA stock AUTHORIZATION {owner};
         GRANT USAGE ON SCHEMA stock TO {service};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA stock
           GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {service};
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA stock
           GRANT USAGE, SELECT ON SEQUENCES TO {service};",
        db = database.name
    ))
    .execute(&mut admin)
    .await
    .expect("the README's roles");

    // What `stock-service migrate` does, as the owner.
    let owner_url = as_role(&database.url, &owner, "owner-pw");
    let settings = inventory_runtime::Settings::defaults().overlay([
        ("DATABASE_URL", owner_url),
        ("RUN_MIGRATIONS", "true".into()),
    ]);
    let config =
        inventory_runtime::Config::from_settings(&settings, "127.0.0.1:0").expect("config");
    inventory_runtime::connect_database(&config, "stock", &stock_service::app::MIGRATOR)
        .await
        .expect("the owner migrates")
        .close()
        .await;

    let service_url = as_role(&database.url, &service, "service-pw");
    let stock = inventory_testkit::StockServer::spawn_on(
        database.clone(),
        &[("DATABASE_URL", &service_url), ("RUN_MIGRATIONS", "false")],
    )
    .await;
    let warehouse = stock.create_warehouse("Berlin", (52.52, 13.40)).await;
    let product = stock.create_product("ROLE-1").await;
    stock.receive(&product, &warehouse, 5, "opening").await;
    assert_eq!(stock.level(&product, &warehouse).await, Some((5, 0)));
    stock.assert_ledger_clean().await;

    let mut as_service = sqlx::PgConnection::connect(&service_url)
        .await
        .expect("connect as the service");
    for ddl in [
        "CREATE TABLE stock.intruder (id int)",
        "ALTER TABLE stock.inventory ADD COLUMN intruder int",
        "DROP TABLE stock.inventory_transactions",
    ] {
        let refused = sqlx::raw_sql(ddl).execute(&mut as_service).await;
        assert_eq!(
            sql_state(&refused).as_deref(),
            Some("42501"),
            "{ddl}: {refused:?}"
        );
    }
    drop(as_service);
    drop(stock);
    sqlx::raw_sql(&format!(
        "DROP SCHEMA stock CASCADE; DROP OWNED BY {owner}, {service}; DROP ROLE {owner}, {service}"
    ))
    .execute(&mut admin)
    .await
    .expect("clean up the roles");
}
