//! Warehouses as stock knows them (identity, name, coordinates), cached and refreshed: a
//! warehouse created in stock becomes usable here within one refresh, without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory_stock_client::{StockClient, StockError, pb};
use tokio::sync::Mutex;

/// A listing and when it was taken (None once marked stale).
type Listing = Option<(Option<Instant>, Arc<Vec<pb::Warehouse>>)>;

#[derive(Clone)]
pub struct Directory {
    stock: Arc<dyn StockClient>,
    /// How long a listing is trusted.
    refresh: Duration,
    cached: Arc<Mutex<Listing>>,
}

impl Directory {
    pub fn new(stock: Arc<dyn StockClient>, refresh: Duration) -> Self {
        Self {
            stock,
            refresh,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Every warehouse, at most `refresh` old. One caller refreshes; the others wait for it.
    /// When stock cannot be asked, a listing taken before is served (and the failure logged),
    /// and the next caller tries again.
    pub async fn warehouses(&self) -> Result<Arc<Vec<pb::Warehouse>>, StockError> {
        let mut cached = self.cached.lock().await;
        if let Some((Some(at), warehouses)) = cached.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(warehouses.clone());
        }
        match self.list_all().await {
            Ok(listing) => {
                let warehouses = Arc::new(listing);
                *cached = Some((Some(Instant::now()), warehouses.clone()));
                Ok(warehouses)
            }
            Err(error) => match cached.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(%error, "stock's warehouse list could not be refreshed; using the last one");
                    Ok(stale.clone())
                }
                None => Err(error),
            },
        }
    }

    /// The listing held now, without asking stock (for names in answers).
    pub async fn cached(&self) -> Option<Arc<Vec<pb::Warehouse>>> {
        self.cached.lock().await.as_ref().map(|(_, w)| w.clone())
    }

    /// Makes the listing stale, so the next read asks stock again (and falls back to it if
    /// stock cannot answer).
    pub async fn invalidate(&self) {
        if let Some((at, _)) = self.cached.lock().await.as_mut() {
            *at = None;
        }
    }

    async fn list_all(&self) -> Result<Vec<pb::Warehouse>, StockError> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .stock
                .list_warehouses(pb::ListWarehousesRequest {
                    page_size: 1000,
                    page_token,
                })
                .await?;
            all.extend(page.warehouses);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = page.next_page_token;
        }
    }
}
