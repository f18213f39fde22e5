//! The authentication and RBAC hook of the HTTP front, active only when the sandbox was started
//! with enforcement on. Health endpoints stay open (kubelet-style probes carry no token); the
//! discovery, OpenAPI and version documents need any authenticated user, as upstream's
//! `system:discovery` / `system:public-info-viewer` bindings grant them to
//! `system:authenticated`; every resource request goes through RBAC.

use serde_json::Value;

use super::path::Route;
use super::{App, Req};
use crate::kube::auth::{AuditEntry, UserInfo};
use crate::kube::errors::ApiError;
use crate::kube::rbac::{self, Attributes};

fn is_health(path: &str) -> bool {
    ["/healthz", "/readyz", "/livez"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// `Ok(None)` when enforcement is off or the path needs no identity; the user otherwise.
pub(super) fn check(app: &App, path: &str, req: &Req) -> Result<Option<UserInfo>, ApiError> {
    let Some(auth) = &app.auth else {
        return Ok(None);
    };
    if is_health(path) {
        return Ok(None);
    }
    let user = auth.authenticate(&app.store, &req.headers)?;
    if let Some(route) = Route::parse(path)
        && let Some(plural) = &route.plural
    {
        let watch = route.watch || req.query.flag("watch");
        let attrs = Attributes {
            verb: rbac::verb(&req.method, route.name.is_some(), watch).to_string(),
            api_group: route.group.clone(),
            resource: plural.clone(),
            subresource: route.sub.clone().unwrap_or_default(),
            namespace: route.namespace.clone().unwrap_or_default(),
            name: route.name.clone().unwrap_or_default(),
        };
        let decision = rbac::authorize(&app.store, &user, &attrs);
        auth.record(AuditEntry {
            user: user.name.clone(),
            verb: attrs.verb,
            api_group: attrs.api_group,
            resource: match &route.sub {
                Some(sub) => format!("{plural}/{sub}"),
                None => plural.clone(),
            },
            namespace: attrs.namespace,
            name: attrs.name,
            allowed: decision.is_ok(),
        });
        decision?;
    }
    Ok(Some(user))
}

/// `POST .../serviceaccounts/{name}/token` (TokenRequest, what `kubectl create token` sends).
/// The request body (JSON or protobuf) only carries audiences and a lifetime, which the sandbox
/// does not use, so it is not decoded.
pub(super) fn token_request(app: &App, route: &Route) -> Option<Result<Value, ApiError>> {
    let auth = app.auth.as_ref()?;
    if route.group.is_empty()
        && route.plural.as_deref() == Some("serviceaccounts")
        && route.sub.as_deref() == Some("token")
    {
        let ns = route.namespace.as_deref().unwrap_or("default");
        let name = route.name.as_deref().unwrap_or_default();
        return Some(auth.token_request(&app.store, ns, name));
    }
    None
}
