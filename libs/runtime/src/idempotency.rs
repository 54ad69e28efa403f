//! AIP-155 request ids, once for every service: the first answer to a request id is stored in
//! the same database transaction as its effects and replayed to every retry; the same id with
//! other parameters is refused. The table (`idempotency_keys`) is a platform migration, so it
//! lives in each service's own schema.
//!
//! A concurrent duplicate waits on the row lock of the first attempt's claim: when the first
//! commits it replays the stored answer, when the first rolls back it does the work itself.

use std::future::Future;

use inventory_core::ServiceError;
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::database::db_error;

pub type Tx = Transaction<'static, Postgres>;

/// A request's identity for idempotency: its id, its method and its exact bytes.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub request_id: String,
    pub method: &'static str,
    /// The encoded request. Stable because every map field is generated as a BTreeMap.
    pub fingerprint: Vec<u8>,
}

impl RequestKey {
    pub fn new(method: &'static str, request_id: &str, request: &impl Message) -> Self {
        Self {
            request_id: request_id.to_owned(),
            method,
            fingerprint: request.encode_to_vec(),
        }
    }
}

/// Runs `work` once per request id: on the first call inside a transaction that also stores
/// its answer; on every retry, the stored answer without running `work`. An error from
/// `work` rolls everything back, the claim included, so a retry runs it again.
///
/// `work` takes the transaction and hands it back with the answer:
/// `idempotent(pool, &key, |mut tx| async move { ...; Ok((tx, answer)) })`. (A closure
/// borrowing `&mut Tx` cannot be proven `Send` for every lifetime inside a tonic handler.)
pub async fn idempotent<M, F, Fut>(
    pool: &PgPool,
    key: &RequestKey,
    work: F,
) -> Result<M, ServiceError>
where
    M: Message + Default,
    F: FnOnce(Tx) -> Fut,
    Fut: Future<Output = Result<(Tx, M), ServiceError>>,
{
    // The database work of the request, as one span of its trace.
    let span = tracing::info_span!(
        "db.transaction",
        otel.name = format!("postgresql {}", key.method),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = key.method,
        replayed = tracing::field::Empty,
    );
    async move {
        match claim(pool, key).await? {
            Claim::Replay(bytes) => {
                tracing::Span::current().record("replayed", true);
                decode(&bytes)
            }
            Claim::Fresh(tx) => {
                tracing::Span::current().record("replayed", false);
                let (mut tx, response) = work(tx).await?;
                sqlx::query("UPDATE idempotency_keys SET response = $2 WHERE request_id = $1")
                    .bind(&key.request_id)
                    .bind(response.encode_to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                crate::database::commit(tx).await?;
                Ok(response)
            }
        }
    }
    .instrument(span)
    .await
}

/// For a request that can no longer be done as asked (the expiry it names has passed, say):
/// the stored answer if it was done before, so a late retry still gets its first answer;
/// otherwise `refusal`. Waits, like a retry does, for a first attempt still in flight.
pub async fn replay_or<M: Message + Default>(
    pool: &PgPool,
    key: &RequestKey,
    refusal: ServiceError,
) -> Result<M, ServiceError> {
    match claim(pool, key).await? {
        Claim::Replay(bytes) => decode(&bytes),
        // Dropping the transaction rolls the claim back.
        Claim::Fresh(_unclaimed) => Err(refusal),
    }
}

/// Claims many requests at once, for work done together in one transaction (a coalesced
/// batch): per key, whether it was claimed here. One not claimed was seen before (a retry, or
/// a duplicate still in flight, which this waits for): run it through [`idempotent`], which
/// replays it. Claimed in request id order, so two batches never wait on each other in a
/// cycle. A request id twice in `keys` is claimed once, for its first.
pub async fn claim_many(tx: &mut Tx, keys: &[&RequestKey]) -> Result<Vec<bool>, ServiceError> {
    let claimed: std::collections::HashSet<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (request_id, method, request_fingerprint)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ORDER BY 1
         ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
    )
    .bind(
        keys.iter()
            .map(|k| k.request_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(keys.iter().map(|k| k.method).collect::<Vec<_>>())
    .bind(
        keys.iter()
            .map(|k| k.fingerprint.as_slice())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(db_error)?
    .into_iter()
    .collect();
    let mut first = std::collections::HashSet::new();
    Ok(keys
        .iter()
        .map(|k| claimed.contains(&k.request_id) && first.insert(k.request_id.as_str()))
        .collect())
}

/// Stores the answers of requests claimed with [`claim_many`] (request id, answer).
pub async fn answer_many(tx: &mut Tx, answers: &[(&str, Vec<u8>)]) -> Result<(), ServiceError> {
    if answers.is_empty() {
        return Ok(());
    }
    // Planned on each call: a plan cached while the table was small goes on reading all of
    // it as it grows, until statistics are next gathered.
    sqlx::query(
        "UPDATE idempotency_keys k SET response = a.response
           FROM unnest($1::text[], $2::bytea[]) AS a(request_id, response)
          WHERE k.request_id = a.request_id",
    )
    .persistent(false)
    .bind(answers.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(
        answers
            .iter()
            .map(|(_, bytes)| bytes.as_slice())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Gives back claims of requests that ended without an answer to store (a refusal, or work
/// handed to the one-request path): as [`idempotent`] does with an error, so the request runs
/// again when retried.
pub async fn unclaim(tx: &mut Tx, request_ids: &[&str]) -> Result<(), ServiceError> {
    if request_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM idempotency_keys WHERE request_id = ANY($1)")
        .persistent(false) // as in `answer_many`
        .bind(request_ids)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Forgets request ids older than `older_than`; returns how many went.
pub async fn purge(pool: &PgPool, older_than: chrono::Duration) -> Result<u64, ServiceError> {
    let cutoff = chrono::Utc::now() - older_than;
    let result = sqlx::query("DELETE FROM idempotency_keys WHERE create_time < $1")
        .bind(cutoff)
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected())
}

/// The error for a request id reused with other parameters.
pub fn reused(request_id: &str, first_method: &str) -> ServiceError {
    ServiceError::invalid(
        "request_id",
        format!(
            "{} was already used for a different request ({first_method}); use a new request_id",
            inventory_core::validate::excerpt(request_id)
        ),
    )
}

enum Claim {
    Fresh(Tx),
    Replay(Vec<u8>),
}

async fn claim(pool: &PgPool, key: &RequestKey) -> Result<Claim, ServiceError> {
    let mut tx = crate::database::begin(pool).await?;
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
        return Ok(Claim::Fresh(tx));
    }
    let (method, fingerprint, response): (String, Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT method, request_fingerprint, response FROM idempotency_keys WHERE request_id = $1",
    )
    .bind(&key.request_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    if method != key.method || fingerprint != key.fingerprint {
        return Err(reused(&key.request_id, &method));
    }
    Ok(Claim::Replay(response))
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, ServiceError> {
    M::decode(bytes).map_err(|e| ServiceError::Internal(format!("stored response: {e}")))
}
