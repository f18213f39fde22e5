//! The AWS front: ELBv2 (API version 2015-12-01) and the EC2 subset a load-balancer provider
//! uses (2016-11-15), over the real wire protocol (AWS Query: `POST /`, form body, XML reply), so
//! the real `aws-sdk-elasticloadbalancingv2` / `aws-sdk-ec2` clients work against it through an
//! endpoint override.
//!
//! The service is told apart by the `Version` field (then the SigV4 credential scope, then the
//! action name). Every call passes the shared [`Faults`] (latency, the P-aws buckets of
//! [`buckets`], injections) and lands in the call log with operation = the action name.
//! Throttled calls answer as AWS does: ELBv2 400 `ThrottlingException` "Rate exceeded", EC2 503
//! `RequestLimitExceeded`.
//!
//! Admin (not throttled, not logged): `/_admin/calls`, `/_admin/faults` (see
//! [`crate::faults::admin_router`]) and `GET /_admin/state` (every LB, TG, listener, SG with tags).

pub mod buckets;
mod ec2;
mod elbv2;
mod elbv2_tg;
pub mod query;
pub mod xml;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::{self, CallInfo, Fault, Faults};
use crate::state::Instances;
use query::Params;

/// The region the front plays; instance zones (`state::AWS_ZONES`) are in it.
pub const REGION: &str = "us-east-1";

#[derive(Clone, Debug)]
pub struct AwsConfig {
    pub account_id: String,
    /// Seeded subnets carry `kubernetes.io/cluster/<name>=shared` for each of these.
    pub cluster_names: Vec<String>,
    /// `TooManyLoadBalancers` beyond this many (AWS's default quota is 50 NLBs per region);
    /// `None` = unlimited, so large benchmarks are not capped.
    pub max_load_balancers: Option<usize>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            account_id: "123456789012".to_string(),
            cluster_names: vec!["sandbox".to_string(), "test".to_string()],
            max_load_balancers: None,
        }
    }
}

/// An AWS error as the wire shows it: HTTP status, code (no `Exception` suffix), message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// ELBv2's generic bad-input code.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", message)
    }

    /// EC2's generic bad-input code.
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", message)
    }
}

/// Everything both services keep, under one lock so cross-service checks (an SG in use by an
/// LB) see one consistent state.
#[derive(Debug)]
pub(crate) struct AwsState {
    pub elb: elbv2::ElbState,
    pub ec2: ec2::Ec2State,
    counter: u64,
}

impl AwsState {
    /// Deterministic, well-spread hex ids (splitmix64 of a counter).
    pub fn hex(&mut self, digits: usize) -> String {
        self.counter += 1;
        let mut z = self.counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let full = format!("{z:016x}{:016x}", z.rotate_left(17) ^ self.counter);
        full[..digits.min(32)].to_string()
    }
}

/// What an operation may read besides the state.
pub(crate) struct Env<'a> {
    pub instances: &'a Instances,
    pub faults: &'a Faults,
    pub config: &'a AwsConfig,
    pub now: Instant,
}

/// The AWS front's state plus its fault layer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AwsCloud {
    state: Arc<Mutex<AwsState>>,
    instances: Instances,
    faults: Faults,
    config: Arc<AwsConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Elb,
    Ec2,
}

