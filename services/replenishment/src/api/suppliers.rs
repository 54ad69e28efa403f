//! Suppliers and what they offer.

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_core::validate::uuid_field;
use inventory_proto::replenishment::v1 as pb;
use inventory_runtime::{RequestKey, db_error, idempotency};
use uuid::Uuid;

use super::{ReplenishmentApi, convert, parse};
use crate::store;

impl ReplenishmentApi {
    pub(super) async fn create_supplier(
        &self,
        req: pb::CreateSupplierRequest,
    ) -> Result<pb::CreateSupplierResponse, ServiceError> {
        let cmd = parse::create_supplier(&req)?;
        let key = RequestKey::new("CreateSupplier", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let supplier = store::insert_supplier(
                &mut tx,
                &store::Supplier {
                    supplier_id: Uuid::now_v7(),
                    name: cmd.name,
                    channel: cmd.channel.to_owned(),
                    edi_qualifier: cmd.edi_qualifier,
                    edi_id: cmd.edi_id,
                    api_endpoint: cmd.api_endpoint,
                    default_lead_time_days: cmd.default_lead_time_days,
                    create_time: now(),
                },
            )
            .await?;
            let response = pb::CreateSupplierResponse {
                supplier: Some(convert::supplier(&supplier)),
            };
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn get_supplier(
        &self,
        req: pb::GetSupplierRequest,
    ) -> Result<pb::GetSupplierResponse, ServiceError> {
        let id = uuid_field("supplier_id", &req.supplier_id)?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let supplier = store::supplier(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("supplier", id))?;
        Ok(pb::GetSupplierResponse {
            supplier: Some(convert::supplier(&supplier)),
        })
    }

    pub(super) async fn list_suppliers(
        &self,
        req: pb::ListSuppliersRequest,
    ) -> Result<pb::ListSuppliersResponse, ServiceError> {
        let page = self.pages.request(req.page_size, &req.page_token, "")?;
        let after = page.after.as_deref().and_then(|a| Uuid::parse_str(a).ok());
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let rows = store::list_suppliers(&mut conn, after, page.fetch_limit()).await?;
        let (rows, next_page_token) = self.pages.page(rows, &page, |s| s.supplier_id.to_string());
        Ok(pb::ListSuppliersResponse {
            suppliers: rows.iter().map(convert::supplier).collect(),
            next_page_token,
        })
    }

    pub(super) async fn set_offer(
        &self,
        req: pb::SetSupplierOfferRequest,
    ) -> Result<pb::SetSupplierOfferResponse, ServiceError> {
        let cmd = parse::set_offer(&req)?;
        // The product must exist in stock (NOT_FOUND otherwise); asked before any write.
        self.stock.get_product(cmd.product_id.to_string()).await?;
        let key = RequestKey::new("SetSupplierOffer", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let offer = store::upsert_offer(
                &mut tx,
                &store::Offer {
                    supplier_id: cmd.supplier_id,
                    product_id: cmd.product_id,
                    unit_cost_micros: cmd.unit_cost_micros,
                    minimum_order_quantity: cmd.minimum_order_quantity,
                    pack_multiple: cmd.pack_multiple,
                    lead_time_days: cmd.lead_time_days,
                    supplier_part_number: cmd.supplier_part_number,
                    update_time: now(),
                },
            )
            .await?;
            let response = pb::SetSupplierOfferResponse {
                offer: Some(convert::offer(&offer)),
            };
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn list_offers(
        &self,
        req: pb::ListSupplierOffersRequest,
    ) -> Result<pb::ListSupplierOffersResponse, ServiceError> {
        let (product, supplier) = parse::list_offers(&req)?;
        let filters = format!("{}|{}", req.product_id, req.supplier_id);
        let page = self
            .pages
            .request(req.page_size, &req.page_token, filters)?;
        let after = page.after.as_deref().and_then(|a| {
            let (p, s) = a.split_once('/')?;
            Some((Uuid::parse_str(p).ok()?, Uuid::parse_str(s).ok()?))
        });
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let rows =
            store::list_offers(&mut conn, product, supplier, after, page.fetch_limit()).await?;
        let (rows, next_page_token) = self.pages.page(rows, &page, |o| {
            format!("{}/{}", o.product_id, o.supplier_id)
        });
        Ok(pb::ListSupplierOffersResponse {
            offers: rows.iter().map(convert::offer).collect(),
            next_page_token,
        })
    }
}
