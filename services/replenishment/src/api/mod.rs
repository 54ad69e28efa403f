//! The gRPC layer: `suppliers` (suppliers and their offers), `orders` (purchase orders from
//! creation to receipt) and `policies` (reorder policies and the scan). Requests become commands in `parse`, rows become messages in
//! `convert`; every mutation runs once per request id (a receipt once per receipt id).

mod convert;
mod orders;
mod parse;
mod policies;
mod suppliers;

use std::sync::Arc;

use inventory_core::PageTokens;
use inventory_core::error::reply;
use inventory_proto::replenishment::v1 as pb;
use inventory_runtime::auth::with_verified_actor;
use inventory_stock_client::StockClient;
use pb::replenishment_service_server::ReplenishmentService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::outbox::Outbox;
use crate::planning::Planner;

/// The ErrorInfo domain of this service's refusals.
pub const DOMAIN: &str = "replenishment";

/// What purchasing decided for this deployment.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A PO whose total is under this is approved without a person.
    pub auto_approve_below_micros: i64,
    /// How far past the ordered quantity receipts may go, in percent.
    pub receipt_tolerance_percent: u32,
}

#[derive(Clone)]
pub struct ReplenishmentApi {
    pool: PgPool,
    pages: PageTokens,
    stock: Arc<dyn StockClient>,
    outbox: Outbox,
    planner: Planner,
    rules: Rules,
}

impl ReplenishmentApi {
    pub fn new(
        pool: PgPool,
        pages: PageTokens,
        stock: Arc<dyn StockClient>,
        outbox: Outbox,
        planner: Planner,
        rules: Rules,
    ) -> Self {
        Self {
            pool,
            pages,
            stock,
            outbox,
            planner,
            rules,
        }
    }
}

/// Forwards each RPC to its handler; no handler bodies here.
#[tonic::async_trait]
impl ReplenishmentService for ReplenishmentApi {
    async fn create_supplier(
        &self,
        r: Request<pb::CreateSupplierRequest>,
    ) -> Result<Response<pb::CreateSupplierResponse>, Status> {
        reply(self.create_supplier(r.into_inner()).await)
    }
    async fn get_supplier(
        &self,
        r: Request<pb::GetSupplierRequest>,
    ) -> Result<Response<pb::GetSupplierResponse>, Status> {
        reply(self.get_supplier(r.into_inner()).await)
    }
    async fn list_suppliers(
        &self,
        r: Request<pb::ListSuppliersRequest>,
    ) -> Result<Response<pb::ListSuppliersResponse>, Status> {
        reply(self.list_suppliers(r.into_inner()).await)
    }
    async fn set_supplier_offer(
        &self,
        r: Request<pb::SetSupplierOfferRequest>,
    ) -> Result<Response<pb::SetSupplierOfferResponse>, Status> {
        reply(self.set_offer(r.into_inner()).await)
    }
    async fn list_supplier_offers(
        &self,
        r: Request<pb::ListSupplierOffersRequest>,
    ) -> Result<Response<pb::ListSupplierOffersResponse>, Status> {
        reply(self.list_offers(r.into_inner()).await)
    }
    async fn create_purchase_order(
        &self,
        r: Request<pb::CreatePurchaseOrderRequest>,
    ) -> Result<Response<pb::CreatePurchaseOrderResponse>, Status> {
        reply(
            self.create_po(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn get_purchase_order(
        &self,
        r: Request<pb::GetPurchaseOrderRequest>,
    ) -> Result<Response<pb::GetPurchaseOrderResponse>, Status> {
        reply(self.get_po(r.into_inner()).await)
    }
    async fn list_purchase_orders(
        &self,
        r: Request<pb::ListPurchaseOrdersRequest>,
    ) -> Result<Response<pb::ListPurchaseOrdersResponse>, Status> {
        reply(self.list_pos(r.into_inner()).await)
    }
    async fn approve_purchase_order(
        &self,
        r: Request<pb::ApprovePurchaseOrderRequest>,
    ) -> Result<Response<pb::ApprovePurchaseOrderResponse>, Status> {
        reply(
            self.approve(with_verified_actor(r, |m| &mut m.approver)?)
                .await,
        )
    }
    async fn reject_purchase_order(
        &self,
        r: Request<pb::RejectPurchaseOrderRequest>,
    ) -> Result<Response<pb::RejectPurchaseOrderResponse>, Status> {
        reply(
            self.reject(with_verified_actor(r, |m| &mut m.approver)?)
                .await,
        )
    }
    async fn cancel_purchase_order(
        &self,
        r: Request<pb::CancelPurchaseOrderRequest>,
    ) -> Result<Response<pb::CancelPurchaseOrderResponse>, Status> {
        reply(self.cancel(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn receive_purchase_order(
        &self,
        r: Request<pb::ReceivePurchaseOrderRequest>,
    ) -> Result<Response<pb::ReceivePurchaseOrderResponse>, Status> {
        reply(
            self.receive(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn set_reorder_policy(
        &self,
        r: Request<pb::SetReorderPolicyRequest>,
    ) -> Result<Response<pb::SetReorderPolicyResponse>, Status> {
        reply(
            self.set_policy(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn get_reorder_policy(
        &self,
        r: Request<pb::GetReorderPolicyRequest>,
    ) -> Result<Response<pb::GetReorderPolicyResponse>, Status> {
        reply(self.get_policy(r.into_inner()).await)
    }
    async fn run_reorder_scan(
        &self,
        r: Request<pb::RunReorderScanRequest>,
    ) -> Result<Response<pb::RunReorderScanResponse>, Status> {
        reply(self.run_scan(r.into_inner()).await)
    }
}
