//! Load that runs through a fault: clients receiving one unit per request into stock, every
//! request kept with its answer, then settled: what got no answer is sent again (same request
//! id), so afterwards every request must be applied exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_proto::stock::v1::stock_service_client::StockServiceClient;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

use crate::new_id;

type Sent = Vec<(pb::ReceiveStockRequest, Result<(), tonic::Status>)>;

/// Receipts sent by several clients until [`ReceiptLoad::settle`].
pub struct ReceiptLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Sent>>,
}

impl ReceiptLoad {
    /// `clients` callers receiving one unit at a time of `product` into `warehouse`.
    pub fn start(
        client: &StockServiceClient<Channel>,
        product: &str,
        warehouse: &str,
        clients: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let (mut client, stop) = (client.clone(), stop.clone());
                let (product, warehouse) = (product.to_owned(), warehouse.to_owned());
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let request = pb::ReceiveStockRequest {
                            request_id: new_id(),
                            product_id: product.clone(),
                            warehouse_id: warehouse.clone(),
                            quantity: 1,
                            ..Default::default()
                        };
                        let answer = client.receive_stock(request.clone()).await.map(|_| ());
                        if answer.is_err() {
                            // Not a busy loop while the database is away.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        sent.push((request, answer));
                    }
                    sent
                })
            })
            .collect();
        Self { stop, clients }
    }

    /// Stops the clients, checks the load ran on both sides of the fault and every failure
    /// told the caller to retry (UNAVAILABLE), then retries each unanswered request once.
    /// Returns how many requests were sent: the units that must now be on hand.
    pub async fn settle(self, client: &StockServiceClient<Channel>) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        let mut sent = Vec::new();
        for handle in self.clients {
            sent.extend(handle.await.expect("a load client"));
        }
        let acknowledged = sent.iter().filter(|(_, a)| a.is_ok()).count();
        let unanswered: Vec<&pb::ReceiveStockRequest> = sent
            .iter()
            .filter(|(_, a)| a.is_err())
            .map(|(r, _)| r)
            .collect();
        assert!(
            acknowledged > 0 && !unanswered.is_empty(),
            "the load ran on both sides of the fault: {acknowledged} answered, {} not",
            unanswered.len()
        );
        for (_, answer) in &sent {
            if let Err(status) = answer {
                assert_eq!(
                    status.code(),
                    Code::Unavailable,
                    "a caller is told to retry: {status:?}"
                );
            }
        }
        // What got no answer may or may not have been applied: the same request again
        // settles it, once. What was acknowledged is not sent again: it must be there.
        for request in unanswered {
            client
                .clone()
                .receive_stock(request.clone())
                .await
                .expect("a retry once the database is back");
        }
        i64::try_from(sent.len()).expect("count")
    }
}
