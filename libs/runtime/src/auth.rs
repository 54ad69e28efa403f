//! Who is calling, and whether they may call this RPC.
//!
//! Identity comes from the caller's certificate under mutual TLS: each URI subject
//! alternative name `spiffe://<AUTH_TRUST_DOMAIN>/<role>/<name>` grants `role`, and the first
//! one names the caller (`<role>/<name>`). Where mutual TLS is off, a token signed with
//! `AUTH_TOKEN_SECRET` (HS256, `authorization: Bearer ...`, claims `sub`, `roles`, `exp`)
//! does the same. With neither configured, authentication is off: every caller may call
//! everything and the actor fields of requests are recorded as sent (a development setup;
//! the service says so when it starts).
//!
//! Each service declares a [`Policy`]: which roles may call each mutating RPC. Reads are open
//! to every authenticated caller but the supplier integration, which may only push receipts.
//! A refusal is UNAUTHENTICATED (no identity, or one that does not verify) or PERMISSION_DENIED
//! (a verified caller without the role), and is logged.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tonic::Status;
use tonic::body::Body;

use crate::tls::Peer;
use crate::{RuntimeError, Settings};

/// Longest caller name (`<role>/<name>`).
pub const MAX_PRINCIPAL_LEN: usize = 60;
/// What separates a verified caller from the person a request field narrows it to; a caller's
/// name cannot contain it, so the verified part of a recorded actor is always its first.
pub const NARROWED_BY: &str = " > ";
/// Longest actor recorded for a verified caller other than a service (its name and the
/// narrowing field): short enough that a service passing it on to stock, which puts its own
/// name before it, still fits stock's 128-character actor column.
pub const MAX_VERIFIED_ACTOR_LEN: usize =
    inventory_core::validate::MAX_KEY_LEN - MAX_PRINCIPAL_LEN - NARROWED_BY.len();
/// Longest lifetime a token may claim: a leaked one is good for a day at most.
const MAX_TOKEN_LIFETIME_SECS: i64 = 24 * 3600;
/// Shortest token secret accepted: HS256 wants at least its own 256 bits.
const MIN_SECRET_LEN: usize = 32;

