//! A manager's decisions on variances outside tolerance.

use inventory_core::ServiceError;
use inventory_core::validate::optional_uuid_field;
use inventory_proto::reconciliation::v1 as pb;
use inventory_runtime::db_error;
use inventory_runtime::idempotency::{self, RequestKey};
use uuid::Uuid;

use super::parse::{self, Act};
use super::{DOMAIN, ReconciliationApi, convert, refused};
use crate::counting::{AUTO_APPROVER, Contention};
use crate::store::{self, Line};

impl ReconciliationApi {
    pub(super) async fn list_adjustments(
        &self,
        req: pb::ListAdjustmentsRequest,
    ) -> Result<pb::ListAdjustmentsResponse, ServiceError> {
        let status = parse::line_status(req.status)?;
        let warehouse = optional_uuid_field("warehouse_id", &req.warehouse_id)?;
        let task = optional_uuid_field("task_id", &req.task_id)?;
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!("{}|{}|{}", req.status, req.warehouse_id, req.task_id),
        )?;
        let before = page.after.as_deref().and_then(|a| a.parse::<Uuid>().ok());
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let lines = store::list_adjustments(
            &mut conn,
            status,
            warehouse,
            task,
            before,
            page.fetch_limit(),
        )
        .await?;
        let (lines, next_page_token) = self.pages.page(lines, &page, |l| l.line_id.to_string());
        Ok(pb::ListAdjustmentsResponse {
            adjustments: lines.iter().map(|l| convert::line(l, false)).collect(),
            next_page_token,
        })
    }

    pub(super) async fn approve(
        &self,
        req: pb::ApproveAdjustmentRequest,
    ) -> Result<pb::ApproveAdjustmentResponse, ServiceError> {
        let cmd = parse::act(
            &req.request_id,
            ("adjustment_id", &req.adjustment_id),
            ("manager", &req.manager),
            ("comment", &req.comment),
            false,
        )?;
        let key = RequestKey::new("ApproveAdjustment", &cmd.request_id, &req);
        let line_id = cmd.id;
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let line = store::lock_line(&mut tx, cmd.id).await?;
            let counted = store::counted_by(&mut tx, cmd.id, &cmd.actor).await?;
            decidable(&line, &cmd, counted, &["PENDING_APPROVAL"])?;
            store::decide_line(&mut tx, cmd.id, "APPROVED", &cmd.actor, &cmd.note).await?;
            Ok((tx, pb::ApproveAdjustmentResponse::default()))
        })
        .await?;
        // Applied now; if stock is unreachable it stays approved and is retried.
        if let Err(error) = self.counting.apply(line_id, Contention::Wait).await {
            tracing::warn!(%line_id, %error, "approved adjustment not applied yet");
        }
        Ok(pb::ApproveAdjustmentResponse {
            adjustment: Some(convert::line(&self.line(line_id).await?, false)),
        })
    }

    pub(super) async fn reject(
        &self,
        req: pb::RejectAdjustmentRequest,
    ) -> Result<pb::RejectAdjustmentResponse, ServiceError> {
        let cmd = parse::act(
            &req.request_id,
            ("adjustment_id", &req.adjustment_id),
            ("manager", &req.manager),
            ("comment", &req.comment),
            true,
        )?;
        let key = RequestKey::new("RejectAdjustment", &cmd.request_id, &req);
        let line_id = cmd.id;
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let line = store::lock_line(&mut tx, cmd.id).await?;
            let counted = store::counted_by(&mut tx, cmd.id, &cmd.actor).await?;
            decidable(&line, &cmd, counted, &["PENDING_APPROVAL", "BLOCKED"])?;
            store::decide_line(&mut tx, cmd.id, "REJECTED", &cmd.actor, &cmd.note).await?;
            Ok((tx, pb::RejectAdjustmentResponse::default()))
        })
        .await?;
        Ok(pb::RejectAdjustmentResponse {
            adjustment: Some(convert::line(&self.line(line_id).await?, false)),
        })
    }

    async fn line(&self, line_id: Uuid) -> Result<Line, ServiceError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        store::line(&mut conn, line_id).await
    }
}

/// A line a manager may decide: in one of `statuses`, and not counted by the same person
/// (whoever counted any of the shelf does not decide its variance: `counted`).
fn decidable(line: &Line, cmd: &Act, counted: bool, statuses: &[&str]) -> Result<(), ServiceError> {
    if cmd.actor == AUTO_APPROVER {
        return Err(ServiceError::invalid(
            "manager",
            format!("{AUTO_APPROVER} is reserved for approvals within tolerance"),
        ));
    }
    if !statuses.contains(&line.status.as_str()) {
        return Err(ServiceError::FailedPrecondition {
            reason: "NOT_AWAITING_DECISION",
            domain: DOMAIN,
            message: format!(
                "adjustment {} is {}{}",
                line.line_id,
                line.status,
                line.decided_by
                    .as_deref()
                    .map(|by| format!(" (decided by {by})"))
                    .unwrap_or_default()
            ),
            metadata: vec![("status", line.status.clone())],
        });
    }
    if counted {
        return Err(refused(
            "SELF_APPROVAL",
            format!(
                "{} counted this line and cannot also decide its adjustment",
                cmd.actor
            ),
        ));
    }
    Ok(())
}
