//! Which nodes are load-balancer backends: upstream's `stableNodeSetPredicates`, exactly.
//!
//! Eligible: not being deleted, not excluded by label, not tainted by the cluster autoscaler
//! for removal. Deliberately *not* filtered (as upstream, after outages caused by it): NotReady
//! or cordoned nodes, nodes without `spec.providerID`, control-plane nodes. Readiness is the
//! load balancer health check's job, so a readiness flip never changes a backend set.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use crate::annotations::parse_go_bool;
use crate::provider::BackendNode;

/// Node label that removes a node from every load balancer. Its value is read with Go's
/// `strconv.ParseBool`: `false`-like values include the node, `true`-like values *and values
/// that are not booleans at all (including "")* exclude it, as upstream does.
pub const EXCLUDE_BALANCER_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Taint the cluster autoscaler puts on a node it is about to remove (any value, any effect).
pub const TAINT_TO_BE_DELETED: &str = "ToBeDeletedByClusterAutoscaler";

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Deprecated zone label, still set on some older clusters; read only when the GA one is absent.
pub const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";

/// Upstream `nodeIncludedPredicate`: the exclude label is absent or parses as false.
pub fn is_included(node: &Node) -> bool {
    match node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(EXCLUDE_BALANCER_LABEL))
    {
        None => true,
        // A parse error excludes: someone meant to exclude the node, even if they spelt it
        // "yes".
        Some(value) => parse_go_bool(value) == Some(false),
    }
}

/// True when the cluster autoscaler has marked the node for removal.
pub fn is_marked_for_removal(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| taints.iter().any(|t| t.key == TAINT_TO_BE_DELETED))
}

/// Upstream `stableNodeSetPredicates`: not deleted, included, not marked for removal.
pub fn is_eligible(node: &Node) -> bool {
    node.metadata.deletion_timestamp.is_none() && is_included(node) && !is_marked_for_removal(node)
}

/// The backend view of a node (eligibility not checked). Addresses: every parseable
/// InternalIP in the node's order, then every ExternalIP, without duplicates; Hostname and
/// other address types are not routable targets and are skipped.
pub fn to_backend(node: &Node) -> BackendNode {
    let status_addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let mut addresses: Vec<IpAddr> = Vec::new();
    for wanted in ["InternalIP", "ExternalIP"] {
        for a in status_addresses.iter().filter(|a| a.type_ == wanted) {
            if let Ok(ip) = a.address.trim().parse::<IpAddr>()
                && !addresses.contains(&ip)
            {
                addresses.push(ip);
            }
        }
    }
    let labels = node.metadata.labels.as_ref();
    let zone = labels
        .and_then(|l| l.get(ZONE_LABEL).or_else(|| l.get(LEGACY_ZONE_LABEL)))
        .filter(|z| !z.is_empty())
        .cloned();
    BackendNode {
        name: node.metadata.name.clone().unwrap_or_default(),
        provider_id: node
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .filter(|p| !p.is_empty()),
        addresses,
        zone,
    }
}

/// The eligible backends, sorted by name. Nodes without a name (never true of a node read from
/// the API server) are skipped rather than sorted to the front.
pub fn eligible_nodes(nodes: &[Node]) -> Vec<BackendNode> {
    let mut out: Vec<BackendNode> = nodes
        .iter()
        .filter(|n| is_eligible(n))
        .map(to_backend)
        .filter(|b| !b.name.is_empty())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// Whether a node update should trigger a node sync. Upstream `shouldSyncUpdatedNode`: the
/// exclude-label verdict flipped or `spec.providerID` changed. frontdesk additionally syncs when
/// the node's addresses or zone change, because some backends (bare metal, proxy-style
/// providers) target node addresses rather than instance ids.
///
/// Never a trigger (MATCH upstream): readiness and other conditions, cordoning, taints
/// (including the autoscaler's) and `deletionTimestamp`. A node marked for removal leaves the
/// backend set on the next sync of any kind, or when its Node object is deleted.
pub fn backend_set_changed(old: &Node, new: &Node) -> bool {
    if is_included(old) != is_included(new) {
        return true;
    }
    let (o, n) = (to_backend(old), to_backend(new));
    o.provider_id != n.provider_id || o.addresses != n.addresses || o.zone != n.zone
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