/// What a caller is, by the job it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Takes orders: reserves, releases and ships.
    OrderManagement,
    /// Decides where orders ship: allocates.
    FulfillmentRouter,
    /// Pushes the receipts of purchase orders, and nothing else.
    SupplierIntegration,
    /// Runs the catalog, warehouses, policies, thresholds and counts.
    Operator,
    /// Approves and rejects what needs a manager.
    Manager,
    /// The services themselves, calling stock for their own flows.
    Allocation,
    Replenishment,
    Reconciliation,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::OrderManagement,
        Role::FulfillmentRouter,
        Role::SupplierIntegration,
        Role::Operator,
        Role::Manager,
        Role::Allocation,
        Role::Replenishment,
        Role::Reconciliation,
    ];

    /// One of the services, calling stock on behalf of its own callers.
    pub fn is_service(self) -> bool {
        matches!(
            self,
            Role::Allocation | Role::Replenishment | Role::Reconciliation
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrderManagement => "order-management",
            Role::FulfillmentRouter => "fulfillment-router",
            Role::SupplierIntegration => "supplier-integration",
            Role::Operator => "operator",
            Role::Manager => "manager",
            Role::Allocation => "fulfillment-allocation",
            Role::Replenishment => "replenishment",
            Role::Reconciliation => "reconciliation",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `<role>/<name>` from a certificate, the token's subject otherwise.
    pub principal: String,
    pub roles: BTreeSet<Role>,
}

/// What the handlers of a request learn about its caller.
#[derive(Debug, Clone)]
pub enum CallerIdentity {
    /// Authentication is off: nothing is known.
    Unverified,
    Verified(Caller),
}

impl CallerIdentity {
    /// The actor to record for a request whose `actor` field says `field`: the verified
    /// caller, narrowed by the field when it names someone (`operator/scanner-7 > alice`: the
    /// person at a scanner). With authentication off, the field as sent.
    pub fn actor(&self, field: &str) -> Result<String, Status> {
        match self {
            CallerIdentity::Unverified => Ok(field.to_owned()),
            CallerIdentity::Verified(caller) if field.is_empty() => Ok(caller.principal.clone()),
            CallerIdentity::Verified(caller) => {
                let actor = format!("{}{NARROWED_BY}{field}", caller.principal);
                // A service passes on the actor its own caller was recorded as.
                let limit = if caller.roles.iter().any(|r| r.is_service()) {
                    inventory_core::validate::MAX_KEY_LEN
                } else {
                    MAX_VERIFIED_ACTOR_LEN
                };
                if actor.chars().count() > limit {
                    return Err(Status::invalid_argument(format!(
                        "actor: after the caller's identity {:?} it would exceed {limit} characters",
                        caller.principal
                    )));
                }
                Ok(actor)
            }
        }
    }

    /// The identity of `request` (the layer puts it there; a request that never passed it,
    /// as in unit tests of handlers, is unverified).
    pub fn of<T>(request: &tonic::Request<T>) -> CallerIdentity {
        request
            .extensions()
            .get::<CallerIdentity>()
            .cloned()
            .unwrap_or(CallerIdentity::Unverified)
    }
}

/// A request's message with its actor field (`actor`, `approver`, `counted_by`) made the one
/// to record: the verified caller, narrowed by what the field said.
pub fn with_verified_actor<T>(
    request: tonic::Request<T>,
    actor: impl FnOnce(&mut T) -> &mut String,
) -> Result<T, Status> {
    let identity = CallerIdentity::of(&request);
    let mut message = request.into_inner();
    let field = actor(&mut message);
    *field = identity.actor(field)?;
    Ok(message)
}

/// [`with_verified_actor`] for a batch call: every entry's actor.
pub fn with_verified_actors<T>(
    request: tonic::Request<T>,
    actors: fn(&mut T) -> Vec<&mut String>,
) -> Result<T, Status> {
    let identity = CallerIdentity::of(&request);
    let mut message = request.into_inner();
    for field in actors(&mut message) {
        *field = identity.actor(field)?;
    }
    Ok(message)
}

/// Who may call each RPC of one service (by method name, without the service). Every RPC
/// must be in one list: a service whose policy misses one, or names one it does not have,
/// does not start.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// RPCs that change something, and the roles allowed to call each.
    pub writes: &'static [(&'static str, &'static [Role])],
    /// RPCs that change nothing: every role but the supplier integration may call them.
    pub reads: &'static [&'static str],
}

impl Policy {
    const READERS: &'static [Role] = &[
        Role::OrderManagement,
        Role::FulfillmentRouter,
        Role::Operator,
        Role::Manager,
        Role::Allocation,
        Role::Replenishment,
        Role::Reconciliation,
    ];

    /// The roles that may call `method`; None for a method the policy does not know.
    pub fn allowed(&self, method: &str) -> Option<&'static [Role]> {
        if let Some((_, roles)) = self.writes.iter().find(|(name, _)| *name == method) {
            return Some(roles);
        }
        self.reads.contains(&method).then_some(Self::READERS)
    }

    /// Checks the policy against the service's RPCs in its encoded descriptor set: every RPC
    /// classified, nothing classified that is not an RPC.
    pub fn check(&self, descriptor_set: &[u8], service: &str) -> Result<(), String> {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(descriptor_set)
            .map_err(|e| format!("the descriptor set of {service} does not decode: {e}"))?;
        let methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service
                    .iter()
                    .filter(move |s| format!("{package}.{}", s.name()) == service)
            })
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect();
        let unclassified: Vec<&str> = methods
            .iter()
            .map(String::as_str)
            .filter(|m| self.allowed(m).is_none())
            .collect();
        let classified = self
            .writes
            .iter()
            .map(|(name, _)| *name)
            .chain(self.reads.iter().copied());
        let unknown: Vec<&str> = classified
            .filter(|name| !methods.iter().any(|m| m == name))
            .collect();
        if methods.is_empty() || !unclassified.is_empty() || !unknown.is_empty() {
            return Err(format!(
                "the policy of {service} must list each of its RPCs once: not listed {unclassified:?}, \
                 listed but not RPCs of it {unknown:?}"
            ));
        }
        Ok(())
    }
}

