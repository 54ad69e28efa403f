//! A service's long-lived work (upkeep loops, feed consumers): started beside the server,
//! told to stop when shutdown begins, and awaited before the pool closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The tasks of one service.
pub struct Background {
    stop: Arc<watch::Sender<bool>>,
    tasks: JoinSet<()>,
    /// Whose work this is, for its traces (the suite hosts several services).
    service: Option<&'static str>,
}

/// Handed to each task: completes when the service begins to stop.
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Completes once shutdown has begun (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the sender is gone: the service is gone too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

impl Background {
    pub fn new() -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            stop: Arc::new(stop),
            tasks: JoinSet::new(),
            service: None,
        }
    }

    /// The tasks of `service` (its binary's name): their spans are exported under it.
    pub fn for_service(service: &'static str) -> Self {
        Self {
            service: Some(service),
            ..Self::new()
        }
    }

    /// A signal for work that is not a task of its own (open streams, for example).
    pub fn stopping(&self) -> Stopping {
        Stopping(self.stop.subscribe())
    }

    /// Starts `task`, which should return soon after its [`Stopping`] completes.
    pub fn spawn<F>(&mut self, task: impl FnOnce(Stopping) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let work = task(self.stopping());
        match self.service {
            Some(service) => self
                .tasks
                .spawn(inventory_telemetry::in_service(service, work)),
            None => self.tasks.spawn(work),
        };
    }

    /// Runs `tick` every `interval` (the first after one interval) until shutdown; a tick in
    /// progress finishes first.
    pub fn every<F, Fut>(&mut self, interval: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        self.spawn(move |mut stopping| async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => tick().await,
                    () = stopping.wait() => return,
                }
            }
        });
    }

    /// Tells every task to stop, without waiting.
    pub fn signal_stop(&self) {
        self.stop.send_replace(true);
    }

    /// A handle that can tell every task to stop from elsewhere.
    pub(crate) fn stopper(&self) -> Arc<watch::Sender<bool>> {
        self.stop.clone()
    }

    /// Tells every task to stop and waits until all have ended.
    pub async fn stop(mut self) {
        self.signal_stop();
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(error) = ended
                && error.is_panic()
            {
                tracing::error!(%error, "a background task panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn every_task_ends_when_the_service_stops() {
        let mut background = Background::new();
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        background.every(Duration::from_millis(5), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let ended = Arc::new(AtomicUsize::new(0));
        let marked = ended.clone();
        background.spawn(move |mut stopping| async move {
            stopping.wait().await;
            marked.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(Duration::from_secs(5), background.stop())
            .await
            .expect("tasks end promptly");
        assert!(ticks.load(Ordering::SeqCst) > 0, "the periodic task ran");
        assert_eq!(
            ended.load(Ordering::SeqCst),
            1,
            "the waiting task saw the stop"
        );
    }
}
