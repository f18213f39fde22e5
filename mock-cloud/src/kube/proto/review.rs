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

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};

    use super::*;
    use crate::kube::rbac::RBAC_GROUP;

    fn review(verb: &str, resource: &str, namespace: &str) -> Value {
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                                               "namespace": namespace}}})
    }

    #[test]
    fn answers_from_rbac_when_enforced_and_allows_otherwise() {
        let store = Store::default();
        store
            .create(
                "",
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fd"}}),
            )
            .unwrap();
        store
            .create(
                "",
                "serviceaccounts",
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "ctl", "namespace": "fd"}}),
            )
            .unwrap();
        store
            .create(
                RBAC_GROUP,
                "roles",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": "pods", "namespace": "fd"},
                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            )
            .unwrap();
        store
            .create(
                RBAC_GROUP,
                "rolebindings",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "pods", "namespace": "fd"},
                       "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "pods"},
                       "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "fd"}]}),
            )
            .unwrap();
        let auth = Authenticator::new();
        let token = auth.issue(&store, "fd", "ctl").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let cases = [
            (review("get", "pods", "fd"), true),
            (review("delete", "pods", "fd"), false),
            (review("get", "pods", "other"), false),
            (review("get", "secrets", "fd"), false),
        ];
        for (r, want) in &cases {
            let status = evaluate(&store, Some(&auth), &headers, r).unwrap();
            assert_eq!(status["allowed"], *want, "{r}");
            // Without enforcement everything is allowed.
            let open = evaluate(&store, None, &HeaderMap::new(), r).unwrap();
            assert_eq!(open["allowed"], true);
        }
        // No token at all: 401, as for any request.
        let e = evaluate(&store, Some(&auth), &HeaderMap::new(), &cases[0].0).unwrap_err();
        assert_eq!(e.code, 401);
        let empty = json!({"kind": "SelfSubjectAccessReview", "spec": {}});
        let e = evaluate(&store, None, &headers, &empty).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("exactly one of"), "{}", e.message);
    }
}
