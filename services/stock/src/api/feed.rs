//! StreamTransactions: the log from a cursor, history first, then live.

use std::pin::Pin;

use inventory_core::{ServiceError, Violations};
use inventory_proto::stock::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::{StockApi, convert};
use crate::domain::feed::FeedPosition;
use crate::store::FeedReader;

/// Transactions fetched per feed query.
const FEED_BATCH: i64 = 500;
/// How soon a feed held back behind a running transaction looks again (then twice as long
/// each time, up to FEED_POLL_MS).
const HELD_BACK_POLL: std::time::Duration = std::time::Duration::from_millis(2);
/// Messages buffered per feed subscriber before the reader waits for the client.
const FEED_BUFFER: usize = 1024;

pub type FeedStream =
    Pin<Box<dyn Stream<Item = Result<pb::StreamTransactionsResponse, Status>> + Send>>;

impl StockApi {
    /// Streams the log from `after_cursor` (or a sequence from before cursors). A task reads in batches and feeds a bounded
    /// channel, so a slow client slows only its own reader.
    pub(super) fn stream(
        &self,
        req: pb::StreamTransactionsRequest,
    ) -> Result<FeedStream, ServiceError> {
        let position = start_position(&req)?;
        let (sender, receiver) = mpsc::channel(FEED_BUFFER);
        let mut reader = FeedReader::new(self.store.clone(), position);
        let log_appended = self.log_appended.clone();
        let poll = self.feed_poll;
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let feed = async {
                let mut held_back_wait = HELD_BACK_POLL / 2;
                loop {
                    let woken = log_appended.notified();
                    match reader.next_batch(FEED_BATCH).await {
                        Ok(batch) if batch.rows.is_empty() => {
                            // Held back: soon, then less often the longer it lasts.
                            let wait = if batch.held_back {
                                held_back_wait = (held_back_wait * 2).min(poll);
                                held_back_wait
                            } else {
                                poll
                            };
                            tokio::select! {
                                () = woken => {}
                                () = tokio::time::sleep(wait) => {}
                                () = sender.closed() => return,
                            }
                        }
                        Ok(batch) => {
                            held_back_wait = HELD_BACK_POLL / 2;
                            for (txn, position) in &batch.rows {
                                let message = pb::StreamTransactionsResponse {
                                    transaction: Some(convert::transaction(txn)),
                                    cursor: position.token(),
                                };
                                if sender.send(Ok(message)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, cursor = reader.position().token(), "transaction feed stopped");
                            let _ = sender.send(Err(Status::from(error))).await;
                            return;
                        }
                    }
                }
            };
            // A feed never ends on its own: on shutdown it ends with UNAVAILABLE, so the
            // server can drain and the consumer resumes from its cursor on another replica.
            let stopped = tokio::select! {
                () = feed => false,
                () = stopping.wait() => true,
            };
            if stopped {
                let status = Status::unavailable("server shutting down; resume from your cursor");
                let _ = sender.send(Err(status)).await;
            }
        }
        // The stream's reads belong to its span, which lasts as long as the stream.
        .instrument(tracing::Span::current()));
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }
}

/// Where a feed starts: after its cursor, or after a sequence read from the feed before
/// cursors; from the beginning when neither is set.
fn start_position(req: &pb::StreamTransactionsRequest) -> Result<FeedPosition, ServiceError> {
    let mut v = Violations::new();
    v.non_negative("after_sequence", req.after_sequence);
    v.finish()?;
    if req.after_cursor.is_empty() {
        return Ok(FeedPosition::after_sequence(req.after_sequence));
    }
    FeedPosition::parse(&req.after_cursor).map_err(|problem| {
        let shown = inventory_core::validate::excerpt(&req.after_cursor);
        ServiceError::invalid("after_cursor", format!("{shown} {problem}"))
    })
}
