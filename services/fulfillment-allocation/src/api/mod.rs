//! The gRPC layer: `allocate` (plan, reserve in stock, record), `lifecycle` (get, list,
//! cancel, ship), `profiles` (warehouse operating profiles). Requests become commands in
//! `parse`, stored values become messages in `convert`; every mutation runs once per
//! request id; status codes are decided once, by `ServiceError`.

mod allocate;
mod batch;

pub use batch::Batches;
mod convert;
mod lifecycle;
mod parse;
mod profiles;

use std::collections::HashMap;
use std::sync::Arc;

use inventory_core::PageTokens;
use inventory_core::error::reply;
use inventory_proto::allocation::v1 as pb;
use inventory_runtime::auth::with_verified_actor;
use inventory_stock_client::StockClient;
use pb::allocation_service_server::AllocationService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::directory::Directory;
use crate::domain::planner::CostModel;

/// The ErrorInfo domain of this service's refusals.
pub const DOMAIN: &str = "allocation";

/// The request id allocation sends stock for `purpose` ("reserve:<uuid>", "release",
/// "ship:0") within the caller's request `request_id`: `<request_id>:<purpose>`, as it has
/// always been, when that fits stock's 128 characters (so a retry that crosses an upgrade
/// sends stock the id it sent before, and nothing is shipped twice); else the purpose and a
/// digest of the caller's id, at most 77 characters, so every id allocation accepts (up to
/// the 128 characters both services take) reaches stock. The same for every retry.
pub fn stock_request_id(request_id: &str, purpose: &str) -> String {
    use sha2::Digest;
    let plain = format!("{request_id}:{purpose}");
    if plain.chars().count() <= inventory_core::validate::MAX_KEY_LEN {
        return plain;
    }
    let digest = sha2::Sha256::digest(request_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{purpose}:{hex}")
}

#[derive(Clone)]
pub struct AllocationApi {
    pool: PgPool,
    pages: PageTokens,
    stock: Arc<dyn StockClient>,
    /// Stock's warehouses, cached.
    directory: Directory,
    /// Plans tried when stock or capacity moves between planning and reserving.
    replans: usize,
    costs: CostModel,
    /// Gathers concurrent AllocateOrder calls into shared transactions; None: each alone.
    batcher: Option<batch::Batcher>,
}

impl AllocationApi {
    pub fn new(
        pool: PgPool,
        pages: PageTokens,
        stock: Arc<dyn StockClient>,
        directory: Directory,
        replans: usize,
    ) -> Self {
        Self {
            pool,
            pages,
            stock,
            directory,
            replans: replans.max(1),
            costs: CostModel::default(),
            batcher: None,
        }
    }

    /// Gathers concurrent AllocateOrder calls into batches, each planned, reserved and
    /// recorded in one transaction.
    pub fn with_batches(self, batches: Batches) -> Self {
        let batcher = batch::Batcher::start(self.clone(), batches);
        Self {
            batcher: Some(batcher),
            ..self
        }
    }

    /// Warehouse names by id, for answers, from the listing already held: answering never
    /// waits for stock (an empty name when none was listed yet).
    async fn names(&self) -> HashMap<Uuid, String> {
        let Some(warehouses) = self.directory.cached().await else {
            return HashMap::new();
        };
        warehouses
            .iter()
            .filter_map(|w| {
                Uuid::parse_str(&w.warehouse_id)
                    .ok()
                    .map(|id| (id, w.name.clone()))
            })
            .collect()
    }
}

/// Forwards each RPC to its handler; no handler bodies here.
#[tonic::async_trait]
impl AllocationService for AllocationApi {
    async fn allocate_order(
        &self,
        r: Request<pb::AllocateOrderRequest>,
    ) -> Result<Response<pb::AllocateOrderResponse>, Status> {
        reply(
            self.allocate(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn get_allocation(
        &self,
        r: Request<pb::GetAllocationRequest>,
    ) -> Result<Response<pb::GetAllocationResponse>, Status> {
        reply(self.get(r.into_inner()).await)
    }
    async fn list_allocations(
        &self,
        r: Request<pb::ListAllocationsRequest>,
    ) -> Result<Response<pb::ListAllocationsResponse>, Status> {
        reply(self.list(r.into_inner()).await)
    }
    async fn cancel_allocation(
        &self,
        r: Request<pb::CancelAllocationRequest>,
    ) -> Result<Response<pb::CancelAllocationResponse>, Status> {
        reply(self.cancel(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn confirm_shipment(
        &self,
        r: Request<pb::ConfirmShipmentRequest>,
    ) -> Result<Response<pb::ConfirmShipmentResponse>, Status> {
        reply(self.ship(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn set_warehouse_profile(
        &self,
        r: Request<pb::SetWarehouseProfileRequest>,
    ) -> Result<Response<pb::SetWarehouseProfileResponse>, Status> {
        reply(self.set_profile(r.into_inner()).await)
    }
    async fn list_warehouse_profiles(
        &self,
        _: Request<pb::ListWarehouseProfilesRequest>,
    ) -> Result<Response<pb::ListWarehouseProfilesResponse>, Status> {
        reply(self.list_profiles().await)
    }
}
