//! HTTP handlers of the generic cloud: every API call passes the fault layer (latency, buckets,
//! injections) and lands in the call log with the status it was answered with.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;

use super::model::{ApiError, BackendsRequest, CreateRequest, UpdateRequest};
use super::store::GenericCloud;
use crate::faults::{self, CallInfo, Fault};

/// Operation names, as they appear in the call log and as injection targets.
pub const OP_GET: &str = "GetLoadBalancer";
pub const OP_LIST: &str = "ListLoadBalancers";
pub const OP_CREATE: &str = "CreateLoadBalancer";
pub const OP_UPDATE: &str = "UpdateLoadBalancer";
pub const OP_DELETE: &str = "DeleteLoadBalancer";
pub const OP_BACKENDS: &str = "UpdateBackends";

/// Error code of a mutation refused because another one on the same load balancer is in
/// flight (profiles with `serialize_mutations`).
pub const CODE_ANOTHER_OPERATION: &str = "RetryableErrorDueToAnotherOperation";

/// The whole generic API plus its admin endpoints (`/_admin/...`).
pub fn router(cloud: GenericCloud) -> Router {
    let faults = cloud.faults().clone();
    Router::new()
        .route("/v1/loadbalancers", get(list).post(create))
        .route(
            "/v1/loadbalancers/{name}",
            get(get_one).put(update).delete(delete_one),
        )
        .route(
            "/v1/loadbalancers/{name}/backends",
            post(change_backends).delete(remove_backends),
        )
        .route(
            "/v1/loadbalancers/{name}/backends/remove",
            post(remove_backends),
        )
        .route("/_admin/state", get(admin_state))
        .route("/_admin/loadbalancers/{name}", delete(admin_delete))
        .route(
            "/_admin/loadbalancers/{name}/listeners/{port}",
            delete(admin_remove_listener),
        )
        .with_state(cloud)
        .merge(faults::admin_router(faults))
}

fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(err)).into_response()
}

