//! Reorder policies and the scan, with their inputs gathered: demand history and positions
//! from stock's feed, lead times from the offers and from POs received, the product's
//! defaults from stock. The math is `domain::policy`; this module only fetches and stores.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use inventory_core::ServiceError;
use inventory_proto::stock::v1 as stock;
use inventory_runtime::{Tx, db_error};
use inventory_stock_client::{FeedHandler, StockClient};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::policy::{self, Computed, Defaults, Economics, LeadTime, Method};
use crate::store::planning::Replace;
use crate::store::{self, planning};

/// The name of the feed cursor of demand and positions.
pub const FEED: &str = "replenishment-demand";
/// Days of history a policy is computed from.
const HISTORY_DAYS: i64 = 365;
/// Pairs given a policy per round.
const ROUND: i64 = 500;

/// Derives stock positions and daily demand from stock's log (see `store::planning`).
pub struct DemandFeed;

#[tonic::async_trait]
impl FeedHandler for DemandFeed {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[stock::InventoryTransaction],
    ) -> Result<(), ServiceError> {
        planning::apply_feed(tx, events).await
    }
}

/// What computed policies assume unless told otherwise.
#[derive(Debug, Clone, Copy)]
pub struct PolicyDefaults {
    pub service_level: f64,
    pub ordering_cost_micros: i64,
    pub holding_rate: f64,
}

#[derive(Clone)]
pub struct Planner {
    pool: PgPool,
    stock: Arc<dyn StockClient>,
    pub defaults: PolicyDefaults,
}

impl Planner {
    pub fn new(pool: PgPool, stock: Arc<dyn StockClient>, defaults: PolicyDefaults) -> Self {
        Self {
            pool,
            stock,
            defaults,
        }
    }

    /// The policy of (`product_id`, `warehouse_id`) at `service_level`, from a year of its
    /// history at most; `product` is stock's record of `product_id`.
    pub async fn compute(
        &self,
        product_id: Uuid,
        product: &stock::Product,
        warehouse_id: Uuid,
        service_level: f64,
    ) -> Result<Computed, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let offer = store::offer_for(&mut conn, product_id, None).await?;
        let offered_lead = match &offer {
            Some((o, _)) if o.lead_time_days > 0 => o.lead_time_days,
            Some((_, s)) => s.default_lead_time_days,
            None => product.lead_time_days,
        };
        let observed = planning::observed_lead_times(&mut conn, product_id, warehouse_id).await?;
        let lead_time =
            LeadTime::observed(&observed, u32::try_from(offered_lead.max(0)).unwrap_or(0));
        // Complete days only: yesterday back to a year ago, or to the first day with demand.
        let until = Utc::now().date_naive() - Duration::days(1);
        let daily = match planning::first_demand_day(&mut conn, product_id, warehouse_id).await? {
            Some(first) if first <= until => {
                let since = first.max(until - Duration::days(HISTORY_DAYS - 1));
                planning::daily_demand(&mut conn, product_id, warehouse_id, since, until).await?
            }
            _ => Vec::new(),
        };
        let (unit_cost, minimum, pack) = match &offer {
            Some((o, _)) => (
                o.unit_cost_micros,
                o.minimum_order_quantity,
                o.pack_multiple,
            ),
            None => (product.unit_cost_micros, 1, 1),
        };
        let economics = Economics {
            service_level,
            ordering_cost_micros: self.defaults.ordering_cost_micros,
            holding_rate: self.defaults.holding_rate,
            unit_cost_micros: unit_cost,
            minimum_order: minimum,
            pack_multiple: pack,
        };
        let defaults = Defaults {
            reorder_point: product.reorder_point.max(0),
            reorder_quantity: product.reorder_quantity.max(1),
        };
        Ok(policy::compute(&daily, &lead_time, &economics, defaults))
    }

    /// Gives every pair the feed has seen without a policy a computed one at the default
    /// service level. Returns how many. A pair that cannot be given one (its product gone
    /// from stock, say) is logged and left for the next scan; stock being unreachable ends
    /// the round.
    pub async fn ensure_policies(&self) -> Result<usize, ServiceError> {
        let mut products: HashMap<Uuid, stock::Product> = HashMap::new();
        let mut made = 0;
        let mut after = None;
        loop {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let pairs = planning::pairs_without_policy(&mut conn, after, ROUND).await?;
            drop(conn);
            let Some(last) = pairs.last() else {
                return Ok(made);
            };
            after = Some(*last);
            for (product_id, warehouse_id) in pairs {
                let outcome = async {
                    let product = match products.get(&product_id) {
                        Some(p) => p.clone(),
                        None => {
                            let p = self.stock.get_product(product_id.to_string()).await?;
                            products.insert(product_id, p.clone());
                            p
                        }
                    };
                    let level = self.defaults.service_level;
                    self.refresh(
                        &product,
                        warehouse_id,
                        level,
                        "reorder-scan",
                        Replace::IfAbsent,
                    )
                    .await
                }
                .await;
                match outcome {
                    Ok(_) => made += 1,
                    Err(error) => skip_or_stop(error, product_id, warehouse_id)?,
                }
            }
        }
    }

    /// Recomputes every computed policy from the history as it stands (daily); failures are
    /// handled as in [`Planner::ensure_policies`].
    pub async fn recompute_all(&self) -> Result<usize, ServiceError> {
        let mut after = None;
        let mut done = 0;
        loop {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let batch = planning::computed_policies(&mut conn, after, ROUND).await?;
            drop(conn);
            let Some(last) = batch.last() else {
                return Ok(done);
            };
            after = Some((last.0, last.1));
            for (product_id, warehouse_id, level) in batch {
                let outcome = async {
                    let product = self.stock.get_product(product_id.to_string()).await?;
                    self.refresh(
                        &product,
                        warehouse_id,
                        level,
                        "daily-recompute",
                        Replace::IfComputed,
                    )
                    .await
                }
                .await;
                match outcome {
                    Ok(_) => done += 1,
                    Err(error) => skip_or_stop(error, product_id, warehouse_id)?,
                }
            }
        }
    }

    /// Computes the pair's policy and stores it as `replace` allows.
    async fn refresh(
        &self,
        product: &stock::Product,
        warehouse_id: Uuid,
        service_level: f64,
        by: &str,
        replace: Replace,
    ) -> Result<planning::Policy, ServiceError> {
        let product_id = Uuid::parse_str(&product.product_id)
            .map_err(|_| ServiceError::Internal("stock answered a product without an id".into()))?;
        let computed = self
            .compute(product_id, product, warehouse_id, service_level)
            .await?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        planning::upsert_policy(
            &mut conn,
            &computed_row(product_id, warehouse_id, service_level, &computed, by),
            replace,
        )
        .await
    }

    /// Policies for new pairs, then the scan: drafts (or, dry, plans) a PO for every pair
    /// below its point without an open PO.
    pub async fn scan(
        &self,
        dry_run: bool,
        auto_approve_below_micros: i64,
    ) -> Result<Vec<planning::Decision>, ServiceError> {
        if dry_run {
            // Read-only: pairs without a policy yet are left out (a real scan gives them one
            // first).
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            return planning::plan_scan(&mut conn).await;
        }
        self.ensure_policies().await?;
        let mut tx = inventory_runtime::begin(&self.pool).await?;
        let decisions = planning::run_scan(&mut tx, auto_approve_below_micros, Utc::now()).await?;
        inventory_runtime::commit(tx).await?;
        Ok(decisions)
    }
}

