//! RBAC evaluation as kube-apiserver's RBAC authorizer does it: a request is allowed when any
//! rule of any role bound to the user (ClusterRoleBindings everywhere, RoleBindings in the
//! request's namespace) covers its verb, API group, resource (with subresource, e.g.
//! `services/status`) and, for rules listing `resourceNames`, its object name. There are no deny
//! rules. `system:masters` is never restricted.

use serde_json::Value;

use super::auth::UserInfo;
use super::errors::{ApiError, qualified};
use super::store::Store;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What a request wants to do, in RBAC's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// `resource` or `resource/subresource`, the form rules name.
    fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The RBAC verb of an HTTP request on a resource.
pub fn verb(method: &http::Method, has_name: bool, watch: bool) -> &'static str {
    match (method.as_str(), has_name) {
        ("GET" | "HEAD", _) if watch => "watch",
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether one PolicyRule allows the request (upstream `RuleAllows`).
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !has(&strings(rule, "verbs"), &a.verb) || !has(&strings(rule, "apiGroups"), &a.api_group) {
        return false;
    }
    let full = a.full_resource();
    let resources = strings(rule, "resources");
    let resource_ok = resources.iter().any(|r| {
        r == "*"
            || *r == full
            // `*/status` covers the status subresource of every resource.
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || names.contains(&a.name)
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let field = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or_default();
    match field("kind") {
        "User" => field("name") == user.name,
        "Group" => user.groups.iter().any(|g| g == field("name")),
        "ServiceAccount" => {
            // A RoleBinding's ServiceAccount subject without a namespace means its own.
            let ns = match field("namespace") {
                "" => binding_ns,
                n => n,
            };
            user.name == UserInfo::service_account_name(ns, field("name"))
        }
        _ => false,
    }
}

/// The rules of the role a binding refers to; `Err` carries upstream's not-found text, which
/// ends up in the 403's reason.
fn role_rules(store: &Store, binding: &Value, binding_ns: &str) -> Result<Vec<Value>, String> {
    let kind = binding
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = binding
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let role = match kind {
        "ClusterRole" => store.get(RBAC_GROUP, "clusterroles", None, name),
        "Role" => store.get(RBAC_GROUP, "roles", Some(binding_ns), name),
        _ => return Err(format!("unsupported roleRef kind {kind:?}")),
    };
    match role {
        Ok(r) => Ok(r
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()),
        Err(_) => Err(format!(
            "{}.{RBAC_GROUP} \"{name}\" not found",
            kind.to_lowercase()
        )),
    }
}

/// Allows the request or answers 403 with upstream's message.
pub fn authorize(store: &Store, user: &UserInfo, a: &Attributes) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    let mut errors = Vec::new();
    let mut bindings: Vec<(String, std::sync::Arc<Value>)> = store
        .list(RBAC_GROUP, "clusterrolebindings", None)
        .0
        .into_iter()
        .map(|b| (String::new(), b))
        .collect();
    if !a.namespace.is_empty() {
        bindings.extend(
            store
                .list(RBAC_GROUP, "rolebindings", Some(&a.namespace))
                .0
                .into_iter()
                .map(|b| (a.namespace.clone(), b)),
        );
    }
    for (ns, binding) in bindings {
        let subjects = binding
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, &ns)) {
            continue;
        }
        match role_rules(store, &binding, &ns) {
            Ok(rules) if rules.iter().any(|r| rule_allows(r, a)) => return Ok(()),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    let reason = if errors.is_empty() {
        String::new()
    } else {
        format!("RBAC: [{}]", errors.join(", "))
    };
    Err(forbidden(user, a, &reason))
}

/// 403 as kube-apiserver words it (`responsewriters.forbiddenMessage` + `NewForbidden`).
pub fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let mut detail = format!(
        "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.name,
        a.verb,
        a.full_resource(),
        a.api_group
    );
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    let what = qualified(&a.resource, &a.api_group);
    let message = if a.name.is_empty() {
        format!("{what} is forbidden: {detail}")
    } else {
        format!("{what} \"{}\" is forbidden: {detail}", a.name)
    };
    ApiError::new(403, "Forbidden", message)
        .with_details(serde_json::json!({"name": a.name, "group": a.api_group, "kind": a.resource}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, res: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: res.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn rules() {
        let svc = json!({"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]});
        let status =
            json!({"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]});
        let lease = json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                           "resourceNames": ["lock"], "verbs": ["get", "update"]});
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        let any_status = json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]});
        let cases: &[(&Value, Attributes, bool)] = &[
            (&svc, attrs("list", "", "services", "", "", ""), true),
            (&svc, attrs("get", "", "services", "", "a", "web"), true),
            (&svc, attrs("watch", "", "services", "", "", ""), false),
            (
                &svc,
                attrs("get", "", "services", "status", "a", "web"),
                false,
            ),
            (
                &svc,
                attrs("get", "apps", "services", "", "a", "web"),
                false,
            ),
            (
                &status,
                attrs("patch", "", "services", "status", "a", "web"),
                true,
            ),
            (
                &status,
                attrs("patch", "", "services", "", "a", "web"),
                false,
            ),
            (
                &lease,
                attrs("get", "coordination.k8s.io", "leases", "", "k", "lock"),
                true,
            ),
            (
                &lease,
                attrs("get", "coordination.k8s.io", "leases", "", "k", "other"),
                false,
            ),
            // resourceNames cannot restrict list or create (no name in the request).
            (
                &lease,
                attrs("create", "coordination.k8s.io", "leases", "", "k", ""),
                false,
            ),
            (
                &star,
                attrs("delete", "x.io", "widgets", "", "k", "w"),
                true,
            ),
            (
                &any_status,
                attrs("get", "", "pods", "status", "k", "p"),
                true,
            ),
            (&any_status, attrs("get", "", "pods", "", "k", "p"), false),
        ];
        for (rule, a, want) in cases {
            assert_eq!(rule_allows(rule, a), *want, "{rule} {a:?}");
        }
    }

    #[test]
    fn verbs_from_requests() {
        use http::Method;
        assert_eq!(verb(&Method::GET, false, false), "list");
        assert_eq!(verb(&Method::GET, false, true), "watch");
        assert_eq!(verb(&Method::GET, true, false), "get");
        assert_eq!(verb(&Method::DELETE, false, false), "deletecollection");
        assert_eq!(verb(&Method::PUT, true, false), "update");
    }

    fn seed(store: &Store) {
        for ns in ["fd", "other"] {
            store
                .create(
                    "",
                    "namespaces",
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                )
                .unwrap();
        }
        for (plural, obj) in [
            (
                "clusterroles",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]}),
            ),
            (
                "clusterrolebindings",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "ctl", "namespace": "fd"}]}),
            ),
            (
                "roles",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "leases", "namespace": "fd"},
                "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]}),
            ),
            (
                "rolebindings",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "leases", "namespace": "fd"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "leases"},
                "subjects": [{"kind": "ServiceAccount", "name": "ctl"}]}),
            ),
            (
                "rolebindings",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "dangling", "namespace": "other"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "gone"},
                "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}),
            ),
        ] {
            store.create(RBAC_GROUP, plural, obj).unwrap();
        }
    }

    #[test]
    fn bindings_grant_and_forbid_with_upstream_messages() {
        let store = Store::default();
        seed(&store);
        let user = UserInfo {
            name: "system:serviceaccount:fd:ctl".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
        };
        authorize(&store, &user, &attrs("list", "", "services", "", "", "")).unwrap();
        authorize(&store, &user, &attrs("list", "", "services", "", "x", "")).unwrap();
        let lease = attrs("create", "coordination.k8s.io", "leases", "", "fd", "");
        authorize(&store, &user, &lease).unwrap();
        let e = authorize(&store, &user, &attrs("list", "", "secrets", "", "", "")).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"system:serviceaccount:fd:ctl\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
        );
        let e = authorize(
            &store,
            &user,
            &attrs("patch", "", "services", "status", "web", "a"),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "services \"a\" is forbidden: User \"system:serviceaccount:fd:ctl\" cannot patch resource \"services/status\" in API group \"\" in the namespace \"web\""
        );
        // The Role is in `fd`: no lease rights elsewhere; a dangling binding names its role.
        let e = authorize(
            &store,
            &user,
            &attrs("create", "coordination.k8s.io", "leases", "", "other", ""),
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("leases.coordination.k8s.io is forbidden"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .ends_with(": RBAC: [role.rbac.authorization.k8s.io \"gone\" not found]"),
            "{}",
            e.message
        );
        let admin = UserInfo {
            name: "root".into(),
            groups: vec![super::super::auth::MASTERS_GROUP.into()],
        };
        authorize(
            &store,
            &admin,
            &attrs("delete", "", "secrets", "", "x", "y"),
        )
        .unwrap();
    }
}
