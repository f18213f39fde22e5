//! The bare-metal CRDs (group `frontdesk.dev`), generated from these Rust types.
//!
//! - [`IPAddressPool`]: where addresses come from (MetalLB's `IPAddressPool`, cluster-scoped).
//! - [`L2Advertisement`]: which pools are announced from which nodes and interfaces.
//! - [`IPAddressClaim`]: one object per address in use. Creating it is the uniqueness lock: the
//!   API server answers AlreadyExists to the second creator, so two controllers (or one
//!   controller before and after a restart) can never hand the same address to two Services.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const GROUP: &str = "frontdesk.dev";
/// Label on every claim: the `--cluster-name` of the controller that made it.
pub const CLUSTER_LABEL: &str = "frontdesk.dev/cluster";
/// Label on every claim: the pool the address came from.
pub const POOL_LABEL: &str = "frontdesk.dev/pool";
/// Label prefix on a claim, one label per Service using the address (`<prefix><uid>: "true"`).
/// A shared address has several, so "the claims of Service X" is one label selector.
pub const SERVICE_UID_LABEL_PREFIX: &str = "uid.frontdesk.dev/";
/// Finalizer on a pool while some claim still holds one of its addresses.
pub const POOL_FINALIZER: &str = "frontdesk.dev/pool-in-use";

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    shortname = "ippool",
    status = "IPAddressPoolStatus",
    printcolumn = r#"{"name":"Auto Assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"Avoid Buggy IPs","type":"boolean","jsonPath":".spec.avoidBuggyIPs"}"#,
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"IPv4 Assigned","type":"integer","jsonPath":".status.assignedIPv4"}"#,
    printcolumn = r#"{"name":"IPv4 Available","type":"integer","jsonPath":".status.availableIPv4"}"#,
    printcolumn = r#"{"name":"IPv6 Assigned","type":"integer","jsonPath":".status.assignedIPv6"}"#,
    printcolumn = r#"{"name":"IPv6 Available","type":"integer","jsonPath":".status.availableIPv6"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// CIDRs (`192.0.2.0/24`, `2001:db8::/120`) or inclusive ranges (`192.0.2.10-192.0.2.20`);
    /// IPv4 and IPv6 may be mixed (needed for dual-stack Services).
    pub addresses: Vec<String>,
    /// `false`: used only when a Service asks for this pool or for one of its addresses.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    #[schemars(default = "default_true")]
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in `.0` and `.255` (some clients drop them).
    #[serde(default, rename = "avoidBuggyIPs", skip_serializing_if = "is_false")]
    pub avoid_buggy_ips: bool,
    /// Which Services may use this pool, and how much it is preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower is preferred; 0 or unset ranks after every pool with a priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Only Services in these namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only Services in namespaces matching one of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Only Services matching one of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: i64,
    #[serde(rename = "assignedIPv6", default)]
    pub assigned_ipv6: i64,
    /// Saturates at 2^63-1 for very large IPv6 ranges.
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: i64,
    #[serde(rename = "availableIPv6", default)]
    pub available_ipv6: i64,
    /// `Valid` (addresses parse), `Overlapping` (shares addresses with another pool),
    /// `AddressesInUse` (deleted or shrunk while Services still hold its addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PoolCondition>,
}

/// A Kubernetes label selector (`matchLabels` AND `matchExpressions`). Our own type rather
/// than k8s-openapi's, whose JSON-schema support is behind a feature the workspace does not use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_transition_time: String,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    shortname = "l2adv",
    printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
    printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Pools announced by this advertisement; with no selectors either, every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes allowed to announce; empty = every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Announce only on these interfaces; empty = every eligible interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "frontdesk.dev",
    version = "v1alpha1",
    kind = "IPAddressClaim",
    plural = "ipaddressclaims",
    shortname = "ipclaim",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"Sharing Key","type":"string","jsonPath":".spec.sharingKey"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressClaimSpec {
    /// The address; the object's name is derived from it ([`claim_name`]).
    pub address: String,
    /// The pool it was allocated from.
    pub pool: String,
    /// `allow-shared-ip` key; several users only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_key: Option<String>,
    /// The Services using the address.
    pub users: Vec<ClaimUser>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimUser {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `PROTOCOL/port` of every Service port (sharing needs them disjoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Empty for `externalTrafficPolicy: Cluster`; the pod selector for `Local`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend_key: String,
}

/// The claim name for an address: `v4-203-0-113-5`, `v6-2001-db8-0-0-0-0-0-5` (all eight
/// IPv6 groups, so the name is DNS-1123 safe, never ends in `-`, and one address has one name).
pub fn claim_name(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => format!("v4-{}", v4.to_string().replace('.', "-")),
        std::net::IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("v6-{}", groups.join("-"))
        }
    }
}

