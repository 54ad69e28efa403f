//! The process's Prometheus metrics: one registry for every service it hosts (the suite
//! hosts four; `rpc_service` tells them apart), scraped at `/metrics` (served by the runtime
//! on `METRICS_ADDR`).
//!
//! The platform's own families are here; a service adds its own with [`Metrics::register`]
//! and values read at scrape time with [`Metrics::on_scrape`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry, Unit};

/// One RPC of one service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub rpc_service: String,
    pub rpc_method: String,
}

/// One RPC and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    pub rpc_service: String,
    pub rpc_method: String,
    /// The gRPC status code's name (`OK`, `NOT_FOUND`, ...).
    pub code: String,
}

/// One service (its proto name).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub rpc_service: String,
}

/// One connection pool (its schema) and a state: `in_use`, `idle` or `max`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub state: String,
}

/// One connection pool (its schema).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolNameLabels {
    pub pool: String,
}

/// One feed consumer (its cursor's name).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabels {
    pub feed: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.5 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Sampler = Box<dyn Fn() + Send + Sync>;

pub struct Metrics {
    registry: Mutex<Registry>,
    samplers: Mutex<BTreeMap<String, Sampler>>,
    /// Requests answered, by RPC and status code (rate and errors).
    pub rpc_requests: Family<RpcCodeLabels, Counter>,
    /// Time from request to response headers, by RPC.
    pub rpc_duration: HistogramFamily<RpcLabels>,
    /// Requests being served now.
    pub rpc_in_flight: Family<ServiceLabels, Gauge>,
    /// Requests refused with RESOURCE_EXHAUSTED at the concurrency limit.
    pub rpc_shed: Family<ServiceLabels, Counter>,
    /// Database connections per pool: in use, idle, and the most it may open.
    pub db_pool_connections: Family<PoolLabels, Gauge>,
    /// Time to get a pooled connection and begin a transaction on it.
    pub db_pool_acquire: HistogramFamily<PoolNameLabels>,
    /// How far behind stock's log a feed consumer is (0 once caught up with the live feed).
    pub feed_lag_seconds: Family<FeedLabels, Gauge<f64, AtomicU64>>,
    /// The last sequence a feed consumer applied.
    pub feed_last_sequence: Family<FeedLabels, Gauge>,
    /// 1 while a feed consumer's stream is open.
    pub feed_connected: Family<FeedLabels, Gauge>,
}

/// The process's metrics, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        // Fields are built in order; the registry is moved in last, once all are registered.
        Self {
            rpc_requests: registered(
                &mut registry,
                "rpc_server_requests",
                "gRPC requests answered, by RPC and status code",
                None,
                Family::default(),
            ),
            rpc_duration: registered(
                &mut registry,
                "rpc_server_duration",
                "Time from a gRPC request to its response, by RPC",
                Some(Unit::Seconds),
                Family::new_with_constructor(latency_histogram),
            ),
            rpc_in_flight: registered(
                &mut registry,
                "rpc_server_in_flight",
                "gRPC requests being served",
                None,
                Family::default(),
            ),
            rpc_shed: registered(
                &mut registry,
                "rpc_server_shed",
                "gRPC requests refused at the concurrency limit (RESOURCE_EXHAUSTED)",
                None,
                Family::default(),
            ),
            db_pool_connections: registered(
                &mut registry,
                "db_pool_connections",
                "Database connections of a pool by state (in_use, idle, max)",
                None,
                Family::default(),
            ),
            db_pool_acquire: registered(
                &mut registry,
                "db_pool_acquire",
                "Time to get a pooled connection and begin a transaction (waits when the pool is busy)",
                Some(Unit::Seconds),
                Family::new_with_constructor(latency_histogram),
            ),
            feed_lag_seconds: registered(
                &mut registry,
                "feed_consumer_lag",
                "How far behind stock's transaction log a feed consumer is",
                Some(Unit::Seconds),
                Family::default(),
            ),
            feed_last_sequence: registered(
                &mut registry,
                "feed_consumer_last_sequence",
                "The last sequence of stock's log a feed consumer applied",
                None,
                Family::default(),
            ),
            feed_connected: registered(
                &mut registry,
                "feed_consumer_connected",
                "1 while a feed consumer's stream from stock is open",
                None,
                Family::default(),
            ),
            samplers: Mutex::new(BTreeMap::new()),
            registry: Mutex::new(registry),
        }
    }

    /// Adds a family of a service's own. Register each name once per process (keep the
    /// family in a `OnceLock` of the service): the suite hosts several services.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        lock(&self.registry).register(name, help, metric);
    }

    /// As [`Metrics::register`], with the unit as the name's suffix (`_seconds`).
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        lock(&self.registry).register_with_unit(name, help, unit, metric);
    }

    /// Runs `sample` before every scrape, to set gauges read from elsewhere (a pool's size).
    /// A later sampler under the same `key` replaces the earlier one (a service started
    /// again in the same process, as tests do, replaces its pool).
    pub fn on_scrape(&self, key: impl Into<String>, sample: impl Fn() + Send + Sync + 'static) {
        lock(&self.samplers).insert(key.into(), Box::new(sample));
    }

    /// Everything in the OpenMetrics text format, samplers run first.
    pub fn encode(&self) -> String {
        for sample in lock(&self.samplers).values() {
            sample();
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &lock(&self.registry));
        text
    }
}

/// `metric` registered under `name` (with `unit` as the name's suffix), and handed back.
fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// A poisoned lock still holds usable metrics: a panic elsewhere must not stop scrapes.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_their_latency_appear_in_the_scrape() {
        let m = metrics();
        m.rpc_requests
            .get_or_create(&RpcCodeLabels {
                rpc_service: "test.v1.Probe".into(),
                rpc_method: "Ping".into(),
                code: "NOT_FOUND".into(),
            })
            .inc();
        m.rpc_duration
            .get_or_create(&RpcLabels {
                rpc_service: "test.v1.Probe".into(),
                rpc_method: "Ping".into(),
            })
            .observe(0.003);
        let sampled = Gauge::<i64>::default();
        m.register("test_sampled", "set at scrape", sampled.clone());
        m.on_scrape("test", move || {
            sampled.set(7);
        });
        let text = m.encode();
        assert!(
            text.contains(
                r#"rpc_server_requests_total{rpc_service="test.v1.Probe",rpc_method="Ping",code="NOT_FOUND"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"rpc_server_duration_seconds_count{rpc_service="test.v1.Probe",rpc_method="Ping"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("test_sampled 7"), "{text}");
    }
}
