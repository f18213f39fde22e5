//! Bearer-token authentication of the sandbox API, switched on with RBAC enforcement.
//!
//! Two kinds of token exist. The admin token (printed into the sandbox's own kubeconfig) maps
//! to a user in `system:masters`, which RBAC never restricts, as on a real cluster. ServiceAccount
//! tokens are issued on request (the TokenRequest subresource `serviceaccounts/<name>/token`, what
//! `kubectl create token` calls, or [`Authenticator::issue`]) and map to the user
//! `system:serviceaccount:<namespace>:<name>` with upstream's groups. A token stops working when
//! its ServiceAccount is deleted (or recreated with another UID), like upstream's bound tokens.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

use http::{HeaderMap, header};
use rand::Rng;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::store::Store;

/// The user behind the admin token.
pub const ADMIN_USER: &str = "sandbox-admin";
/// The group RBAC never restricts.
pub const MASTERS_GROUP: &str = "system:masters";
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
const SA_PREFIX: &str = "system:serviceaccount:";
/// Lifetime written into TokenRequest replies (tokens here do not expire; clients only show it).
const TOKEN_SECONDS: i64 = 3600;

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    /// The user name of a ServiceAccount.
    pub fn service_account_name(namespace: &str, name: &str) -> String {
        format!("{SA_PREFIX}{namespace}:{name}")
    }

    fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: Self::service_account_name(namespace, name),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED_GROUP.to_string(),
            ],
        }
    }
}

/// One authorization decision, kept so tests can prove a role is enough (no denial) and not
/// more (every granted verb was used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub user: String,
    pub verb: String,
    pub api_group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
}

/// Decisions kept; older ones are dropped.
const AUDIT_LIMIT: usize = 20_000;

#[derive(Clone, Debug)]
struct Bound {
    namespace: String,
    name: String,
    uid: String,
}

/// Maps bearer tokens to users.
#[derive(Debug)]
pub struct Authenticator {
    admin_token: String,
    tokens: RwLock<HashMap<String, Bound>>,
    audit: Mutex<VecDeque<AuditEntry>>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn random_token(prefix: &str) -> String {
    let mut rng = rand::rng();
    let a: u128 = rng.random();
    format!("{prefix}.{a:032x}")
}

/// 401 as kube-apiserver sends it.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            admin_token: random_token("sandbox-admin"),
            tokens: RwLock::new(HashMap::new()),
            audit: Mutex::new(VecDeque::new()),
        }
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Remembers a decision on a resource request (the admin's are not kept).
    pub fn record(&self, entry: AuditEntry) {
        if entry.user == ADMIN_USER {
            return;
        }
        let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        if audit.len() >= AUDIT_LIMIT {
            audit.pop_front();
        }
        audit.push_back(entry);
    }

    /// Every remembered decision, oldest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        let audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        audit.iter().cloned().collect()
    }

    /// A new token for the ServiceAccount `namespace/name`, which must exist (404 otherwise).
    pub fn issue(&self, store: &Store, namespace: &str, name: &str) -> Result<String, ApiError> {
        let sa = store.get("", "serviceaccounts", Some(namespace), name)?;
        let uid = sa
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let token = random_token("sandbox-sa");
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        tokens.insert(
            token.clone(),
            Bound {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid,
            },
        );
        Ok(token)
    }

    /// The TokenRequest reply (`authentication.k8s.io/v1`) for a freshly issued token.
    pub fn token_request(
        &self,
        store: &Store,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let token = self.issue(store, namespace, name)?;
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::seconds(TOKEN_SECONDS);
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace,
                         "creationTimestamp": now.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
            "spec": {"audiences": ["https://kubernetes.default.svc"],
                     "expirationSeconds": TOKEN_SECONDS, "boundObjectRef": null},
            "status": {"token": token,
                       "expirationTimestamp": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
        }))
    }

    /// The user a request's `Authorization: Bearer` header names; 401 for none or an unknown or
    /// revoked token.
    pub fn authenticate(&self, store: &Store, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)?;
        if token == self.admin_token {
            return Ok(UserInfo {
                name: ADMIN_USER.to_string(),
                groups: vec![MASTERS_GROUP.to_string(), AUTHENTICATED_GROUP.to_string()],
            });
        }
        let bound = {
            let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
            tokens.get(token).cloned().ok_or_else(unauthorized)?
        };
        // Bound tokens die with their ServiceAccount.
        let live = store
            .get("", "serviceaccounts", Some(&bound.namespace), &bound.name)
            .map_err(|_| unauthorized())?;
        let uid = live.pointer("/metadata/uid").and_then(Value::as_str);
        if uid.unwrap_or_default() != bound.uid {
            return Err(unauthorized());
        }
        Ok(UserInfo::service_account(&bound.namespace, &bound.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        h
    }

    fn store_with_sa() -> Store {
        let store = Store::default();
        store
            .create(
                "",
                "serviceaccounts",
                json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "ctl", "namespace": "default"}}),
            )
            .unwrap();
        store
    }

    #[test]
    fn tokens_map_to_users() {
        let store = store_with_sa();
        let auth = Authenticator::new();
        let admin = auth
            .authenticate(&store, &bearer(auth.admin_token()))
            .unwrap();
        assert!(admin.is_master());
        let t = auth.issue(&store, "default", "ctl").unwrap();
        let u = auth.authenticate(&store, &bearer(&t)).unwrap();
        assert_eq!(u.name, "system:serviceaccount:default:ctl");
        assert!(
            u.groups
                .contains(&"system:serviceaccounts:default".to_string())
        );
        assert!(!u.is_master());
    }

    #[test]
    fn missing_unknown_and_revoked_tokens_are_401() {
        let store = store_with_sa();
        let auth = Authenticator::new();
        assert_eq!(
            auth.authenticate(&store, &HeaderMap::new())
                .unwrap_err()
                .code,
            401
        );
        assert_eq!(
            auth.authenticate(&store, &bearer("nope")).unwrap_err().code,
            401
        );
        assert_eq!(
            auth.issue(&store, "default", "ghost").unwrap_err().code,
            404
        );
        let t = auth.issue(&store, "default", "ctl").unwrap();
        store
            .delete("", "serviceaccounts", Some("default"), "ctl")
            .unwrap();
        assert_eq!(
            auth.authenticate(&store, &bearer(&t)).unwrap_err().code,
            401
        );
    }
}