/// CEL rules the API server enforces on pools (the sandbox stores but does not evaluate CEL;
/// the controller checks the same things and reports them as the pool's `Valid` condition).
fn pool_rules() -> Value {
    json!([
        {"rule": "size(self.addresses) > 0",
         "message": "spec.addresses must list at least one CIDR or range"},
        {"rule": "!has(self.serviceAllocation) || !has(self.serviceAllocation.namespaces) || \
                  self.serviceAllocation.namespaces.all(n, self.serviceAllocation.namespaces.exists_one(m, m == n))",
         "message": "spec.serviceAllocation.namespaces must not repeat a namespace"},
        {"rule": "self.addresses.all(a, a.contains('/') ? isCIDR(a) : \
                  (a.split('-').size() == 2 && isIP(a.split('-')[0]) && isIP(a.split('-')[1])))",
         "message": "each address must be a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20)"}
    ])
}

fn with_rules(mut crd: CustomResourceDefinition, rules: Value) -> CustomResourceDefinition {
    for v in &mut crd.spec.versions {
        let Some(schema) = v.schema.as_mut() else {
            continue;
        };
        let Some(root) = schema.open_api_v3_schema.as_mut() else {
            continue;
        };
        let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) else {
            continue;
        };
        if let Ok(parsed) = serde_json::from_value(rules.clone()) {
            spec.x_kubernetes_validations = Some(parsed);
        }
        if let Some(p) = spec
            .properties
            .as_mut()
            .and_then(|p| p.get_mut("addresses"))
        {
            p.min_items = Some(1);
        }
    }
    crd
}

/// Every CRD of bare-metal mode, ready to apply (also the source of the chart's `crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        with_rules(IPAddressPool::crd(), pool_rules()),
        L2Advertisement::crd(),
        IPAddressClaim::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

/// Labels of a claim (cluster, pool, one per user uid).
pub fn claim_labels(cluster: &str, pool: &str, users: &[ClaimUser]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(CLUSTER_LABEL.to_string(), cluster.to_string());
    labels.insert(POOL_LABEL.to_string(), pool.to_string());
    for u in users {
        labels.insert(
            format!("{SERVICE_UID_LABEL_PREFIX}{}", u.uid),
            "true".to_string(),
        );
    }
    labels
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn crds_are_cluster_scoped_in_our_group_with_printer_columns() {
        let crds = crds();
        assert_eq!(crds.len(), 3);
        for c in &crds {
            assert_eq!(c.spec.group, GROUP);
            assert_eq!(c.spec.scope, "Cluster");
        }
        let pool = serde_json::to_value(&crds[0]).unwrap();
        assert_eq!(pool["metadata"]["name"], "ipaddresspools.frontdesk.dev");
        let cols = pool["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap();
        assert!(
            cols.iter()
                .any(|c| c["jsonPath"] == ".status.availableIPv4")
        );
        let spec = &pool["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert!(spec["x-kubernetes-validations"].as_array().unwrap().len() >= 2);
        assert!(pool["spec"]["versions"][0]["subresources"]["status"].is_object());
        assert!(
            crds_yaml()
                .unwrap()
                .contains("kind: CustomResourceDefinition")
        );
    }

    #[test]
    fn claim_names_are_dns_safe_and_distinct() {
        let cases = [
            ("203.0.113.5", "v4-203-0-113-5"),
            ("2001:db8::5", "v6-2001-db8-0-0-0-0-0-5"),
            ("2001:db8:0:1::", "v6-2001-db8-0-1-0-0-0-0"),
            ("::ffff:1.2.3.4", "v6-0-0-0-0-0-ffff-102-304"),
        ];
        for (ip, want) in cases {
            assert_eq!(claim_name(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn pool_defaults_match_metallb() {
        let spec: IPAddressPoolSpec =
            serde_json::from_value(json!({"addresses": ["192.0.2.0/24"]})).unwrap();
        assert!(spec.auto_assign);
        assert!(!spec.avoid_buggy_ips);
        assert!(spec.service_allocation.is_none());
    }
}
