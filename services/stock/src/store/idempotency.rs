//! AIP-155 request ids: the first response to a request id is stored in the same database
//! transaction as its effects, and replayed to every retry.

use inventory_core::ServiceError;

use super::{Store, Tx, db_error};

/// A request's identity for idempotency: its id, its method and its exact bytes.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub request_id: String,
    pub method: &'static str,
    pub fingerprint: Vec<u8>,
}

/// Either a transaction in which to do the work, or the stored response of the first attempt.
pub enum Begun {
    Fresh(Tx),
    Replay(Vec<u8>),
}

impl Store {
    /// Claims the request id inside a new transaction. A concurrent duplicate waits here
    /// until the first commits (then replays) or rolls back (then does the work itself).
    pub async fn begin_request(&self, key: &RequestKey) -> Result<Begun, ServiceError> {
        let mut tx = self.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (request_id, method, request_fingerprint)
             VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(&key.request_id)
        .bind(key.method)
        .bind(&key.fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        if claimed {
            return Ok(Begun::Fresh(tx));
        }
        let (method, fingerprint, response): (String, Vec<u8>, Vec<u8>) = sqlx::query_as(
            "SELECT method, request_fingerprint, response FROM idempotency_keys WHERE request_id = $1",
        )
        .bind(&key.request_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if method != key.method || fingerprint != key.fingerprint {
            return Err(ServiceError::invalid(
                "request_id",
                format!(
                    "{} was already used for a different request ({method}); use a new request_id",
                    key.request_id
                ),
            ));
        }
        Ok(Begun::Replay(response))
    }

    /// Stores the response beside the effects and commits both.
    pub async fn finish_request(
        &self,
        mut tx: Tx,
        key: &RequestKey,
        response: Vec<u8>,
    ) -> Result<(), ServiceError> {
        sqlx::query("UPDATE idempotency_keys SET response = $2 WHERE request_id = $1")
            .bind(&key.request_id)
            .bind(response)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Forgets request ids older than the retention window; returns how many went.
    pub async fn purge_request_ids(
        &self,
        older_than: chrono::Duration,
    ) -> Result<u64, ServiceError> {
        let cutoff = chrono::Utc::now() - older_than;
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE create_time < $1")
            .bind(cutoff)
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected())
    }
}
