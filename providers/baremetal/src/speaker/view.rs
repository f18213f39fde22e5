//! From API objects to the election's views (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::election::{AdView, NodeView, PoolView, ServiceView};
use crate::crd::{IPAddressPool, L2Advertisement};
use crate::ranges::AddrRange;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub fn node_view(node: &Node) -> NodeView {
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
        });
    NodeView {
        labels: node.labels().clone(),
        excluded: !frontdesk_core::nodes::is_eligible(node),
        network_unavailable,
    }
}

/// A pool with its parseable ranges (a bad entry is the controller's to report; here it only
/// means those addresses match no pool).
pub fn pool_view(pool: &IPAddressPool) -> PoolView {
    PoolView {
        name: pool.name_any(),
        labels: pool.labels().clone(),
        ranges: pool
            .spec
            .addresses
            .iter()
            .filter_map(|a| AddrRange::parse(a).ok())
            .collect(),
    }
}

pub fn ad_view(ad: &L2Advertisement) -> AdView {
    AdView {
        name: ad.name_any(),
        pools: ad.spec.ip_address_pools.clone(),
        pool_selectors: ad.spec.ip_address_pool_selectors.clone(),
        node_selectors: ad.spec.node_selectors.clone(),
        interfaces: ad.spec.interfaces.clone(),
    }
}

pub fn service_key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Endpoint facts per Service key: (some serving endpoint, nodes with one).
fn endpoints(slices: &[Arc<EndpointSlice>]) -> BTreeMap<String, (bool, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (bool, BTreeSet<String>)> = BTreeMap::new();
    for slice in slices {
        let Some(svc) = slice.labels().get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let key = format!("{}/{}", slice.namespace().unwrap_or_default(), svc);
        let entry = out.entry(key).or_default();
        for ep in &slice.endpoints {
            let c = ep.conditions.as_ref();
            // Upstream: ready unset means ready; a terminating endpoint still serving counts.
            let serving = c.is_none_or(|c| c.ready.unwrap_or(true) || c.serving == Some(true));
            if !serving {
                continue;
            }
            entry.0 = true;
            if let Some(n) = &ep.node_name {
                entry.1.insert(n.clone());
            }
        }
    }
    out
}

/// Every LoadBalancer Service that has ingress addresses.
pub fn service_views(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Vec<ServiceView> {
    let eps = endpoints(slices);
    services
        .iter()
        .filter(|s| {
            s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer")
                && s.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|s| {
            let ips = ingress_ips(s);
            if ips.is_empty() {
                return None;
            }
            let key = service_key(s);
            let (has_endpoints, endpoint_nodes) = eps.get(&key).cloned().unwrap_or_default();
            let local = s
                .spec
                .as_ref()
                .and_then(|sp| sp.external_traffic_policy.as_deref())
                == Some("Local");
            Some(ServiceView {
                key,
                ips,
                local,
                endpoint_nodes,
                has_endpoints,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn services_and_endpoints_are_viewed() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::a"}]}}
        }))
        .unwrap();
        let cluster_ip: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ClusterIP"}
        }))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "node-1", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "nodeName": "node-2", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "nodeName": "node-3",
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.4"], "nodeName": "node-4"}
            ]
        }))
        .unwrap();
        let views = service_views(&[Arc::new(svc), Arc::new(cluster_ip)], &[Arc::new(slice)]);
        assert_eq!(views.len(), 1);
        let v = &views[0];
        assert_eq!(v.key, "default/web");
        assert_eq!(v.ips.len(), 2);
        assert!(v.local && v.has_endpoints);
        let nodes: Vec<&str> = v.endpoint_nodes.iter().map(String::as_str).collect();
        assert_eq!(nodes, ["node-1", "node-3", "node-4"]);
    }

    #[test]
    fn nodes_excluded_by_label_or_unavailable_network() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": "true"}},
            "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True"}]}
        }))
        .unwrap();
        let v = node_view(&node);
        assert!(v.excluded && v.network_unavailable);
        let plain: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap();
        let v = node_view(&plain);
        assert!(!v.excluded && !v.network_unavailable);
    }
}