/// How callers are authenticated.
#[derive(Clone)]
pub struct AuthSettings {
    /// `AUTH_TRUST_DOMAIN`: the trust domain of the certificates' SPIFFE ids (default
    /// `inventory`).
    pub trust_domain: String,
    /// `AUTH_TOKEN_SECRET`: the HS256 key of bearer tokens, at least 32 bytes.
    pub token_secret: Option<Arc<[u8]>>,
    /// Mutual TLS is on: callers show certificates.
    pub mutual_tls: bool,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("trust_domain", &self.trust_domain)
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("mutual_tls", &self.mutual_tls)
            .finish()
    }
}

impl AuthSettings {
    pub fn from_settings(settings: &Settings, mutual_tls: bool) -> Result<Self, RuntimeError> {
        let token_secret = match settings.raw("AUTH_TOKEN_SECRET").filter(|s| !s.is_empty()) {
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(RuntimeError::Config(format!(
                    "AUTH_TOKEN_SECRET: {} bytes; at least {MIN_SECRET_LEN} are needed",
                    secret.len()
                )));
            }
            Some(secret) => Some(Arc::from(secret.into_bytes())),
            None => None,
        };
        Ok(Self {
            trust_domain: settings.text("AUTH_TRUST_DOMAIN", "inventory"),
            token_secret,
            mutual_tls,
        })
    }

    /// Callers must prove who they are.
    pub fn enforced(&self) -> bool {
        self.mutual_tls || self.token_secret.is_some()
    }

    /// The caller of a request with these connection details and `authorization` header.
    pub fn authenticate(
        &self,
        peer: Option<&Peer>,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<Caller, String> {
        if let Some(leaf) = peer
            .and_then(|p| p.certificates.as_ref())
            .and_then(|c| c.first())
        {
            return caller_from_certificate(leaf, &self.trust_domain);
        }
        match (authorization, &self.token_secret) {
            (Some(header), Some(secret)) => {
                let token = header
                    .strip_prefix("Bearer ")
                    .ok_or("the authorization header is not `Bearer <token>`")?;
                verify_token(token, secret, now)
            }
            (None, Some(_)) => Err("no client certificate and no bearer token".into()),
            (_, None) => Err("no client certificate".into()),
        }
    }
}

/// The caller named by a certificate's `spiffe://<trust_domain>/<role>/<name>` URIs.
pub fn caller_from_certificate(
    leaf: &rustls::pki_types::CertificateDer<'_>,
    trust_domain: &str,
) -> Result<Caller, String> {
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let prefix = format!("spiffe://{trust_domain}/");
    let mut principal = None;
    let mut roles = BTreeSet::new();
    for uri in cert.valid_uri_names() {
        let Some(path) = uri.strip_prefix(&prefix) else {
            continue;
        };
        let Some((role, name)) = path.split_once('/') else {
            continue;
        };
        let (Ok(role), true) = (role.parse::<Role>(), valid_name(name)) else {
            continue;
        };
        roles.insert(role);
        principal.get_or_insert_with(|| path.to_owned());
    }
    match principal {
        Some(principal) if principal.len() <= MAX_PRINCIPAL_LEN => Ok(Caller { principal, roles }),
        Some(principal) => Err(format!(
            "the certificate's name {principal:?} is longer than {MAX_PRINCIPAL_LEN} characters"
        )),
        None => Err(format!(
            "the client certificate names no caller (no URI spiffe://{trust_domain}/<role>/<name>)"
        )),
    }
}

/// A caller's own name: letters, digits and `-._@/`, so the recorded actor cannot be
/// mistaken for something else.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PRINCIPAL_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@/".contains(c))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<String>,
    exp: i64,
}

