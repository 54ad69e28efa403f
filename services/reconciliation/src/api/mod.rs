//! The gRPC layer: `tasks` (count tasks from creation to completion), `adjustments` (the
//! manager's decisions) and `reports` (shrinkage, accuracy, the schedule). Requests become
//! commands in `parse`, rows become messages in `convert`; every mutation runs once per
//! request id.

mod adjustments;
mod convert;
mod parse;
mod reports;
mod tasks;

use inventory_core::PageTokens;
use inventory_core::error::reply;
use inventory_proto::reconciliation::v1 as pb;
use inventory_runtime::auth::with_verified_actor;
use pb::reconciliation_service_server::ReconciliationService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::counting::Counting;

/// The ErrorInfo domain of this service's refusals.
pub const DOMAIN: &str = "reconciliation";

/// FAILED_PRECONDITION of this service, with its reason.
fn refused(reason: &'static str, message: String) -> inventory_core::ServiceError {
    inventory_core::ServiceError::FailedPrecondition {
        reason,
        domain: DOMAIN,
        message,
        metadata: Vec::new(),
    }
}

#[derive(Clone)]
pub struct ReconciliationApi {
    pool: PgPool,
    pages: PageTokens,
    counting: Counting,
}

impl ReconciliationApi {
    pub fn new(pool: PgPool, pages: PageTokens, counting: Counting) -> Self {
        Self {
            pool,
            pages,
            counting,
        }
    }
}

/// Forwards each RPC to its handler; no handler bodies here.
#[tonic::async_trait]
impl ReconciliationService for ReconciliationApi {
    async fn create_count_task(
        &self,
        r: Request<pb::CreateCountTaskRequest>,
    ) -> Result<Response<pb::CreateCountTaskResponse>, Status> {
        reply(
            self.create_task(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn get_count_task(
        &self,
        r: Request<pb::GetCountTaskRequest>,
    ) -> Result<Response<pb::GetCountTaskResponse>, Status> {
        reply(self.get_task(r.into_inner()).await)
    }
    async fn list_count_tasks(
        &self,
        r: Request<pb::ListCountTasksRequest>,
    ) -> Result<Response<pb::ListCountTasksResponse>, Status> {
        reply(self.list_tasks(r.into_inner()).await)
    }
    async fn list_count_lines(
        &self,
        r: Request<pb::ListCountLinesRequest>,
    ) -> Result<Response<pb::ListCountLinesResponse>, Status> {
        reply(self.list_lines(r.into_inner()).await)
    }
    async fn submit_counts(
        &self,
        r: Request<pb::SubmitCountsRequest>,
    ) -> Result<Response<pb::SubmitCountsResponse>, Status> {
        reply(
            self.submit(with_verified_actor(r, |m| &mut m.counted_by)?)
                .await,
        )
    }
    async fn complete_count_task(
        &self,
        r: Request<pb::CompleteCountTaskRequest>,
    ) -> Result<Response<pb::CompleteCountTaskResponse>, Status> {
        reply(
            self.complete(with_verified_actor(r, |m| &mut m.actor)?)
                .await,
        )
    }
    async fn cancel_count_task(
        &self,
        r: Request<pb::CancelCountTaskRequest>,
    ) -> Result<Response<pb::CancelCountTaskResponse>, Status> {
        reply(self.cancel(with_verified_actor(r, |m| &mut m.actor)?).await)
    }
    async fn list_adjustments(
        &self,
        r: Request<pb::ListAdjustmentsRequest>,
    ) -> Result<Response<pb::ListAdjustmentsResponse>, Status> {
        reply(self.list_adjustments(r.into_inner()).await)
    }
    async fn approve_adjustment(
        &self,
        r: Request<pb::ApproveAdjustmentRequest>,
    ) -> Result<Response<pb::ApproveAdjustmentResponse>, Status> {
        reply(
            self.approve(with_verified_actor(r, |m| &mut m.manager)?)
                .await,
        )
    }
    async fn reject_adjustment(
        &self,
        r: Request<pb::RejectAdjustmentRequest>,
    ) -> Result<Response<pb::RejectAdjustmentResponse>, Status> {
        reply(
            self.reject(with_verified_actor(r, |m| &mut m.manager)?)
                .await,
        )
    }
    async fn get_shrinkage_report(
        &self,
        r: Request<pb::GetShrinkageReportRequest>,
    ) -> Result<Response<pb::GetShrinkageReportResponse>, Status> {
        reply(self.shrinkage(r.into_inner()).await)
    }
    async fn get_counting_report(
        &self,
        r: Request<pb::GetCountingReportRequest>,
    ) -> Result<Response<pb::GetCountingReportResponse>, Status> {
        reply(self.counting_report(r.into_inner()).await)
    }
    async fn list_counts_due(
        &self,
        r: Request<pb::ListCountsDueRequest>,
    ) -> Result<Response<pb::ListCountsDueResponse>, Status> {
        reply(self.counts_due(r.into_inner()).await)
    }
}
