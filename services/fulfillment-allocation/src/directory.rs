//! Warehouses as stock knows them (identity, name, coordinates), cached and refreshed: a
//! warehouse created in stock becomes usable here within one refresh, without a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory_stock_client::{StockClient, StockError, pb};
use tokio::sync::Mutex;

/// A listing and when it was taken.
type Listing = Option<(Instant, Arc<Vec<pb::Warehouse>>)>;

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
    pub async fn warehouses(&self) -> Result<Arc<Vec<pb::Warehouse>>, StockError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, warehouses)) = cached.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(warehouses.clone());
        }
        let warehouses = Arc::new(self.list_all().await?);
        *cached = Some((Instant::now(), warehouses.clone()));
        Ok(warehouses)
    }

    /// Forgets the listing, so the next read asks stock again.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
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
