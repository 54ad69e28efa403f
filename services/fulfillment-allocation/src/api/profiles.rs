//! Warehouse operating profiles: capacity (open order lines at once) and pause, kept here;
//! identity and coordinates come from stock.

use std::collections::HashMap;

use inventory_core::ServiceError;
use inventory_proto::allocation::v1 as pb;
use inventory_runtime::{RequestKey, idempotency};
use uuid::Uuid;

use super::{AllocationApi, convert, parse};
use crate::store;

impl AllocationApi {
    pub(super) async fn set_profile(
        &self,
        req: pb::SetWarehouseProfileRequest,
    ) -> Result<pb::SetWarehouseProfileResponse, ServiceError> {
        let cmd = parse::set_profile(&req)?;
        // The warehouse must exist in stock (NOT_FOUND otherwise); asked before any write.
        let warehouse = self
            .stock
            .get_warehouse(cmd.warehouse_id.to_string())
            .await?;
        self.directory.invalidate().await;
        let key = RequestKey::new("SetWarehouseProfile", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let profile =
                store::set_profile(&mut tx, cmd.warehouse_id, cmd.capacity_lines, cmd.paused)
                    .await?;
            let response = pb::SetWarehouseProfileResponse {
                profile: Some(convert::profile(&warehouse, Some(&profile))),
            };
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn list_profiles(
        &self,
    ) -> Result<pb::ListWarehouseProfilesResponse, ServiceError> {
        let warehouses = self.directory.warehouses().await?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(inventory_runtime::db_error)?;
        let mut profiles: HashMap<Uuid, store::Profile> = store::profiles(&mut conn)
            .await?
            .into_iter()
            .map(|p| (p.warehouse_id, p))
            .collect();
        // The current workload of every warehouse, capped or not.
        for (warehouse_id, open) in store::count_open_lines(&mut conn, None).await? {
            profiles
                .entry(warehouse_id)
                .or_insert(store::Profile {
                    warehouse_id,
                    capacity_lines: None,
                    open_lines: 0,
                    paused: false,
                })
                .open_lines = open;
        }
        Ok(pb::ListWarehouseProfilesResponse {
            profiles: warehouses
                .iter()
                .map(|w| {
                    let id = Uuid::parse_str(&w.warehouse_id).ok();
                    convert::profile(w, id.and_then(|id| profiles.get(&id)))
                })
                .collect(),
        })
    }
}
