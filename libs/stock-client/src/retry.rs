//! Which failed calls to retry, and how long to wait: only UNAVAILABLE (stock restarting or
//! shedding load) and ABORTED (a lost race), always with the same request (so the same
//! request_id: stock replays the first answer if the first attempt did land), a bounded
//! number of times, with exponential backoff and jitter. Everything else is final:
//! INVALID_ARGUMENT or FAILED_PRECONDITION would only fail again, and after
//! DEADLINE_EXCEEDED the caller's own deadline is as good as spent.

use std::future::Future;
use std::time::Duration;

use tonic::{Code, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub first_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    pub fn is_retryable(code: Code) -> bool {
        matches!(code, Code::Unavailable | Code::Aborted)
    }

    /// The wait after failed attempt `attempt` (1-based): half fixed, half random
    /// ("equal jitter"), so retries of many callers spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .first_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let half = ceiling / 2;
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000) as u32;
        half + half.mul_f64(f64::from(random) / 1_000.0)
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts are spent.
    pub async fn run<T, F, Fut>(&self, method: &'static str, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(status) if Self::is_retryable(status.code()) && attempt < self.attempts => {
                    let wait = self.backoff(attempt);
                    tracing::debug!(
                        method,
                        attempt,
                        code = ?status.code(),
                        wait_ms = wait.as_millis() as u64,
                        "stock call failed; retrying with the same request"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_and_aborted_are_retried() {
        for code in [Code::Unavailable, Code::Aborted] {
            assert!(RetryPolicy::is_retryable(code), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::NotFound,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::ResourceExhausted,
        ] {
            assert!(!RetryPolicy::is_retryable(code), "{code:?}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = RetryPolicy::default();
        for attempt in 1..40 {
            let wait = policy.backoff(attempt);
            assert!(wait <= policy.max_backoff, "{attempt}: {wait:?}");
            let exponent = (attempt - 1).min(16);
            let ceiling = (policy.first_backoff * (1 << exponent)).min(policy.max_backoff);
            assert!(wait >= ceiling / 2, "{attempt}: {wait:?}");
        }
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let policy = RetryPolicy {
            first_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let result: Result<(), Status> = policy
            .run("Test", || {
                calls += 1;
                std::future::ready(Err(Status::unavailable("down")))
            })
            .await;
        assert_eq!(result.map_err(|s| s.code()), Err(Code::Unavailable));
        assert_eq!(calls, policy.attempts);
    }
}
