//! Everything a service stands on, built in one call: its settings, its database (schema,
//! migrations with the platform's), its page-token signer, its background tasks, and a bound
//! gRPC server. A service adds its own API and tasks and calls [`ServiceHost::run`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use inventory_core::PageTokens;
use sqlx::PgPool;
use tonic::body::Body;
use tonic::server::NamedService;

use crate::background::Background;
use crate::database::{connect_database, page_tokens};
use crate::server::{GrpcServer, ServiceSpec};
use crate::{Config, RuntimeError, idempotency};

/// How often request ids past their retention are forgotten.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

pub struct ServiceHost {
    pub config: Config,
    /// The service's pool, confined to its schema.
    pub pool: PgPool,
    /// Signs and checks the page tokens of every list RPC.
    pub page_tokens: PageTokens,
    /// Long-lived work; the host already runs the purge of old request ids.
    pub background: Background,
    server: GrpcServer,
}

impl ServiceHost {
    /// Connects and migrates, then binds `LISTEN_ADDR` (port 0 picks a free port).
    pub async fn build(config: Config, spec: ServiceSpec) -> Result<Self, RuntimeError> {
        // The port first: a clash is found before minutes of waiting for the database.
        let server = GrpcServer::bind(&config, spec).await?;
        let pool = prepare_database(&config, &spec).await?;
        let page_tokens = page_tokens(&pool).await?;
        let mut background = Background::for_service(spec.binary);
        let (purged, retention) = (pool.clone(), config.request_id_retention);
        background.every(PURGE_INTERVAL, move || {
            let pool = purged.clone();
            async move {
                match idempotency::purge(&pool, retention).await {
                    Ok(purged) => tracing::info!(purged, "forgot old request ids"),
                    Err(error) => tracing::warn!(%error, "purging request ids failed"),
                }
            }
        });
        Ok(Self {
            config,
            pool,
            page_tokens,
            background,
            server,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, RuntimeError> {
        self.server.local_addr()
    }

    /// Serves `service` until `shutdown` completes. Background tasks are told to stop as
    /// shutdown begins (so open streams end and the drain is not held up), awaited after
    /// the drain, and the pool closes last.
    pub async fn run<S>(
        self,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError>
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let stopper = self.background.stopper();
        let shutdown = async move {
            shutdown.await;
            stopper.send_replace(true);
        };
        let result = self
            .server
            .serve(service, self.pool.clone(), shutdown)
            .await;
        self.background.stop().await;
        self.pool.close().await;
        result
    }
}

/// A service as its binary, the all-in-one runner and the test kit start it.
pub trait App: Sized + Send + 'static {
    /// What the runtime knows of the service: names, schema, migrations, default port.
    const SPEC: ServiceSpec;

    /// Reads `settings`, connects and migrates, binds the port. (Not `Send`: sqlx's migrator
    /// future cannot be proven so; build on the task that awaits it, then spawn the run.)
    fn build(settings: &crate::Settings) -> impl Future<Output = Result<Self, RuntimeError>>;

    fn local_addr(&self) -> Result<SocketAddr, RuntimeError>;

    /// Serves until `shutdown` completes, then drains and stops its background work.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

/// The whole `main` of a service binary: telemetry, settings from the environment, build,
/// serve until SIGTERM or Ctrl-C; a failure is logged and exits non-zero. `health` probes a
/// running instance instead (exit 0 when SERVING), for container health checks.
pub async fn run_main<A: App>() -> std::process::ExitCode {
    use std::process::ExitCode;
    let spec = A::SPEC;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("health") if args.len() <= 2 => {
            let target = args.get(1).map(String::as_str);
            return match crate::probe::probe(&spec, &crate::Settings::from_env(), target).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("{}: not healthy: {reason}", spec.binary);
                    ExitCode::FAILURE
                }
            };
        }
        Some("migrate") if args.len() == 1 => {
            return match migrate(&spec).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("{}: migrating failed: {error}", spec.binary);
                    ExitCode::FAILURE
                }
            };
        }
        Some("-h" | "--help" | "help") => {
            println!("{}", usage(&spec));
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("{} {}", spec.binary, env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "{}: unknown argument {other:?}\n\n{}",
                spec.binary,
                usage(&spec)
            );
            return ExitCode::from(2);
        }
    }
    let _telemetry = match inventory_telemetry::init(spec.binary, &[]) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("{}: {error}", spec.binary);
            return ExitCode::FAILURE;
        }
    };
    let started = async {
        let settings = crate::Settings::from_env();
        let metrics = crate::MetricsServer::from_settings(&settings, spec.default_metrics).await?;
        let app = A::build(&settings).await?;
        let scrapes = metrics.map(|m| tokio::spawn(m.serve(std::future::pending())));
        let result = app.run_until_stopped(crate::shutdown_signal()).await;
        if let Some(scrapes) = scrapes {
            scrapes.abort();
        }
        result
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, service = spec.binary, "stopped");
            ExitCode::FAILURE
        }
    }
}

/// The service's pool; with `RUN_MIGRATIONS`, its schema migrated and, on Citus, its tables
/// distributed.
async fn prepare_database(config: &Config, spec: &ServiceSpec) -> Result<PgPool, RuntimeError> {
    let pool = connect_database(config, spec.schema, spec.migrator).await?;
    if let (true, Some(layout)) = (config.run_migrations, spec.citus)
        && crate::citus::distribute(&pool, config.distribution, layout).await?
    {
        tracing::info!(schema = spec.schema, "tables distributed on Citus");
    }
    Ok(pool)
}

/// `<binary> migrate`: the schema and its migrations, then exit; for a migration job run
/// with a role that owns the schema, while the service's own pods run with
/// `RUN_MIGRATIONS=false` and data rights only.
async fn migrate(spec: &ServiceSpec) -> Result<(), RuntimeError> {
    let _telemetry = inventory_telemetry::init(spec.binary, &[])?;
    let settings = crate::Settings::from_env().overlay([("RUN_MIGRATIONS", "true".to_owned())]);
    let config = Config::from_settings(&settings, spec.default_listen)?;
    let pool = prepare_database(&config, spec).await?;
    pool.close().await;
    Ok(())
}

fn usage(spec: &ServiceSpec) -> String {
    format!(
        "usage: {binary} [health [host:port] | migrate]\n\n\
         Serves {name} on LISTEN_ADDR (default {listen}), schema {schema} of DATABASE_URL,\n\
         /metrics on METRICS_ADDR (default {metrics}); every setting is an environment\n\
         variable (see the README).\n\
         `{binary} health` asks the instance on LISTEN_ADDR (or at host:port) whether it is\n\
         SERVING (exit 0); `{binary} migrate` applies the migrations and exits.",
        binary = spec.binary,
        name = spec.name,
        listen = spec.default_listen,
        metrics = spec.default_metrics,
        schema = spec.schema,
    )
}