fn fault_response(fault: &Fault) -> Response {
    let status = StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match (fault, fault.status()) {
        (Fault::Throttled { bucket, .. }, _) => (
            "Throttled",
            format!("rate exceeded for the {bucket} bucket"),
        ),
        // Azure's code for a resource locked by another operation; clients retry after
        // `Retry-After` like any 429.
        (Fault::AnotherOperation { target, .. }, _) => (
            CODE_ANOTHER_OPERATION,
            format!("another operation on {target:?} is in progress"),
        ),
        (_, 429) => ("Throttled", "rate exceeded".to_string()),
        (_, 404) => ("NotFound", "injected: not found".to_string()),
        (_, 409) => ("Conflict", "injected: conflict".to_string()),
        (_, 503) => (
            "ServiceUnavailable",
            "injected: service unavailable".to_string(),
        ),
        (_, s) if s >= 500 => ("InternalError", "injected: internal error".to_string()),
        _ => ("InjectedFault", "injected fault".to_string()),
    };
    let mut body = serde_json::json!({ "code": code, "message": message });
    if let Fault::Throttled { retry_after, .. } | Fault::AnotherOperation { retry_after, .. } =
        fault
    {
        body["retry_after_ms"] = serde_json::json!(retry_after.as_millis() as u64);
    }
    let mut resp = (status, Json(body)).into_response();
    if let Some(secs) = fault.retry_after_secs() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Admit, run, log, answer.
async fn answer<T: Serialize>(
    cloud: &GenericCloud,
    call: CallInfo,
    ok: StatusCode,
    op: impl FnOnce() -> Result<T, ApiError>,
) -> Response {
    if let Err(fault) = cloud.faults().admit(&call).await {
        cloud.faults().record(&call, fault.status());
        return fault_response(&fault);
    }
    match op() {
        Ok(value) => {
            cloud.faults().record(&call, ok.as_u16());
            if ok == StatusCode::NO_CONTENT {
                ok.into_response()
            } else {
                (ok, Json(value)).into_response()
            }
        }
        Err(err) => {
            cloud.faults().record(&call, err.status);
            error_response(&err)
        }
    }
}

fn body<T>(parsed: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    parsed
        .map(|Json(v)| v)
        .map_err(|e| ApiError::new(400, "InvalidRequest", e.body_text()))
}

async fn list(
    State(cloud): State<GenericCloud>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let call = CallInfo::generic(OP_LIST, "", false);
    answer(&cloud, call, StatusCode::OK, || {
        let mut tags = Vec::new();
        let (mut size, mut token) = (None, None);
        for (key, value) in &params {
            match key.as_str() {
                "tag" => {
                    let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                    tags.push((k.to_string(), v.to_string()));
                }
                "page_size" => {
                    size = Some(
                        value
                            .parse()
                            .map_err(|_| ApiError::invalid("page_size", "not a number"))?,
                    );
                }
                "page_token" => token = Some(value.clone()),
                _ => {}
            }
        }
        cloud.list(&tags, size, token.as_deref())
    })
    .await
}

async fn create(
    State(cloud): State<GenericCloud>,
    parsed: Result<Json<CreateRequest>, JsonRejection>,
) -> Response {
    let parsed = body(parsed);
    let target = parsed.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let detail = parsed
        .as_ref()
        .map(|r| {
            r.listeners
                .iter()
                .map(|l| format!("{}/{}", l.port, l.protocol))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let call =
        CallInfo::generic(OP_CREATE, &target, true).with_detail(format!("listeners={detail}"));
    answer(&cloud, call, StatusCode::CREATED, || cloud.create(parsed?)).await
}

async fn get_one(State(cloud): State<GenericCloud>, Path(name): Path<String>) -> Response {
    let mut call = CallInfo::generic(OP_GET, &name, false);
    // A read of a load balancer still provisioning is what polling its create operation
    // costs; profiles that give polls their own quota (GCE) charge it there.
    if let Some(bucket) = cloud.faults().operation_read_bucket()
        && !cloud.time_to_active(&name).is_zero()
    {
        call.buckets = vec![bucket];
    }
    answer(&cloud, call, StatusCode::OK, || cloud.get(&name)).await
}

async fn update(
    State(cloud): State<GenericCloud>,
    Path(name): Path<String>,
    parsed: Result<Json<UpdateRequest>, JsonRejection>,
) -> Response {
    let call = CallInfo::generic(OP_UPDATE, &name, true);
    answer(&cloud, call, StatusCode::OK, || {
        cloud.update(&name, body(parsed)?)
    })
    .await
}

async fn delete_one(State(cloud): State<GenericCloud>, Path(name): Path<String>) -> Response {
    let call = CallInfo::generic(OP_DELETE, &name, true);
    answer(&cloud, call, StatusCode::NO_CONTENT, || cloud.delete(&name)).await
}

async fn backends_call(
    cloud: &GenericCloud,
    name: &str,
    req: Result<BackendsRequest, ApiError>,
) -> Response {
    let detail = req
        .as_ref()
        .map(|r| format!("add={} remove={}", r.add.join(","), r.remove.join(",")))
        .unwrap_or_default();
    let call = CallInfo::generic(OP_BACKENDS, name, true).with_detail(detail);
    answer(cloud, call, StatusCode::OK, || cloud.backends(name, &req?)).await
}

/// `POST .../backends` `{add, remove}`: the whole delta in one call.
async fn change_backends(
    State(cloud): State<GenericCloud>,
    Path(name): Path<String>,
    parsed: Result<Json<BackendsRequest>, JsonRejection>,
) -> Response {
    backends_call(&cloud, &name, body(parsed)).await
}

/// `DELETE .../backends` or `POST .../backends/remove` `{remove}`: removals only.
async fn remove_backends(
    State(cloud): State<GenericCloud>,
    Path(name): Path<String>,
    parsed: Result<Json<BackendsRequest>, JsonRejection>,
) -> Response {
    let req = body(parsed).map(|r| BackendsRequest {
        add: Vec::new(),
        remove: r.remove,
    });
    backends_call(&cloud, &name, req).await
}

async fn admin_state(State(cloud): State<GenericCloud>) -> Response {
    Json(serde_json::json!({ "loadbalancers": cloud.all() })).into_response()
}

async fn admin_delete(State(cloud): State<GenericCloud>, Path(name): Path<String>) -> Response {
    match cloud.delete(&name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(&e),
    }
}

async fn admin_remove_listener(
    State(cloud): State<GenericCloud>,
    Path((name, port)): Path<(String, u16)>,
) -> Response {
    if cloud.remove_listener(&name, port) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error_response(&ApiError::new(
            404,
            "NotFound",
            format!("no listener {port} on {name:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn another_operation_is_a_429_with_azures_code() {
        let resp = fault_response(&Fault::AnotherOperation {
            target: "lb-1".into(),
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], CODE_ANOTHER_OPERATION);
        assert_eq!(body["retry_after_ms"], 1500);
    }
}