/// A bearer token for `principal` with `roles`, valid until `expires` (unix seconds): what a
/// service shows its peers where mutual TLS is off.
pub fn sign_token(secret: &[u8], principal: &str, roles: &[Role], expires: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        sub: principal.to_owned(),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        exp: expires,
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signed = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, signed.as_bytes()).finalize().into_bytes());
    format!("{signed}.{signature}")
}

fn mac(secret: &[u8], message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
    mac.update(message);
    mac
}

/// The caller a token names, if its signature verifies and it has not expired at `now`.
pub fn verify_token(token: &str, secret: &[u8], now: i64) -> Result<Caller, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not three dot-separated parts".into());
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "the token's signature is not base64url")?;
    mac(
        secret,
        &token.as_bytes()[..header.len() + 1 + payload.len()],
    )
    .verify_slice(&signature)
    .map_err(|_| "the token's signature does not verify")?;
    // Only after the signature holds: nothing unsigned is parsed.
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("the token's header is not base64url JSON")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err("the token's algorithm is not HS256".into());
    }
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or("the token's claims are not base64url JSON with sub, roles and exp")?;
    if claims.exp <= now {
        return Err("the token has expired".into());
    }
    if claims.exp - now > MAX_TOKEN_LIFETIME_SECS {
        return Err(
            "the token claims to be valid for more than 24 hours; sign a shorter one".into(),
        );
    }
    if !valid_name(&claims.sub) {
        return Err(format!(
            "the token's subject must be 1 to {MAX_PRINCIPAL_LEN} of letters, digits and -._@/"
        ));
    }
    let roles = claims
        .roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| format!("the token's roles: {e}"))?;
    Ok(Caller {
        principal: claims.sub,
        roles,
    })
}

/// How long a token a service signs for its own calls stays valid.
const OWN_TOKEN_LIFETIME_SECS: i64 = 300;

/// How a service proves who it is to its peers: the certificate of its TLS files over an
/// `https://` channel, or, without one, a short-lived token it signs for itself as `role`
/// with `AUTH_TOKEN_SECRET`.
#[derive(Clone)]
pub struct PeerCredentials {
    pub tls: crate::tls::TlsFiles,
    token: Option<(Arc<[u8]>, String, Role)>,
}

impl fmt::Debug for PeerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCredentials")
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|(_, p, _)| p))
            .finish()
    }
}

impl PeerCredentials {
    /// This service as `role`, named `AUTH_CALLER_NAME` (default `service`): one name for all
    /// its replicas, so a retry from another replica is the same caller.
    pub fn from_settings(settings: &Settings, role: Role) -> Result<Self, RuntimeError> {
        let tls = crate::tls::TlsFiles::from_settings(settings)?;
        let auth = AuthSettings::from_settings(settings, false)?;
        let name = settings.text("AUTH_CALLER_NAME", "service");
        if !valid_name(&name) || role.as_str().len() + 1 + name.len() > MAX_PRINCIPAL_LEN {
            return Err(RuntimeError::Config(format!(
                "AUTH_CALLER_NAME {name:?}: letters, digits and -._@/, at most {} characters",
                MAX_PRINCIPAL_LEN - role.as_str().len() - 1
            )));
        }
        let token = match (&tls.cert, auth.token_secret) {
            (None, Some(secret)) => Some((secret, format!("{role}/{name}"), role)),
            _ => None,
        };
        Ok(Self { tls, token })
    }

    /// No certificate and no token: what tests and development setups use.
    pub fn none() -> Self {
        Self {
            tls: crate::tls::TlsFiles::default(),
            token: None,
        }
    }

    /// A channel to `endpoint`: TLS with this service's files for `https://`.
    pub fn channel(
        &self,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Channel, RuntimeError> {
        crate::tls::endpoint_channel(endpoint, &self.tls)
    }

    /// The `authorization` header of a call made now, if this service uses tokens.
    pub fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|(secret, principal, role)| {
            let expires = chrono::Utc::now().timestamp() + OWN_TOKEN_LIFETIME_SECS;
            format!(
                "Bearer {}",
                sign_token(secret, principal, &[*role], expires)
            )
        })
    }
}

