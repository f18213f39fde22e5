//! The built-in resource types the sandbox serves, with upstream names, short names and
//! categories (kubectl resolves `svc`, `all`, ... from discovery), plus the small built-in
//! strategies that need no allocator (namespaces).

use serde_json::{Value, json};

use super::errors::ApiError;
use super::rbac::RBAC_GROUP;
use super::resources::ResourceInfo;
use super::strategy::{Strategy, WriteCtx};

/// The verbs every built-in resource supports.
pub const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_PLURAL: &str = "customresourcedefinitions";

struct Def {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
}

const DEFS: &[Def] = &[
    Def {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short: &["ns"],
        categories: &[],
        status: true,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short: &["svc"],
        categories: &["all"],
        status: true,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        namespaced: true,
        short: &["ep"],
        categories: &[],
        status: false,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        short: &["po"],
        categories: &["all"],
        status: true,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        short: &["no"],
        categories: &[],
        status: true,
    },
    Def {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short: &["cm"],
        categories: &[],
        status: false,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        status: false,
    },
    Def {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short: &["sa"],
        categories: &[],
        status: false,
    },
    Def {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short: &["deploy"],
        categories: &["all"],
        status: true,
    },
    Def {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short: &["ev"],
        categories: &[],
        status: false,
    },
    Def {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true,
        short: &["ds"],
        categories: &["all"],
        status: true,
    },
    Def {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        short: &["pdb"],
        categories: &[],
        status: true,
    },
    // RBAC objects (evaluated by `rbac.rs` when the sandbox enforces them).
    Def {
        group: RBAC_GROUP,
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: RBAC_GROUP,
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: RBAC_GROUP,
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: RBAC_GROUP,
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short: &[],
        categories: &[],
        status: false,
    },
    Def {
        group: CRD_GROUP,
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: CRD_PLURAL,
        namespaced: false,
        short: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
    },
];

/// Every built-in resource type, core group first (discovery keeps this order).
pub fn builtin_resources() -> Vec<ResourceInfo> {
    DEFS.iter()
        .map(|d| ResourceInfo {
            group: d.group.to_string(),
            version: d.version.to_string(),
            kind: d.kind.to_string(),
            plural: d.plural.to_string(),
            singular: d.kind.to_lowercase(),
            namespaced: d.namespaced,
            short_names: d.short.iter().map(|s| s.to_string()).collect(),
            categories: d.categories.iter().map(|s| s.to_string()).collect(),
            status_subresource: d.status,
            verbs: if d.plural == "namespaces" {
                // Upstream namespaces have no deletecollection.
                ALL_VERBS
                    .iter()
                    .filter(|v| **v != "deletecollection")
                    .map(|v| v.to_string())
                    .collect()
            } else {
                ALL_VERBS.iter().map(|v| v.to_string()).collect()
            },
            custom: false,
            printer_columns: Vec::new(),
            schema: None,
        })
        .collect()
}

/// The namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces: `spec.finalizers: [kubernetes]`, `status.phase: Active` and the
/// `kubernetes.io/metadata.name` label, as kube-apiserver sets them.
pub struct NamespaceStrategy;

const NS_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn set_ns_label(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert(NS_NAME_LABEL.to_string(), Value::String(name));
        } else {
            *labels = json!({ NS_NAME_LABEL: name });
        }
    }
}

impl Strategy for NamespaceStrategy {
    fn create(&self, obj: &mut Value, _ctx: &WriteCtx) -> Result<(), ApiError> {
        set_ns_label(obj);
        if let Some(o) = obj.as_object_mut() {
            let spec = o.entry("spec").or_insert_with(|| json!({}));
            if let Some(s) = spec.as_object_mut() {
                s.entry("finalizers")
                    .or_insert_with(|| json!(["kubernetes"]));
            }
            o.insert("status".to_string(), json!({"phase": "Active"}));
        }
        Ok(())
    }

    fn update(&self, old: &Value, new: &mut Value, _ctx: &WriteCtx) -> Result<(), ApiError> {
        set_ns_label(new);
        if new.get("status").is_none_or(Value::is_null)
            && let (Some(st), Some(o)) = (old.get("status"), new.as_object_mut())
        {
            o.insert("status".to_string(), st.clone());
        }
        Ok(())
    }

    fn delete(&self, _old: &Value, _ctx: &WriteCtx) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_categories() {
        let all = builtin_resources();
        let find = |g: &str, p: &str| all.iter().find(|r| r.group == g && r.plural == p).cloned();
        let svc = find("", "services").unwrap();
        assert_eq!(svc.short_names, ["svc"]);
        assert_eq!(svc.categories, ["all"]);
        assert!(svc.status_subresource);
        assert_eq!(find("apps", "deployments").unwrap().short_names, ["deploy"]);
        assert_eq!(
            find(CRD_GROUP, CRD_PLURAL).unwrap().short_names,
            ["crd", "crds"]
        );
        assert!(!find("", "nodes").unwrap().namespaced);
        assert!(
            !find("", "namespaces")
                .unwrap()
                .verbs
                .contains(&"deletecollection".to_string())
        );
    }

    #[test]
    fn namespace_defaults() {
        let mut ns = json!({"metadata": {"name": "x"}});
        NamespaceStrategy
            .create(&mut ns, &WriteCtx::default())
            .unwrap();
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["spec"]["finalizers"][0], "kubernetes");
        assert_eq!(ns["metadata"]["labels"][NS_NAME_LABEL], "x");
    }
}
