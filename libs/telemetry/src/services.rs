//! Several services in one process (the suite), each exported under its own `service.name`.
//!
//! A service's requests and background work run with a [`ServiceTag`] in their OpenTelemetry
//! context; every span started below inherits it (a child's context is its parent's plus
//! itself). [`ServiceRouter`] reads the tag when a span starts and hands the finished span
//! to the batch processor of that service, whose resource names it. Spans without a tag go
//! to the process's own processor.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::Span as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Carries the span's service from `on_start` to `on_end`; removed before export.
const ROUTE_KEY: &str = "inventory.route.service";

/// The service a piece of work belongs to, carried in the OpenTelemetry context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceTag(pub(crate) &'static str);

/// The context of work done for `service`: `parent` (a caller's trace, or empty) plus the tag.
pub(crate) fn tagged(parent: Context, service: &'static str) -> Context {
    parent.with_value(ServiceTag(service))
}

/// Runs `work` as `service`'s: the spans it starts without a parent are exported under that
/// service's name. For long-lived background tasks of a service.
pub fn in_service<F: Future>(service: &'static str, work: F) -> impl Future<Output = F::Output> {
    work.with_context(tagged(Context::new(), service))
}

/// Routes each finished span to the processor of the service it was started under.
#[derive(Debug)]
pub(crate) struct ServiceRouter {
    process: Box<dyn SpanProcessor>,
    services: Vec<(&'static str, Box<dyn SpanProcessor>)>,
}

impl ServiceRouter {
    /// `process` takes the untagged spans and those of services not listed.
    pub(crate) fn new(
        process: Box<dyn SpanProcessor>,
        services: Vec<(&'static str, Box<dyn SpanProcessor>)>,
    ) -> Self {
        Self { process, services }
    }

    fn processor(&self, service: &str) -> &dyn SpanProcessor {
        self.services
            .iter()
            .find(|(name, _)| *name == service)
            .map_or(self.process.as_ref(), |(_, processor)| processor.as_ref())
    }

    fn all(&self) -> impl Iterator<Item = &dyn SpanProcessor> {
        std::iter::once(self.process.as_ref()).chain(self.services.iter().map(|(_, p)| p.as_ref()))
    }
}

impl SpanProcessor for ServiceRouter {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if let Some(ServiceTag(service)) = cx.get::<ServiceTag>()
            && self.services.iter().any(|(name, _)| name == service)
        {
            span.set_attribute(KeyValue::new(ROUTE_KEY, *service));
        }
    }

    fn on_end(&self, mut span: SpanData) {
        let route = span
            .attributes
            .iter()
            .position(|kv| kv.key.as_str() == ROUTE_KEY)
            .map(|at| span.attributes.remove(at).value);
        match route {
            Some(service) => self.processor(service.as_str().as_ref()).on_end(span),
            None => self.process.on_end(span),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        every(self.all().map(SpanProcessor::force_flush))
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        every(
            self.all()
                .map(|processor| processor.shutdown_with_timeout(timeout)),
        )
    }

    /// Each inner processor was given its own resource when it was built.
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// Runs every step (one failing exporter must not keep the others' spans) and reports the
/// first failure.
fn every(results: impl Iterator<Item = OTelSdkResult>) -> OTelSdkResult {
    let mut first = Ok(());
    for result in results {
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// The resource of one service: the standard detectors (`OTEL_RESOURCE_ATTRIBUTES`) with
/// `service.name` set to `name`.
pub(crate) fn resource(name: &str) -> Resource {
    Resource::builder()
        .with_service_name(name.to_owned())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
    use std::sync::{Arc, Mutex};

    /// Collects exported spans with the service name of the processor that exported them.
    #[derive(Debug, Clone, Default)]
    struct Collected(Arc<Mutex<Vec<Received>>>);

    /// (service name, span name, attributes) of one exported span.
    type Received = (String, String, Vec<KeyValue>);

    #[derive(Debug)]
    struct Collector {
        collected: Collected,
        service: String,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let mut collected = self.collected.0.lock().expect("lock");
            for span in batch {
                collected.push((self.service.clone(), span.name.to_string(), span.attributes));
            }
            Ok(())
        }

        fn set_resource(&mut self, resource: &Resource) {
            if let Some(name) = resource.get(&opentelemetry::Key::new("service.name")) {
                self.service = name.to_string();
            }
        }
    }

    fn processor(collected: &Collected, name: &str) -> Box<dyn SpanProcessor> {
        let mut processor = opentelemetry_sdk::trace::SimpleSpanProcessor::new(Collector {
            collected: collected.clone(),
            service: String::new(),
        });
        processor.set_resource(&resource(name));
        Box::new(processor)
    }

    #[test]
    fn spans_are_exported_under_the_service_they_were_started_in() {
        let collected = Collected::default();
        let router = ServiceRouter::new(
            processor(&collected, "inventory-suite"),
            vec![
                ("stock-service", processor(&collected, "stock-service")),
                (
                    "replenishment-service",
                    processor(&collected, "replenishment-service"),
                ),
            ],
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(router)
            .build();
        let tracer = provider.tracer("test");

        let stock = tagged(Context::new(), "stock-service");
        let parent = tracer.start_with_context("reserve", &stock);
        let child_cx = stock.with_span(parent);
        tracer.start_with_context("insert", &child_cx);
        drop(child_cx);
        tracer.start_with_context("unknown", &tagged(Context::new(), "nobody"));
        tracer.start("untagged");
        drop(provider);

        let mut exported = collected.0.lock().expect("lock").clone();
        exported.sort_by(|a, b| a.1.cmp(&b.1));
        let seen: Vec<(&str, &str)> = exported
            .iter()
            .map(|(service, name, _)| (service.as_str(), name.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("stock-service", "insert"),
                ("stock-service", "reserve"),
                ("inventory-suite", "unknown"),
                ("inventory-suite", "untagged"),
            ]
        );
        assert!(
            exported
                .iter()
                .all(|(_, _, attributes)| attributes.iter().all(|kv| kv.key.as_str() != ROUTE_KEY)),
            "the routing attribute is not exported"
        );
    }
}