/// Every outgoing call of a service: its trace context and, if it uses tokens, its token.
#[derive(Clone, Debug)]
pub struct OutgoingInterceptor {
    credentials: Arc<PeerCredentials>,
}

impl OutgoingInterceptor {
    pub fn new(credentials: PeerCredentials) -> Self {
        Self {
            credentials: Arc::new(credentials),
        }
    }
}

impl tonic::service::Interceptor for OutgoingInterceptor {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let mut request = inventory_telemetry::TraceContextInterceptor.call(request)?;
        if let Some(header) = self.credentials.authorization() {
            let value = header
                .parse()
                .map_err(|_| Status::internal("the service's own token is not a header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// What callers reach without an identity: health (probes carry none).
const HEALTH: &str = "/grpc.health.v1.Health/";
/// What any verified caller may reach, whatever its role: the API's description
/// (`REFLECTION=false` turns it off altogether).
const REFLECTION: &str = "/grpc.reflection.";

/// Checks every request of one service against its policy before it reaches the handler,
/// and hands the handler the caller's identity. Health stays open (probes carry no identity);
/// reflection answers any verified caller.
#[derive(Clone)]
pub struct AuthLayer {
    settings: Arc<AuthSettings>,
    service: &'static str,
    policy: Policy,
}

impl AuthLayer {
    pub fn new(settings: AuthSettings, service: &'static str, policy: Policy) -> Self {
        Self {
            settings: Arc::new(settings),
            service,
            policy,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    layer: AuthLayer,
}

impl Authorize<()> {
    /// Whether the caller of `request` may call it; the identity the handler will see.
    fn decide(layer: &AuthLayer, request: &http::Request<Body>) -> Result<CallerIdentity, Status> {
        if !layer.settings.enforced() {
            return Ok(CallerIdentity::Unverified);
        }
        let path = request.uri().path();
        let method = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(layer.service))
            .and_then(|p| p.strip_prefix('/'));
        if path.starts_with(HEALTH) {
            return Ok(CallerIdentity::Unverified);
        }
        let reflection = path.starts_with(REFLECTION);
        if method.is_none() && !reflection {
            tracing::warn!(
                rpc = path,
                "refused: PERMISSION_DENIED (not a service served here)"
            );
            return Err(Status::permission_denied(format!(
                "{path} is not served here"
            )));
        }
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        let caller = layer
            .settings
            .authenticate(request.extensions().get::<Peer>(), authorization, now)
            .map_err(|reason| {
                tracing::warn!(rpc = path, %reason, "refused: UNAUTHENTICATED");
                Status::unauthenticated(reason)
            })?;
        let Some(method) = method else {
            // Reflection: any verified caller.
            return Ok(CallerIdentity::Verified(caller));
        };
        let allowed = layer.policy.allowed(method).unwrap_or(&[]);
        if !caller.roles.iter().any(|r| allowed.contains(r)) {
            let roles: Vec<&str> = caller.roles.iter().map(|r| r.as_str()).collect();
            let needed: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            tracing::warn!(rpc = path, caller = %caller.principal, ?roles, "refused: PERMISSION_DENIED");
            return Err(Status::permission_denied(format!(
                "{} (roles {roles:?}) may not call {method}; it needs one of {needed:?}",
                caller.principal
            )));
        }
        Ok(CallerIdentity::Verified(caller))
    }
}

impl<S> tower::Service<http::Request<Body>> for Authorize<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Response<Body>, S::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match Authorize::decide(&self.layer, &request) {
            Ok(identity) => {
                request.extensions_mut().insert(identity);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_token_names_its_caller_until_it_expires() {
        let token = sign_token(SECRET, "alice", &[Role::Manager, Role::Operator], 2_000);
        let caller = verify_token(&token, SECRET, 1_999).expect("verifies");
        assert_eq!(caller.principal, "alice");
        assert_eq!(
            caller.roles,
            BTreeSet::from([Role::Manager, Role::Operator])
        );
        let expired = verify_token(&token, SECRET, 2_000).expect_err("expired");
        assert!(expired.contains("expired"), "{expired}");
    }

    #[test]
    fn a_token_signed_with_another_key_or_altered_is_refused() {
        let token = sign_token(SECRET, "alice", &[Role::Operator], 2_000);
        let other = verify_token(&token, b"another key, also 32 bytes long!", 0).expect_err("key");
        assert!(other.contains("signature"), "{other}");
        // Granting itself a role by editing the claims breaks the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","roles":["manager"],"exp":2000}"#);
        let altered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert!(verify_token(&altered, SECRET, 0).is_err());
        for junk in ["", "a.b", "a.b.c.d", "...", "a.b.!!!"] {
            assert!(verify_token(junk, SECRET, 0).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_token_with_an_unknown_role_or_a_bad_subject_is_refused() {
        let unknown = {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
            let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","roles":["root"],"exp":99}"#);
            let signed = format!("{header}.{claims}");
            let sig =
                URL_SAFE_NO_PAD.encode(mac(SECRET, signed.as_bytes()).finalize().into_bytes());
            format!("{signed}.{sig}")
        };
        let error = verify_token(&unknown, SECRET, 0).expect_err("unknown role");
        assert!(error.contains("\"root\" is not a role"), "{error}");
        let spaced = sign_token(SECRET, "al ice", &[Role::Operator], 99);
        assert!(
            verify_token(&spaced, SECRET, 0)
                .expect_err("subject")
                .contains("subject")
        );
    }

    #[test]
    fn the_actor_is_the_verified_caller_narrowed_by_the_field() {
        let verified = CallerIdentity::Verified(Caller {
            principal: "operator/scanner-7".into(),
            roles: BTreeSet::from([Role::Operator]),
        });
        assert_eq!(
            verified.actor("").ok().as_deref(),
            Some("operator/scanner-7")
        );
        assert_eq!(
            verified.actor("alice").ok().as_deref(),
            Some("operator/scanner-7 > alice")
        );
        let long = verified.actor(&"x".repeat(60)).expect_err("too long");
        assert_eq!(long.code(), tonic::Code::InvalidArgument);
        assert!(
            long.message().contains(&MAX_VERIFIED_ACTOR_LEN.to_string()),
            "{}",
            long.message()
        );
        assert_eq!(
            CallerIdentity::Unverified.actor("anyone").ok().as_deref(),
            Some("anyone")
        );
        // A service passes on the longest actor another caller may have, under the longest name.
        let service = CallerIdentity::Verified(Caller {
            principal: "x".repeat(MAX_PRINCIPAL_LEN),
            roles: BTreeSet::from([Role::Allocation]),
        });
        let passed_on = service
            .actor(&"y".repeat(MAX_VERIFIED_ACTOR_LEN))
            .expect("fits");
        assert_eq!(passed_on.len(), inventory_core::validate::MAX_KEY_LEN);
    }

    #[test]
    fn a_service_signs_its_own_short_lived_token_as_its_role() {
        let secret = std::str::from_utf8(SECRET).expect("ascii");
        let settings = Settings::defaults().overlay([("AUTH_TOKEN_SECRET", secret)]);
        let credentials =
            PeerCredentials::from_settings(&settings, Role::Allocation).expect("credentials");
        let header = credentials
            .authorization()
            .expect("a token without a certificate");
        let token = header.strip_prefix("Bearer ").expect("bearer");
        let caller = verify_token(token, SECRET, chrono::Utc::now().timestamp()).expect("valid");
        assert_eq!(caller.principal, "fulfillment-allocation/service");
        assert_eq!(caller.roles, BTreeSet::from([Role::Allocation]));
        // With a certificate, the certificate speaks for it.
        let with_cert = settings.overlay([("TLS_CERT_FILE", "a.crt"), ("TLS_KEY_FILE", "a.key")]);
        let credentials = PeerCredentials::from_settings(&with_cert, Role::Allocation).expect("ok");
        assert!(credentials.authorization().is_none());
        let bad = settings.overlay([("AUTH_CALLER_NAME", "two words")]);
        assert!(PeerCredentials::from_settings(&bad, Role::Allocation).is_err());
    }

    #[test]
    fn a_token_claiming_more_than_a_day_is_refused() {
        let token = sign_token(SECRET, "alice", &[Role::Operator], 2 * 24 * 3600);
        let error = verify_token(&token, SECRET, 0).expect_err("too long-lived");
        assert!(error.contains("24 hours"), "{error}");
    }

    #[test]
    fn reads_are_open_to_all_but_suppliers_and_an_unlisted_rpc_to_no_one() {
        let policy = Policy {
            writes: &[("ReceivePurchaseOrder", &[Role::SupplierIntegration])],
            reads: &["GetPurchaseOrder"],
        };
        assert_eq!(
            policy.allowed("ReceivePurchaseOrder"),
            Some(&[Role::SupplierIntegration][..])
        );
        let readers = policy.allowed("GetPurchaseOrder").expect("a read");
        assert!(!readers.contains(&Role::SupplierIntegration));
        assert!(readers.contains(&Role::Manager));
        assert_eq!(policy.allowed("DeleteEverything"), None);
    }

    #[test]
    fn a_policy_must_classify_every_rpc_of_its_service_and_nothing_else() {
        let health = tonic_health::pb::FILE_DESCRIPTOR_SET;
        let complete = Policy {
            writes: &[],
            reads: &["Check", "Watch"],
        };
        assert_eq!(complete.check(health, "grpc.health.v1.Health"), Ok(()));
        let missing = Policy {
            writes: &[],
            reads: &["Check"],
        };
        let error = missing
            .check(health, "grpc.health.v1.Health")
            .expect_err("Watch");
        assert!(error.contains("\"Watch\""), "{error}");
        let extra = Policy {
            writes: &[("Reset", &[Role::Operator])],
            reads: &["Check", "Watch"],
        };
        let error = extra
            .check(health, "grpc.health.v1.Health")
            .expect_err("Reset");
        assert!(error.contains("\"Reset\""), "{error}");
        assert!(complete.check(health, "grpc.health.v1.Elsewhere").is_err());
    }

    #[test]
    fn a_short_secret_is_refused_and_a_secret_never_printed() {
        let short = Settings::defaults().overlay([("AUTH_TOKEN_SECRET", "short")]);
        assert!(AuthSettings::from_settings(&short, false).is_err());
        let settings = Settings::defaults()
            .overlay([("AUTH_TOKEN_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")]);
        let auth = AuthSettings::from_settings(&settings, false).expect("parses");
        assert!(auth.enforced());
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig::with_cases(inventory_core::fuzz_cases())
        }

        proptest! {
            #![proptest_config(config())]

            /// Whatever arrives in the header, the verifier answers without panicking, and
            /// nothing but the key's own signature verifies.
            #[test]
            fn any_token_text_is_refused_or_was_signed(text in ".{0,300}") {
                prop_assert!(verify_token(&text, SECRET, 0).is_err());
            }

            /// A signed token with any one byte changed no longer verifies (or still names the
            /// same caller, when the change is in base64 padding bits that decode the same).
            #[test]
            fn a_token_with_a_byte_changed_does_not_verify_as_someone_else(
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
            ) {
                let token = sign_token(SECRET, "alice", &[Role::Operator], i64::MAX);
                let mut bytes = token.clone().into_bytes();
                let i = at.index(bytes.len());
                bytes[i] = byte;
                let Ok(changed) = String::from_utf8(bytes) else { return Ok(()) };
                if let Ok(caller) = verify_token(&changed, SECRET, 0) {
                    prop_assert_eq!(caller.principal, "alice");
                    prop_assert_eq!(caller.roles, BTreeSet::from([Role::Operator]));
                }
            }
        }
    }
}
