//! The gRPC client's retry policy against a scripted stock server (real gRPC on port 0):
//! what is safe to retry is retried with the same request, the rest never.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use inventory_stock_client::{
    GrpcStockClient, RetryPolicy, StockClient, StockClientOptions, StockError, pb,
};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};

/// What the scripted server does with one ReceiveStock call.
#[derive(Clone)]
enum Step {
    /// Apply the receipt (once per request id), then lose the answer: UNAVAILABLE.
    ApplyThenFail(Code),
    /// Refuse before doing anything.
    Refuse(Code),
    /// Apply (once per request id) and answer.
    Answer,
    /// Never answer in time.
    Hang,
}

#[derive(Clone, Default)]
struct ScriptedStock {
    script: Arc<Mutex<VecDeque<Step>>>,
    /// The request id of every call received.
    calls: Arc<Mutex<Vec<String>>>,
    /// Request ids whose receipt was applied: at most once each, as stock does.
    applied: Arc<Mutex<BTreeSet<String>>>,
}

impl NamedService for ScriptedStock {
    const NAME: &'static str = pb::SERVICE_NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for ScriptedStock {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != "/inventory.stock.v1.StockService/ReceiveStock" {
            return Box::pin(async { Ok(Status::unimplemented("scripted").into_http()) });
        }
        let handler = ReceiveHandler(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(handler, request).await)
        })
    }
}

struct ReceiveHandler(ScriptedStock);

impl tonic::server::UnaryService<pb::ReceiveStockRequest> for ReceiveHandler {
    type Response = pb::ReceiveStockResponse;
    type Future = BoxFuture<Result<tonic::Response<pb::ReceiveStockResponse>, Status>>;

    fn call(&mut self, request: tonic::Request<pb::ReceiveStockRequest>) -> Self::Future {
        let stock = self.0.clone();
        Box::pin(async move {
            let request_id = request.into_inner().request_id;
            stock.calls.lock().expect("calls").push(request_id.clone());
            let step = stock
                .script
                .lock()
                .expect("script")
                .pop_front()
                .unwrap_or(Step::Answer);
            let apply = || {
                stock
                    .applied
                    .lock()
                    .expect("applied")
                    .insert(request_id.clone());
            };
            match step {
                Step::ApplyThenFail(code) => {
                    apply();
                    Err(Status::new(code, "answer lost"))
                }
                Step::Refuse(code) => Err(Status::new(code, "refused")),
                Step::Answer => {
                    apply();
                    Ok(tonic::Response::new(pb::ReceiveStockResponse::default()))
                }
                Step::Hang => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Err(Status::internal("too late"))
                }
            }
        })
    }
}

async fn serve(stock: ScriptedStock) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(stock)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

async fn client_for(script: Vec<Step>, deadline: Duration) -> (GrpcStockClient, ScriptedStock) {
    let stock = ScriptedStock::default();
    stock.script.lock().expect("script").extend(script);
    let url = serve(stock.clone()).await;
    let client = GrpcStockClient::new(&StockClientOptions {
        url,
        deadline,
        retry: RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
        credentials: inventory_runtime::auth::PeerCredentials::none(),
    })
    .expect("client");
    (client, stock)
}

fn receipt() -> pb::ReceiveStockRequest {
    pb::ReceiveStockRequest {
        request_id: "receipt-1".to_owned(),
        product_id: "p".to_owned(),
        warehouse_id: "w".to_owned(),
        quantity: 5,
        reference_id: "PO-1".to_owned(),
        actor: String::new(),
    }
}

#[tokio::test]
async fn an_answer_lost_to_unavailable_is_retried_with_the_same_request_id_and_applies_once() {
    let (client, stock) = client_for(
        vec![
            Step::ApplyThenFail(Code::Unavailable),
            Step::Refuse(Code::Aborted),
        ],
        Duration::from_secs(5),
    )
    .await;
    client
        .receive(receipt())
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(
        *stock.calls.lock().expect("calls"),
        ["receipt-1", "receipt-1", "receipt-1"],
        "every attempt carries the same request id"
    );
    assert_eq!(
        stock.applied.lock().expect("applied").len(),
        1,
        "one effect"
    );
}

#[tokio::test]
async fn invalid_argument_is_never_retried() {
    let (client, stock) = client_for(
        vec![Step::Refuse(Code::InvalidArgument)],
        Duration::from_secs(5),
    )
    .await;
    let error = client.receive(receipt()).await.expect_err("refused");
    assert!(
        matches!(error, StockError::InvalidArgument { .. }),
        "{error:?}"
    );
    assert_eq!(stock.calls.lock().expect("calls").len(), 1);
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_unavailable() {
    let down = Step::Refuse(Code::Unavailable);
    let (client, stock) = client_for(vec![down; 10], Duration::from_secs(5)).await;
    let error = client.receive(receipt()).await.expect_err("still down");
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(
        stock.calls.lock().expect("calls").len(),
        4,
        "attempts in all"
    );
}

#[tokio::test]
async fn a_call_stock_never_answers_ends_at_its_deadline_and_is_not_retried() {
    let (client, stock) = client_for(vec![Step::Hang], Duration::from_millis(200)).await;
    let started = Instant::now();
    let error = client.receive(receipt()).await.expect_err("no answer");
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stock.calls.lock().expect("calls").len(), 1);
}
