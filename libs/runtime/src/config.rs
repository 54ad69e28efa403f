//! Settings (12-factor): every setting, the shared ones and each service's own, is read
//! through one [`Settings`] lookup, with its default written once beside it. The process
//! environment is one source; the all-in-one runner and tests give each service its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::RuntimeError;
use crate::observe::RpcLog;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/inventory";

/// Finds the value of one named setting.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where settings come from: named values, each looked up when a setting is read.
#[derive(Clone)]
pub struct Settings {
    lookup: Arc<Lookup>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settings(..)")
    }
}

impl Settings {
    /// The process environment.
    pub fn from_env() -> Self {
        Self::from_fn(|key| std::env::var(key).ok())
    }

    /// Nothing set: every setting takes its default.
    pub fn defaults() -> Self {
        Self::from_fn(|_| None)
    }

    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// These values first, then whatever `self` has.
    pub fn overlay<K: Into<String>, V: Into<String>>(
        &self,
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let values: BTreeMap<String, String> = values
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let below = self.clone();
        Self::from_fn(move |key| values.get(key).cloned().or_else(|| below.raw(key)))
    }

    /// The value set for `key`; unset and empty are the same.
    pub fn raw(&self, key: &str) -> Option<String> {
        (self.lookup)(key).filter(|v| !v.is_empty())
    }

    /// `key` parsed, or `default` when unset; an error names the key and what was wrong.
    pub fn get<T>(&self, key: &str, default: T) -> Result<T, RuntimeError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.raw(key) {
            Some(value) => value
                .parse()
                .map_err(|e| RuntimeError::Config(format!("{key}: cannot parse {value:?}: {e}"))),
            None => Ok(default),
        }
    }

    /// A text setting.
    pub fn text(&self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or_else(|| default.to_owned())
    }

    /// A yes/no setting: true/false, yes/no, on/off, 1/0.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, RuntimeError> {
        let Some(value) = self.raw(key) else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(RuntimeError::Config(format!(
                "{key}: expected true or false, got {value:?}"
            ))),
        }
    }

    /// A duration given in milliseconds.
    pub fn millis(&self, key: &str, default_ms: u64) -> Result<Duration, RuntimeError> {
        self.get(key, default_ms).map(Duration::from_millis)
    }
}

/// `METRICS_ADDR`, where Prometheus scrapes `/metrics`, as an address; `None` for `off`.
pub(crate) fn metrics_addr(
    settings: &Settings,
    default: &str,
) -> Result<Option<SocketAddr>, RuntimeError> {
    let value = settings.text("METRICS_ADDR", default);
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        RuntimeError::Config(format!(
            "METRICS_ADDR: cannot parse {value:?}; write host:port (0.0.0.0:9464) or off"
        ))
    })
}

/// A database URL without its passwords (in the user part or as `password` or
/// `sslpassword` parameters), for messages and logs.
pub fn redact(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &base[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &base[..scheme + 3], &base[at + 1..])
        }
        _ => base.to_owned(),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("").to_ascii_lowercase();
            name != "password" && name != "sslpassword"
        })
        .collect();
    if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// The settings every service shares. (Its Debug form leaves the database password out.)
#[derive(Clone)]
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
    /// `LOCK_TIMEOUT_MS`: the longest a statement waits for a row or table lock another
    /// transaction holds (default 2000); then the request fails ABORTED, naming what was
    /// held, and changes nothing. Migrations wait without bound.
    pub lock_timeout: Duration,
    /// `MAX_CONCURRENT_REQUESTS`: requests in flight per replica before new ones are refused
    /// with RESOURCE_EXHAUSTED instead of queueing without bound (default 1024).
    pub max_concurrent_requests: usize,
    /// `REQUEST_ID_RETENTION_HOURS`: how long request ids are remembered, so a retry within
    /// that window replays the first answer (default 168, a week).
    pub request_id_retention: chrono::Duration,
    /// `DISTRIBUTED`: spread the service's tables over Citus when the database has it
    /// (`auto`, default), always (`citus`) or never (`off`); services without a layout
    /// ignore it.
    pub distribution: crate::citus::Distribution,
    /// `RPC_LOG`: a log line per RPC for `all` (default), only failed ones for `errors`, none
    /// for `off`.
    pub rpc_log: RpcLog,
    /// `REFLECTION`: serve gRPC server reflection (default true); production may turn it off
    /// so the API is not described to whoever can reach the port.
    pub reflection: bool,
    /// `MAX_MESSAGE_BYTES`: the largest request message a service decodes (default 4 MiB);
    /// a larger one is refused with OUT_OF_RANGE naming the limit, before it is parsed.
    pub max_message_bytes: usize,
    /// `TLS_*`: the server's certificate and the authority callers' certificates chain to.
    pub tls: crate::tls::TlsFiles,
    /// `AUTH_*`: how callers prove who they are.
    pub auth: crate::auth::AuthSettings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact(&self.database_url))
            .field("listen_addr", &self.listen_addr)
            .field("run_migrations", &self.run_migrations)
            .field("database_max_connections", &self.database_max_connections)
            .field("database_connect_timeout", &self.database_connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("request_id_retention", &self.request_id_retention)
            .field("distribution", &self.distribution)
            .field("rpc_log", &self.rpc_log)
            .field("reflection", &self.reflection)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish()
    }
}

