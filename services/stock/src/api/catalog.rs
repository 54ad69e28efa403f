//! Products and warehouses: create, get, list, update (field mask).

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_core::validate::uuid_field;
use inventory_proto::stock::v1 as pb;
use inventory_runtime::RequestKey;
use uuid::Uuid;

use super::{StockApi, convert, parse};
use crate::domain::catalog::{Product, Warehouse};

impl StockApi {
    pub(super) async fn create_product(
        &self,
        req: pb::CreateProductRequest,
    ) -> Result<pb::CreateProductResponse, ServiceError> {
        let (request_id, new) = parse::create_product(&req)?;
        let key = RequestKey::new("CreateProduct", &request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let now = now();
            let product = Product {
                product_id: new.product_id,
                sku: new.sku,
                name: new.name,
                category: new.category,
                unit_of_measure: new.unit_of_measure,
                reorder_point: new.reorder_point,
                reorder_quantity: new.reorder_quantity,
                lead_time_days: new.lead_time_days,
                unit_cost_micros: new.unit_cost_micros,
                create_time: now,
                update_time: now,
            };
            let product = self.store.insert_product(&mut tx, &product).await?;
            Ok((
                tx,
                pb::CreateProductResponse {
                    product: Some(convert::product(product)),
                },
            ))
        })
        .await
    }

    pub(super) async fn get_product(
        &self,
        req: pb::GetProductRequest,
    ) -> Result<pb::GetProductResponse, ServiceError> {
        let product_id = uuid_field("product_id", &req.product_id)?;
        let product = self.store.get_product(product_id).await?;
        Ok(pb::GetProductResponse {
            product: Some(convert::product(product)),
        })
    }

    pub(super) async fn batch_get_products(
        &self,
        req: pb::BatchGetProductsRequest,
    ) -> Result<pb::BatchGetProductsResponse, ServiceError> {
        let ids = parse::product_ids(&req.product_ids)?;
        let mut found: std::collections::HashMap<Uuid, Product> = self
            .store
            .get_products(&ids)
            .await?
            .into_iter()
            .map(|p| (p.product_id, p))
            .collect();
        let mut products = Vec::with_capacity(ids.len());
        for id in ids {
            let product = found
                .remove(&id)
                .ok_or_else(|| ServiceError::not_found("product", id))?;
            products.push(convert::product(product));
        }
        Ok(pb::BatchGetProductsResponse { products })
    }

    pub(super) async fn list_products(
        &self,
        req: pb::ListProductsRequest,
    ) -> Result<pb::ListProductsResponse, ServiceError> {
        let mut v = inventory_core::Violations::new();
        v.optional_text("category", &req.category);
        v.finish()?;
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!("category={}", req.category),
        )?;
        let after = page.after.as_deref().map(parse::token_uuid).transpose()?;
        let category = (!req.category.is_empty()).then_some(req.category.as_str());
        let products = self
            .store
            .list_products(after, category, page.fetch_limit())
            .await?;
        let (products, next) = self
            .pages
            .page(products, &page, |p| p.product_id.to_string());
        Ok(pb::ListProductsResponse {
            products: products.into_iter().map(convert::product).collect(),
            next_page_token: next,
        })
    }

    pub(super) async fn update_product(
        &self,
        req: pb::UpdateProductRequest,
    ) -> Result<pb::UpdateProductResponse, ServiceError> {
        let (request_id, product_id, patch) = parse::update_product(&req)?;
        let key = RequestKey::new("UpdateProduct", &request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let product = self
                .store
                .update_product(&mut tx, product_id, &patch)
                .await?;
            Ok((
                tx,
                pb::UpdateProductResponse {
                    product: Some(convert::product(product)),
                },
            ))
        })
        .await
    }

    pub(super) async fn create_warehouse(
        &self,
        req: pb::CreateWarehouseRequest,
    ) -> Result<pb::CreateWarehouseResponse, ServiceError> {
        let (request_id, new) = parse::create_warehouse(&req)?;
        let key = RequestKey::new("CreateWarehouse", &request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let now = now();
            let warehouse = Warehouse {
                warehouse_id: new.warehouse_id,
                name: new.name,
                address: new.address,
                warehouse_type: new.warehouse_type,
                latitude: new.location.0,
                longitude: new.location.1,
                create_time: now,
                update_time: now,
            };
            let warehouse = self.store.insert_warehouse(&mut tx, &warehouse).await?;
            Ok((
                tx,
                pb::CreateWarehouseResponse {
                    warehouse: Some(convert::warehouse(warehouse)),
                },
            ))
        })
        .await
    }

    pub(super) async fn get_warehouse(
        &self,
        req: pb::GetWarehouseRequest,
    ) -> Result<pb::GetWarehouseResponse, ServiceError> {
        let warehouse_id = uuid_field("warehouse_id", &req.warehouse_id)?;
        let warehouse = self.store.get_warehouse(warehouse_id).await?;
        Ok(pb::GetWarehouseResponse {
            warehouse: Some(convert::warehouse(warehouse)),
        })
    }

    pub(super) async fn list_warehouses(
        &self,
        req: pb::ListWarehousesRequest,
    ) -> Result<pb::ListWarehousesResponse, ServiceError> {
        let page = self.pages.request(req.page_size, &req.page_token, "")?;
        let after = page.after.as_deref().map(parse::token_uuid).transpose()?;
        let warehouses = self
            .store
            .list_warehouses(after, page.fetch_limit())
            .await?;
        let (warehouses, next) = self
            .pages
            .page(warehouses, &page, |w| w.warehouse_id.to_string());
        Ok(pb::ListWarehousesResponse {
            warehouses: warehouses.into_iter().map(convert::warehouse).collect(),
            next_page_token: next,
        })
    }

    pub(super) async fn update_warehouse(
        &self,
        req: pb::UpdateWarehouseRequest,
    ) -> Result<pb::UpdateWarehouseResponse, ServiceError> {
        let (request_id, warehouse_id, patch) = parse::update_warehouse(&req)?;
        let key = RequestKey::new("UpdateWarehouse", &request_id, &req);
        self.idempotent(&key, |mut tx| async move {
            let warehouse = self
                .store
                .update_warehouse(&mut tx, warehouse_id, &patch)
                .await?;
            Ok((
                tx,
                pb::UpdateWarehouseResponse {
                    warehouse: Some(convert::warehouse(warehouse)),
                },
            ))
        })
        .await
    }
}