impl AwsCloud {
    pub fn new(instances: Instances, faults: Faults, config: AwsConfig) -> Self {
        let state = AwsState {
            elb: elbv2::ElbState::default(),
            ec2: ec2::Ec2State::seeded(&config),
            counter: 0,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            instances,
            faults,
            config: Arc::new(config),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn lock(&self) -> MutexGuard<'_, AwsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The seeded VPC's id.
    pub fn vpc_id(&self) -> String {
        ec2::VPC_ID.to_string()
    }

    /// Every ELBv2 and EC2 object with its tags, as JSON (for tests asserting "nothing left").
    pub fn snapshot(&self) -> serde_json::Value {
        let now = Instant::now();
        let state = self.lock();
        let mut out = elbv2::snapshot(&state, &self.instances, now);
        out["security_groups"] = ec2::snapshot_groups(&state.ec2);
        out
    }

    /// Run one parsed request: returns (status, body).
    async fn call(&self, params: Params, headers: &HeaderMap) -> (u16, String) {
        let request_id = uuid::Uuid::new_v4().to_string();
        let action = params.get("Action").unwrap_or_default().to_string();
        let service = detect(&params, headers, &action);
        let (buckets, mutating) = match service {
            Service::Elb => buckets::elb_buckets(&action),
            Service::Ec2 => buckets::ec2_buckets(&action, &params),
        };
        let (target, detail) = describe_call(&params);
        let call = CallInfo {
            operation: if action.is_empty() {
                "(missing Action)".to_string()
            } else {
                action.clone()
            },
            target,
            detail,
            mutating,
            buckets,
        };
        if let Err(fault) = self.faults.admit(&call).await {
            let err = fault_error(service, &fault);
            self.faults.record(&call, err.status);
            return (err.status, render_error(service, &err, &request_id));
        }
        let result = if action.is_empty() {
            Err(AwsError::new(
                "MissingAction",
                "the request must contain the parameter Action",
            ))
        } else {
            let env = Env {
                instances: &self.instances,
                faults: &self.faults,
                config: &self.config,
                now: Instant::now(),
            };
            let mut state = self.lock();
            match service {
                Service::Elb => elbv2::dispatch(&mut state, &env, &action, &params),
                Service::Ec2 => ec2::dispatch(&mut state, &env, &action, &params),
            }
        };
        match result {
            Ok(inner) => {
                self.faults.record(&call, 200);
                let body = match service {
                    Service::Elb => xml::elb_response(&action, &inner, &request_id),
                    Service::Ec2 => xml::ec2_response(&action, &inner, &request_id),
                };
                (200, body)
            }
            Err(err) => {
                self.faults.record(&call, err.status);
                (err.status, render_error(service, &err, &request_id))
            }
        }
    }
}

fn detect(params: &Params, headers: &HeaderMap, action: &str) -> Service {
    match params.get("Version") {
        Some("2016-11-15") => return Service::Ec2,
        Some("2015-12-01") => return Service::Elb,
        _ => {}
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth.contains("/ec2/aws4_request") {
        return Service::Ec2;
    }
    if auth.contains("/elasticloadbalancing/aws4_request") {
        return Service::Elb;
    }
    if ec2::ACTIONS.contains(&action) {
        Service::Ec2
    } else {
        Service::Elb
    }
}

/// The call log's target (the first id-like field) and detail (targets, rules, tags).
fn describe_call(p: &Params) -> (String, String) {
    let keys = [
        "Name",
        "LoadBalancerArn",
        "TargetGroupArn",
        "ListenerArn",
        "GroupId",
        "GroupName",
    ];
    let target = keys
        .iter()
        .find_map(|k| p.nonempty(k))
        .unwrap_or_default()
        .to_string();
    let mut detail = Vec::new();
    let targets: Vec<String> = p
        .structs("Targets")
        .iter()
        .map(|t| match t.get("Port") {
            Some(port) => format!("{}:{port}", t.get("Id").unwrap_or_default()),
            None => t.get("Id").unwrap_or_default().to_string(),
        })
        .collect();
    if !targets.is_empty() {
        detail.push(format!("targets={}", targets.join(",")));
    }
    for list in [
        "Names",
        "LoadBalancerArns",
        "TargetGroupArns",
        "ResourceArns",
    ] {
        let items = p.list(list);
        if !items.is_empty() {
            detail.push(format!("{list}={}", items.join(",")));
        }
    }
    for list in ["GroupId", "SubnetId", "InstanceId", "ResourceId"] {
        let items = p.list(list);
        if !items.is_empty() {
            detail.push(format!("{list}={}", items.join(",")));
        }
    }
    for key in ["Port", "Protocol", "Scheme"] {
        if let Some(v) = p.nonempty(key) {
            detail.push(format!("{key}={v}"));
        }
    }
    let perms = p.structs("IpPermissions");
    if !perms.is_empty() {
        let rules: Vec<String> = perms
            .iter()
            .map(|r| {
                let cidrs: Vec<String> = r
                    .structs("IpRanges")
                    .iter()
                    .filter_map(|c| c.get("CidrIp").map(str::to_string))
                    .chain(
                        r.structs("Ipv6Ranges")
                            .iter()
                            .filter_map(|c| c.get("CidrIpv6").map(str::to_string)),
                    )
                    .collect();
                format!(
                    "{}/{}-{}/{}",
                    r.get("IpProtocol").unwrap_or_default(),
                    r.get("FromPort").unwrap_or_default(),
                    r.get("ToPort").unwrap_or_default(),
                    cidrs.join("+")
                )
            })
            .collect();
        detail.push(format!("rules={}", rules.join(",")));
    }
    (target, detail.join(" "))
}

/// How a refused call looks on the wire.
fn fault_error(service: Service, fault: &Fault) -> AwsError {
    let throttled = matches!(fault, Fault::Throttled { .. }) || fault.status() == 429;
    match (service, throttled, fault.status()) {
        (Service::Elb, true, _) => AwsError::new("ThrottlingException", "Rate exceeded"),
        (Service::Ec2, true, _) => AwsError {
            status: 503,
            code: "RequestLimitExceeded".into(),
            message: "Request limit exceeded.".into(),
        },
        (Service::Elb, false, 503) => AwsError {
            status: 503,
            code: "ServiceUnavailable".into(),
            message: "injected: service unavailable".into(),
        },
        (Service::Ec2, false, 503) => AwsError {
            status: 503,
            code: "Unavailable".into(),
            message: "injected: the server is overloaded".into(),
        },
        (Service::Elb, false, s) if s >= 500 => AwsError {
            status: s,
            code: "InternalFailure".into(),
            message: "injected: internal failure".into(),
        },
        (Service::Ec2, false, s) if s >= 500 => AwsError {
            status: s,
            code: "InternalError".into(),
            message: "injected: internal error".into(),
        },
        (_, false, s) => AwsError {
            status: s,
            code: "InjectedFault".into(),
            message: format!("injected fault with status {s}"),
        },
    }
}

fn render_error(service: Service, err: &AwsError, request_id: &str) -> String {
    match service {
        Service::Elb => xml::elb_error(err.status, &err.code, &err.message, request_id),
        Service::Ec2 => xml::ec2_error(&err.code, &err.message, request_id),
    }
}

async fn handle(
    AxState(cloud): AxState<AwsCloud>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The SDKs send everything in the body; a query string (hand-made requests) is merged in.
    let text = match (std::str::from_utf8(&body), raw) {
        (Ok(b), Some(q)) if !q.is_empty() => format!("{q}&{b}"),
        (Ok(b), _) => b.to_string(),
        (Err(_), _) => String::from("\u{0}"),
    };
    let (status, body) = match query::parse_form(&text) {
        Ok(params) => cloud.call(params, &headers).await,
        Err(e) => {
            let err = AwsError::new("MalformedQueryString", e.to_string());
            (
                400,
                xml::elb_error(400, &err.code, &err.message, "malformed"),
            )
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

async fn admin_state(AxState(cloud): AxState<AwsCloud>) -> Response {
    axum::Json(cloud.snapshot()).into_response()
}

/// The AWS API on `POST /` (and `POST /<any prefix>`), plus the admin endpoints.
pub fn router(cloud: AwsCloud) -> Router {
    let faults = cloud.faults().clone();
    Router::new()
        .route("/_admin/state", get(admin_state))
        .route("/", post(handle).get(handle))
        .route("/{*prefix}", post(handle))
        .with_state(cloud)
        .merge(faults::admin_router(faults))
}

#[derive(Debug, thiserror::Error)]
pub enum AwsFrontError {
    #[error("binding the AWS front to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the bound address of the AWS front")]
    LocalAddr(#[source] std::io::Error),
}

/// A running AWS front. Dropping the handle stops the server.
#[derive(Debug)]
pub struct AwsHandle {
    addr: SocketAddr,
    cloud: AwsCloud,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl AwsHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the endpoint URL for the SDK clients (both ELBv2 and EC2).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cloud(&self) -> &AwsCloud {
        &self.cloud
    }

    pub fn faults(&self) -> &Faults {
        self.cloud.faults()
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AwsHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Bind `listen` (port 0 picks a free one) and serve the AWS front in a background task.
pub async fn serve(
    listen: SocketAddr,
    instances: Instances,
    faults: Faults,
    config: AwsConfig,
) -> Result<AwsHandle, AwsFrontError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| AwsFrontError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(AwsFrontError::LocalAddr)?;
    let cloud = AwsCloud::new(instances, faults, config);
    let cancel = CancellationToken::new();
    let app = router(cloud.clone());
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "AWS front stopped");
        }
    });
    tracing::info!(%addr, "AWS front (ELBv2 + EC2) listening");
    Ok(AwsHandle {
        addr,
        cloud,
        cancel,
        task: Some(task),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sdk_tests;