impl Config {
    /// Reads the shared settings; `default_listen` is the service's conventional address.
    pub fn from_settings(settings: &Settings, default_listen: &str) -> Result<Self, RuntimeError> {
        let listen = settings.text("LISTEN_ADDR", default_listen);
        let tls = crate::tls::TlsFiles::from_settings(settings)?;
        let auth = crate::auth::AuthSettings::from_settings(settings, tls.mutual())?;
        Ok(Self {
            tls,
            auth,
            database_url: settings.text("DATABASE_URL", DEFAULT_DATABASE_URL),
            listen_addr: listen.parse().map_err(|_| {
                RuntimeError::Config(format!("LISTEN_ADDR: cannot parse {listen:?}"))
            })?,
            run_migrations: settings.flag("RUN_MIGRATIONS", true)?,
            database_max_connections: settings.get("DATABASE_MAX_CONNECTIONS", 16)?,
            database_connect_timeout: Duration::from_secs(
                settings.get("DATABASE_CONNECT_TIMEOUT_SECS", 30)?,
            ),
            request_timeout: settings.millis("REQUEST_TIMEOUT_MS", 10_000)?,
            lock_timeout: match settings.millis("LOCK_TIMEOUT_MS", 2_000)? {
                timeout if timeout.is_zero() => {
                    return Err(RuntimeError::Config(
                        "LOCK_TIMEOUT_MS: 0 would let a request wait for a lock forever; \
                         give a bound in milliseconds"
                            .to_owned(),
                    ));
                }
                timeout => timeout,
            },
            rpc_log: settings.get("RPC_LOG", RpcLog::All)?,
            reflection: settings.flag("REFLECTION", true)?,
            max_message_bytes: match settings.get("MAX_MESSAGE_BYTES", 4 * 1024 * 1024)? {
                n if n < 1024 => {
                    return Err(RuntimeError::Config(format!(
                        "MAX_MESSAGE_BYTES: {n} is below 1024; no request would fit"
                    )));
                }
                n => n,
            },
            distribution: settings.get("DISTRIBUTED", crate::citus::Distribution::Auto)?,
            max_concurrent_requests: settings.get("MAX_CONCURRENT_REQUESTS", 1024)?,
            request_id_retention: chrono::Duration::hours(i64::from(
                settings
                    .get::<u32>("REQUEST_ID_RETENTION_HOURS", 168)?
                    .max(1),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let config =
            Config::from_settings(&Settings::defaults(), "0.0.0.0:50051").expect("defaults parse");
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(config.listen_addr.port(), 50051);
        assert!(config.run_migrations);
        assert_eq!(config.database_max_connections, 16);
        assert_eq!(config.request_id_retention.num_hours(), 168);
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://stock:secret@db:5432/inventory"),
            "postgres://stock@db:5432/inventory"
        );
        assert_eq!(redact("postgres://db/inventory"), "postgres://db/inventory");
        assert_eq!(
            redact("postgres://db/inventory?sslmode=require&password=secret&application_name=x"),
            "postgres://db/inventory?sslmode=require&application_name=x"
        );
        assert_eq!(
            redact("postgres://db/inventory?Password=secret"),
            "postgres://db/inventory"
        );
        let settings = Settings::defaults()
            .overlay([("DATABASE_URL", "postgres://stock:hunter2@db:5432/inventory")]);
        let config = Config::from_settings(&settings, "0.0.0.0:50051").expect("parses");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://stock@db:5432/inventory"),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let settings = Settings::defaults().overlay([("REQUEST_TIMEOUT_MS", "soon")]);
        let error = Config::from_settings(&settings, "0.0.0.0:50051").expect_err("must fail");
        assert!(error.to_string().contains("REQUEST_TIMEOUT_MS"), "{error}");
    }

    #[test]
    fn an_overlay_wins_over_what_lies_below_it() {
        let below = Settings::defaults().overlay([("A", "1"), ("B", "2")]);
        let settings = below.overlay([("A", "3")]);
        assert_eq!(settings.get("A", 0).ok(), Some(3));
        assert_eq!(settings.get("B", 0).ok(), Some(2));
        assert_eq!(settings.get("C", 7).ok(), Some(7));
        assert_eq!(settings.flag("D", true).ok(), Some(true));
        assert!(settings.overlay([("D", "maybe")]).flag("D", true).is_err());
    }
}
