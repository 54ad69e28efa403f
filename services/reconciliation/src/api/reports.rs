//! Shrinkage, counting accuracy and adjustment figures, and the cycle-count schedule.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, Utc};
use inventory_core::ServiceError;
use inventory_core::validate::{Violations, optional_uuid_field};
use inventory_proto::reconciliation::v1 as pb;
use inventory_runtime::db_error;
use uuid::Uuid;

use super::{ReconciliationApi, parse};
use crate::counting::saturate;
use crate::domain::abc::Class;
use crate::domain::kpi::{self, Period};
use crate::domain::schedule::{self, Item};
use crate::store;

/// A warehouse and a location label in it.
type LocationKey = (Uuid, String);

const SHRINKAGE_NOTE: &str = "Shrinkage = net units lost by adjustment (every ADJUST in \
    stock, from counts or not) / units shipped, over the whole UTC days the period touches; \
    values at each product's current unit cost. Retail typically loses 1 to 2% of sales.";

impl ReconciliationApi {
    pub(super) async fn shrinkage(
        &self,
        req: pb::GetShrinkageReportRequest,
    ) -> Result<pb::GetShrinkageReportResponse, ServiceError> {
        let (start, end) = parse::period(req.start_time.as_ref(), req.end_time.as_ref())?;
        let warehouse = optional_uuid_field("warehouse_id", &req.warehouse_id)?;
        let last_day = (end - Duration::microseconds(1)).date_naive();
        let rows = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            store::movement_between(&mut conn, start.date_naive(), last_day, warehouse).await?
        };
        let mut products: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
        products.sort_unstable();
        products.dedup();
        let costs = self.counting.costs(&products).await?;
        let mut by_warehouse: BTreeMap<Uuid, Period> = BTreeMap::new();
        for (w, p, shipped, adjusted) in rows {
            let cost = i128::from(costs.get(&p).copied().unwrap_or(0));
            by_warehouse.entry(w).or_default().add(&Period {
                shipped_units: shipped,
                shipped_value_micros: i128::from(shipped) * cost,
                adjusted_units: adjusted,
                adjusted_value_micros: i128::from(adjusted) * cost,
            });
        }
        let mut overall = Period::default();
        let warehouses = by_warehouse
            .iter()
            .map(|(w, period)| {
                overall.add(period);
                shrinkage(Some(*w), period)
            })
            .collect();
        Ok(pb::GetShrinkageReportResponse {
            warehouses,
            overall: Some(shrinkage(None, &overall)),
            note: SHRINKAGE_NOTE.into(),
        })
    }

    pub(super) async fn counting_report(
        &self,
        req: pb::GetCountingReportRequest,
    ) -> Result<pb::GetCountingReportResponse, ServiceError> {
        let (start, end) = parse::period(req.start_time.as_ref(), req.end_time.as_ref())?;
        let warehouse = optional_uuid_field("warehouse_id", &req.warehouse_id)?;
        let lines = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            store::evaluated_lines(&mut conn, start, end, warehouse).await?
        };
        let outcome = |l: &store::Line| kpi::Line {
            class: match l.abc_class.as_deref() {
                Some("A") => Class::A,
                Some("B") => Class::B,
                _ => Class::C,
            },
            exact: l.variance == Some(0),
            within_tolerance: l.exceeded.is_empty(),
        };
        // Adjusted units per line: what was applied in stock, 0 for the rest.
        let adjusted: Vec<(LocationKey, i64)> = lines
            .iter()
            .map(|l| {
                let units = if l.status == "APPLIED" {
                    l.variance.unwrap_or(0)
                } else {
                    0
                };
                ((l.warehouse_id, l.location.clone()), units)
            })
            .collect();
        let mut outcomes_at: BTreeMap<LocationKey, Vec<kpi::Line>> = BTreeMap::new();
        for l in &lines {
            outcomes_at
                .entry((l.warehouse_id, l.location.clone()))
                .or_default()
                .push(outcome(l));
        }
        let locations = kpi::adjustments(&adjusted)
            .into_iter()
            .map(|((w, location), a)| {
                let accuracy = outcomes_at
                    .get(&(w, location.clone()))
                    .and_then(|o| kpi::accuracy(o).remove(&None))
                    .unwrap_or_default();
                pb::LocationFigures {
                    warehouse_id: w.to_string(),
                    location,
                    counted_lines: a.counted_lines as i64,
                    adjusted_lines: a.adjusted_lines as i64,
                    adjustment_frequency: a.frequency,
                    net_units: a.net_units,
                    absolute_units: a.absolute_units,
                    exact_accuracy: accuracy.exact,
                    within_tolerance_accuracy: accuracy.within_tolerance,
                }
            })
            .collect();
        let outcomes: Vec<kpi::Line> = lines.iter().map(outcome).collect();
        let classes = kpi::accuracy(&outcomes)
            .into_iter()
            .map(|(class, a)| pb::ClassAccuracy {
                abc_class: class.map_or("ALL", Class::as_str).to_owned(),
                counted_lines: a.lines as i64,
                exact_accuracy: a.exact,
                within_tolerance_accuracy: a.within_tolerance,
            })
            .collect();
        Ok(pb::GetCountingReportResponse { locations, classes })
    }

    pub(super) async fn counts_due(
        &self,
        req: pb::ListCountsDueRequest,
    ) -> Result<pb::ListCountsDueResponse, ServiceError> {
        let mut v = Violations::new();
        let limit = match req.page_size {
            0 => Some(100),
            n => v.in_range("page_size", n, 1, 1000),
        };
        let warehouse = v.optional_uuid("warehouse_id", &req.warehouse_id);
        v.finish()?;
        let today = Utc::now().date_naive();
        let pairs = {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            store::stocked_pairs(
                &mut conn,
                warehouse.flatten(),
                Utc::now() - Duration::days(365),
            )
            .await?
        };
        let classes: HashMap<Uuid, Class> = self.counting.classes().await?;
        let items: Vec<Item<usize>> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| Item {
                key: i,
                class: classes.get(&p.product_id).copied().unwrap_or(Class::C),
                last_counted: p.last_counted.map(|t| t.date_naive()),
                location_variance: p.location_variance.unwrap_or(0.0),
            })
            .collect();
        let due = schedule::schedule(&items, today)
            .into_iter()
            .take(usize::try_from(limit.unwrap_or(100)).unwrap_or(100))
            .map(|d| {
                let pair = &pairs[d.key];
                pb::CountDue {
                    product_id: pair.product_id.to_string(),
                    warehouse_id: pair.warehouse_id.to_string(),
                    location: pair.location.clone().unwrap_or_default(),
                    abc_class: items[d.key].class.as_str().to_owned(),
                    counts_per_year: i32::try_from(d.counts_per_year).unwrap_or(i32::MAX),
                    due_date: d.due.to_string(),
                    last_counted_date: items[d.key]
                        .last_counted
                        .map(|day| day.to_string())
                        .unwrap_or_default(),
                    reason: d.reason,
                }
            })
            .collect();
        Ok(pb::ListCountsDueResponse { due })
    }
}

fn shrinkage(warehouse: Option<Uuid>, period: &Period) -> pb::Shrinkage {
    let s = kpi::shrinkage(period);
    pb::Shrinkage {
        warehouse_id: warehouse.map(|w| w.to_string()).unwrap_or_default(),
        shipped_units: period.shipped_units,
        shipped_value_micros: saturate(period.shipped_value_micros),
        adjusted_units: period.adjusted_units,
        lost_units: s.lost_units,
        lost_value_micros: saturate(s.lost_value_micros),
        rate_percent: s.rate.map(|r| r * 100.0),
        value_rate_percent: s.value_rate.map(|r| r * 100.0),
    }
}
