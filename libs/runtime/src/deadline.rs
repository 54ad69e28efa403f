//! Each request's deadline, known to the work it starts: the client's `grpc-timeout` or the
//! server's `REQUEST_TIMEOUT_MS`, whichever is sooner. [`crate::database::commit`] refuses to
//! commit once it has passed, so a caller answered DEADLINE_EXCEEDED never finds its work
//! done anyway (a hold kept until its reservation expires, say).

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline of the request being handled, if this runs inside one.
pub fn request_deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Whether the request being handled is past its deadline (never, outside a request).
pub fn deadline_passed() -> bool {
    request_deadline().is_some_and(|deadline| Instant::now() >= deadline)
}

/// Runs `work` as if inside a request due at `deadline` (background work that acts for a
/// caller, and tests).
pub async fn with_deadline<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Sets each request's deadline for its handler.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    bound: Duration,
}

impl DeadlineLayer {
    /// `bound`: the longest any request may take (`REQUEST_TIMEOUT_MS`).
    pub fn new(bound: Duration) -> Self {
        Self { bound }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = WithDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithDeadline {
            inner,
            bound: self.bound,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WithDeadline<S> {
    inner: S,
    bound: Duration,
}

impl<S, B> Service<http::Request<B>> for WithDeadline<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Instant, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        let timeout = asked.map_or(self.bound, |asked| asked.min(self.bound));
        let deadline = Instant::now() + timeout;
        DEADLINE.scope(deadline, self.inner.call(request))
    }
}

/// `grpc-timeout`: at most eight digits and a unit (H, M, S, m, u, n), as the gRPC over
/// HTTP/2 specification writes it. Anything else is ignored (the server's bound applies).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if !value.is_ascii() {
        return None;
    }
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_every_unit_and_nonsense_is_ignored() {
        assert_eq!(parse_grpc_timeout("3m"), Some(Duration::from_millis(3)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(parse_grpc_timeout("700u"), Some(Duration::from_micros(700)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for nonsense in ["", "m", "123456789m", "-1m", "1x", "1.5S", "١m", "1١"] {
            assert_eq!(parse_grpc_timeout(nonsense), None, "{nonsense:?}");
        }
    }

    #[tokio::test]
    async fn the_deadline_is_known_inside_a_request_only() {
        assert_eq!(request_deadline(), None);
        assert!(!deadline_passed());
        let past = Instant::now() - Duration::from_millis(1);
        assert!(with_deadline(past, async { deadline_passed() }).await);
        let later = Instant::now() + Duration::from_secs(60);
        assert!(!with_deadline(later, async { deadline_passed() }).await);
    }
}
