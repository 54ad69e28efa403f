//! Settings from environment variables (12-factor). Every one has a default that works on a
//! developer machine; every one is documented in the README.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::RuntimeError;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/inventory";

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the PostgreSQL server and database; the schema is the service's own.
    pub database_url: String,
    /// `LISTEN_ADDR`: where the gRPC server listens.
    pub listen_addr: SocketAddr,
    /// `RUN_MIGRATIONS`: apply the embedded migrations at start (default true). Turn it off
    /// when a separate job migrates.
    pub run_migrations: bool,
    /// `DATABASE_MAX_CONNECTIONS`: pool size per replica (default 16).
    pub database_max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_SECS`: how long start-up waits for the database (default 30).
    pub database_connect_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: upper bound on any unary request; a shorter client deadline wins
    /// (default 10000).
    pub request_timeout: Duration,
    /// `MAX_CONCURRENT_REQUESTS`: requests in flight per replica before new ones are refused
    /// with RESOURCE_EXHAUSTED instead of queueing without bound (default 1024).
    pub max_concurrent_requests: usize,
}

impl Config {
    /// Reads the environment; `default_listen` is the service's conventional address.
    pub fn from_env(default_listen: &str) -> Result<Self, RuntimeError> {
        Self::from_lookup(default_listen, |key| std::env::var(key).ok())
    }

    /// Same as [`Config::from_env`] but with any source of variables (tests pass a map).
    pub fn from_lookup(
        default_listen: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RuntimeError> {
        let get = |key: &str, default: &str| -> String {
            lookup(key)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            database_url: get("DATABASE_URL", DEFAULT_DATABASE_URL),
            listen_addr: parse("LISTEN_ADDR", &get("LISTEN_ADDR", default_listen))?,
            run_migrations: parse_bool("RUN_MIGRATIONS", &get("RUN_MIGRATIONS", "true"))?,
            database_max_connections: parse(
                "DATABASE_MAX_CONNECTIONS",
                &get("DATABASE_MAX_CONNECTIONS", "16"),
            )?,
            database_connect_timeout: Duration::from_secs(parse(
                "DATABASE_CONNECT_TIMEOUT_SECS",
                &get("DATABASE_CONNECT_TIMEOUT_SECS", "30"),
            )?),
            request_timeout: Duration::from_millis(parse(
                "REQUEST_TIMEOUT_MS",
                &get("REQUEST_TIMEOUT_MS", "10000"),
            )?),
            max_concurrent_requests: parse(
                "MAX_CONCURRENT_REQUESTS",
                &get("MAX_CONCURRENT_REQUESTS", "1024"),
            )?,
        })
    }
}

/// A service's own setting from the environment, beyond [`Config`]: `default` when unset or
/// empty, an error naming the variable when it does not parse.
pub fn env_setting<T: FromStr>(key: &str, default: T) -> Result<T, RuntimeError> {
    match std::env::var(key) {
        Ok(value) if !value.is_empty() => parse(key, &value),
        _ => Ok(default),
    }
}

/// A yes/no setting from the environment, read like `RUN_MIGRATIONS`.
pub fn env_flag(key: &str, default: bool) -> Result<bool, RuntimeError> {
    match std::env::var(key) {
        Ok(value) if !value.is_empty() => parse_bool(key, &value),
        _ => Ok(default),
    }
}

fn parse<T: FromStr>(key: &str, value: &str) -> Result<T, RuntimeError> {
    value
        .parse()
        .map_err(|_| RuntimeError::Config(format!("{key}: cannot parse {value:?}")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, RuntimeError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(RuntimeError::Config(format!(
            "{key}: expected true or false, got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let config = Config::from_lookup("0.0.0.0:50051", |_| None).expect("defaults parse");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.listen_addr.port(), 50051);
        assert!(config.run_migrations);
        assert_eq!(config.database_max_connections, 16);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = Config::from_lookup("0.0.0.0:50051", |key| {
            (key == "REQUEST_TIMEOUT_MS").then(|| "soon".to_owned())
        })
        .expect_err("must fail");
        assert!(error.to_string().contains("REQUEST_TIMEOUT_MS"), "{error}");
    }
}
