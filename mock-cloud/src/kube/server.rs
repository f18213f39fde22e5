//! The HTTP front of the sandbox API server (axum, HTTP/1.1). One fallback handler parses the
//! Kubernetes path grammar itself (`/api/v1/namespaces/{ns}/{plural}/{name}/{sub}`, the
//! `/apis/{group}/{version}` form, the legacy `watch/` prefix), because the route table changes
//! at run time with every CRD. Every error is answered as a `Status` object.

mod access;
#[cfg(test)]
mod kubectl_tests;
mod path;
mod read;
#[cfg(test)]
mod tests;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::errors::ApiError;
use super::store::Store;
use super::{discovery, openapi};
use path::{Query, Route};

/// Largest request body accepted (upstream's limit is 3 MiB for objects).
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Tuning of the HTTP front.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Idle time after which a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` stays open (upstream: 30–60 min).
    pub default_watch_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
            default_watch_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Shared state of all handlers.
pub struct App {
    pub store: Store,
    pub config: ServerConfig,
    /// Cancelled at shutdown, so open watches end and graceful shutdown can finish.
    pub shutdown: CancellationToken,
    /// Token authentication + RBAC; `None` serves everyone (the default).
    pub auth: Option<Arc<super::auth::Authenticator>>,
}

/// The router serving the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// What the server reports at `/version`: the minor picks the kubectl build of Google's
/// dispatcher, so it must be one it bundles (1.32).
pub fn version_info() -> serde_json::Value {
    serde_json::json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A JSON reply.
pub(crate) fn json_reply<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    json_typed(status, body, "application/json")
}

pub(crate) fn json_typed<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    content_type: &str,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            if let Ok(v) = HeaderValue::from_str(content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        Err(e) => error_reply(&ApiError::internal(e)),
    }
}

/// A `Status` reply for an error.
pub(crate) fn error_reply(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_reply(status, &e.to_status())
}

fn text_reply(body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The request as the resource handlers need it.
pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    pub body: bytes::Bytes,
}

impl Req {
    pub fn wants_table(&self) -> bool {
        accept(&self.headers).contains("as=Table")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// `fieldManager`, else the first User-Agent token (`kubectl/v1.32.4 ...` → `kubectl`).
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match ua
            .split('/')
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(p) => p.to_string(),
            None => "unknown".to_string(),
        }
    }
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(&parts.uri);
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            return error_reply(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("request body too large: {e}"),
            ));
        }
    };
    let req = Req {
        method: parts.method,
        headers: parts.headers,
        query,
        body,
    };
    let trimmed = path.trim_end_matches('/');
    if let Err(e) = access::check(&app, trimmed, &req) {
        return error_reply(&e);
    }
    match trimmed {
        "/version" => json_reply(StatusCode::OK, &version_info()),
        "/healthz" | "/readyz" | "/livez" => text_reply("ok"),
        p if p.starts_with("/healthz/")
            || p.starts_with("/readyz/")
            || p.starts_with("/livez/") =>
        {
            text_reply("ok")
        }
        "/api" | "/apis" => discovery_root(&app, &req, trimmed == "/api"),
        "/openapi/v2" => {
            let mut r = (StatusCode::OK, Body::empty()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(openapi::V2_CONTENT_TYPE),
            );
            r
        }
        "/openapi/v3" => json_reply(StatusCode::OK, &openapi::root(&app.store.resources())),
        p if p.starts_with("/openapi/v3/") => openapi_doc(&app, &req, &p["/openapi/v3/".len()..]),
        _ => match Route::parse(trimmed) {
            Some(route) => resource(&app, route, req).await,
            None => error_reply(&ApiError::unknown_path()),
        },
    }
}

fn discovery_root(app: &App, req: &Req, core: bool) -> Response {
    let resources = app.store.resources();
    if accept(&req.headers).contains("as=APIGroupDiscoveryList") {
        let body = discovery::aggregated(&resources, core);
        return json_typed(StatusCode::OK, &body, discovery::AGGREGATED_CONTENT_TYPE);
    }
    let body = if core {
        discovery::legacy_api_versions()
    } else {
        discovery::legacy_group_list(&resources)
    };
    json_reply(StatusCode::OK, &body)
}

fn openapi_doc(app: &App, req: &Req, path: &str) -> Response {
    match openapi::group_version(&app.store.resources(), path) {
        Some(doc) => {
            let mut r = json_reply(StatusCode::OK, &doc);
            // Hashed URLs name one content forever: let kubectl cache them on disk.
            if let Some(hash) = req.query.get("hash").filter(|h| !h.is_empty()) {
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                    r.headers_mut().insert(header::ETAG, v);
                }
            }
            r
        }
        None => error_reply(&ApiError::unknown_path()),
    }
}

async fn resource(app: &App, route: Route, req: Req) -> Response {
    let Some(plural) = route.plural.clone() else {
        // `/api/v1`, `/apis/{g}`, `/apis/{g}/{v}`: discovery documents.
        let resources = app.store.resources();
        let doc = match &route.version {
            Some(v) => discovery::resource_list(&resources, &route.group, v),
            None => discovery::legacy_group(&resources, &route.group),
        };
        return match doc {
            Some(d) if req.method == Method::GET => json_reply(StatusCode::OK, &d),
            Some(_) => error_reply(&ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
            None => error_reply(&ApiError::unknown_path()),
        };
    };
    if let Some(reply) = write::access_review(app, &route, &req) {
        return reply;
    }
    let version = route.version.clone().unwrap_or_default();
    let Some(info) = app.store.resource_at(&route.group, &version, &plural) else {
        return error_reply(&ApiError::unknown_path());
    };
    // Scope checks: a cluster-scoped resource has no namespace; a namespaced item needs one.
    if (!info.namespaced && route.namespace.is_some())
        || (info.namespaced && route.namespace.is_none() && route.name.is_some())
    {
        return error_reply(&ApiError::unknown_path());
    }
    if req.method == Method::POST
        && let Some(reply) = access::token_request(app, &route)
    {
        return match reply {
            Ok(v) => json_reply(StatusCode::CREATED, &v),
            Err(e) => error_reply(&e),
        };
    }
    let status_sub = match route.sub.as_deref() {
        None => false,
        Some("status") if info.status_subresource => true,
        Some(_) => return error_reply(&ApiError::unknown_path()),
    };
    let result = match (&req.method, &route.name) {
        (&Method::GET, None) => read::list(app, &info, &route, &req),
        (&Method::GET, Some(name)) => read::get(app, &info, &route, name, &req),
        (&Method::POST, None) => write::create(app, &info, &route, &req),
        (&Method::DELETE, None) => write::delete_collection(app, &info, &route, &req),
        (&Method::PUT, Some(name)) => write::replace(app, &info, &route, name, status_sub, &req),
        (&Method::PATCH, Some(name)) => write::patch(app, &info, &route, name, status_sub, &req),
        (&Method::DELETE, Some(name)) if !status_sub => {
            write::delete(app, &info, &route, name, &req)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    };
    result.unwrap_or_else(|e| error_reply(&e))
}
