//! `SelfSubjectAccessReview` (authorization.k8s.io/v1), what `kubectl auth can-i` creates. The
//! sandbox stores nothing: the answer is computed from the request. Without enforcement every
//! request is allowed; with it, the review runs the same RBAC evaluation the HTTP front uses.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::kube::auth::Authenticator;
use crate::kube::errors::ApiError;
use crate::kube::rbac::{self, Attributes};
use crate::kube::store::Store;

pub const GROUP: &str = "authorization.k8s.io";
pub const PLURAL: &str = "selfsubjectaccessreviews";

fn text(v: Option<&Value>, key: &str) -> String {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: {msg}"),
    )
}

/// The review's `status` (`allowed`, `reason`) for the request's own user.
pub fn evaluate(
    store: &Store,
    auth: Option<&Authenticator>,
    headers: &HeaderMap,
    review: &Value,
) -> Result<Value, ApiError> {
    let resource = review.pointer("/spec/resourceAttributes");
    let non_resource = review.pointer("/spec/nonResourceAttributes");
    if resource.is_some() == non_resource.is_some() {
        return Err(invalid(
            "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let Some(auth) = auth else {
        return Ok(json!({
            "allowed": true,
            "reason": "the sandbox does not enforce authorization (start it with RBAC enforcement to check permissions)",
        }));
    };
    let user = auth.authenticate(store, headers)?;
    if non_resource.is_some() {
        // The sandbox's RBAC evaluates resource requests only; non-resource URLs (/healthz,
        // /metrics, /version) are open to every authenticated user there.
        return Ok(json!({"allowed": true}));
    }
    let attrs = Attributes {
        verb: text(resource, "verb"),
        api_group: text(resource, "group"),
        resource: text(resource, "resource"),
        subresource: text(resource, "subresource"),
        namespace: text(resource, "namespace"),
        name: text(resource, "name"),
    };
    match rbac::authorize(store, &user, &attrs) {
        Ok(()) => Ok(json!({"allowed": true})),
        // Upstream's RBAC authorizer gives no reason when no rule matches.
        Err(e) if e.code == 403 => Ok(json!({"allowed": false})),
        Err(e) => Err(e),
    }
}