/// A failed pair: the round goes on without it, unless stock or the database is down.
fn skip_or_stop(
    error: ServiceError,
    product_id: Uuid,
    warehouse_id: Uuid,
) -> Result<(), ServiceError> {
    if matches!(error, ServiceError::Unavailable(_)) {
        return Err(error);
    }
    tracing::warn!(%product_id, %warehouse_id, %error, "no policy computed for this pair; next round");
    Ok(())
}

/// A purchasing team's (reorder point, reorder quantity) as stored: no numbers behind them.
pub fn fixed_row(
    product_id: Uuid,
    warehouse_id: Uuid,
    (reorder_point, reorder_quantity): (i64, i64),
    service_level: f64,
    by: &str,
) -> planning::Policy {
    planning::Policy {
        product_id,
        warehouse_id,
        source: "FIXED".to_owned(),
        reorder_point,
        reorder_quantity,
        service_level,
        method: String::new(),
        average_daily_demand: 0.0,
        demand_std_dev: 0.0,
        history_days: 0,
        lead_time_days: 0.0,
        lead_time_std_dev: 0.0,
        safety_stock: 0,
        eoq: 0.0,
        textbook_reorder_point: 0,
        computed_time: None,
        updated_by: by.to_owned(),
        update_time: Utc::now(),
    }
}

/// A computed policy as stored.
pub fn computed_row(
    product_id: Uuid,
    warehouse_id: Uuid,
    service_level: f64,
    c: &Computed,
    by: &str,
) -> planning::Policy {
    let now = Utc::now();
    planning::Policy {
        product_id,
        warehouse_id,
        source: "COMPUTED".to_owned(),
        reorder_point: c.reorder_point,
        reorder_quantity: c.reorder_quantity.max(1),
        service_level,
        method: match c.method {
            Method::Bootstrap => "BOOTSTRAP",
            Method::ProductDefaults => "PRODUCT_DEFAULTS",
        }
        .to_owned(),
        average_daily_demand: c.demand.mean,
        demand_std_dev: c.demand.std_dev,
        history_days: i32::try_from(c.demand.days).unwrap_or(i32::MAX),
        lead_time_days: c.lead_time_days,
        lead_time_std_dev: c.lead_time_std_dev,
        safety_stock: c.safety_stock,
        eoq: c.eoq,
        textbook_reorder_point: c.textbook_reorder_point,
        computed_time: Some(now),
        updated_by: by.to_owned(),
        update_time: now,
    }
}
