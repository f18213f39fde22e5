//! Pure: what the generic cloud should hold for a [`LoadBalancerSpec`], and how that differs
//! from what it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use frontdesk_core::provider::{
    BackendNode, HealthCheck, IpFamily, LoadBalancerSpec, Protocol, ProviderError, Scheme,
    SessionAffinity,
};

use crate::wire;

/// The configuration part (everything but backends) plus the backend instance ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub scheme: wire::Scheme,
    pub address: Option<IpAddr>,
    pub tags: BTreeMap<String, String>,
    /// In Service port order, so a cloud error on `listeners[i]` maps to `spec.ports[i]`.
    pub listeners: Vec<wire::Listener>,
    pub health_check: wire::HealthCheck,
    pub source_ranges: Vec<String>,
    pub session_affinity: wire::SessionAffinity,
    pub backends: BTreeSet<String>,
}

/// The instance id of a node: the last segment of a `mock:///<zone>/<id>` providerID. Nodes of
/// another cloud or without a providerID cannot be registered and are skipped.
pub fn instance_id(node: &BackendNode) -> Option<String> {
    let rest = node.provider_id.as_deref()?.strip_prefix("mock://")?;
    let id = rest.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

pub fn backends(nodes: &[BackendNode]) -> BTreeSet<String> {
    nodes.iter().filter_map(instance_id).collect()
}

impl Desired {
    /// Everything the cloud cannot do is rejected here, naming the Service field.
    pub fn from_spec(spec: &LoadBalancerSpec) -> Result<Self, ProviderError> {
        if spec.ports.is_empty() {
            return Err(ProviderError::invalid(
                "spec.ports",
                "a load balancer needs at least one port",
            ));
        }
        let mut listeners = Vec::with_capacity(spec.ports.len());
        for (i, p) in spec.ports.iter().enumerate() {
            let protocol = match p.protocol {
                Protocol::Tcp | Protocol::Udp => p.protocol.as_str().to_string(),
                Protocol::Sctp => {
                    return Err(ProviderError::invalid(
                        format!("spec.ports[{i}].protocol"),
                        "SCTP is not supported by the mock cloud's load balancers (TCP and UDP are)",
                    ));
                }
            };
            let Some(node_port) = p.node_port else {
                return Err(ProviderError::invalid(
                    format!("spec.ports[{i}].nodePort"),
                    "the mock cloud forwards to NodePorts; set allocateLoadBalancerNodePorts or a nodePort",
                ));
            };
            listeners.push(wire::Listener {
                port: p.port,
                protocol,
                backend_port: node_port,
            });
        }
        let health_check = match &spec.health_check {
            // One TCP check per LB: the first port's NodePort stands for the node.
            HealthCheck::Tcp => wire::HealthCheck {
                protocol: "TCP".into(),
                port: listeners[0].backend_port,
                path: None,
            },
            HealthCheck::Http { port, path } => wire::HealthCheck {
                protocol: "HTTP".into(),
                port: *port,
                path: Some(path.clone()),
            },
        };
        if !spec.ip_families.is_empty() && !spec.ip_families.contains(&IpFamily::IPv4) {
            return Err(ProviderError::invalid(
                "spec.ipFamilies",
                "the mock cloud has IPv4 load balancers only",
            ));
        }
        let address = match spec.requested_ips.as_slice() {
            [] => None,
            [ip @ IpAddr::V4(_)] => Some(*ip),
            [IpAddr::V6(_)] => {
                return Err(ProviderError::invalid(
                    "spec.loadBalancerIP",
                    "the mock cloud has IPv4 addresses only",
                ));
            }
            _ => {
                return Err(ProviderError::invalid(
                    "spec.loadBalancerIP",
                    "at most one address can be requested",
                ));
            }
        };
        let mut source_ranges: Vec<String> =
            spec.source_ranges.iter().map(ToString::to_string).collect();
        source_ranges.sort();
        source_ranges.dedup();
        let session_affinity = match spec.session_affinity {
            SessionAffinity::None => wire::SessionAffinity::None,
            SessionAffinity::ClientIp { timeout_seconds } => {
                wire::SessionAffinity::ClientIp { timeout_seconds }
            }
        };
        let scheme = match spec.scheme {
            Scheme::External => wire::Scheme::External,
            Scheme::Internal => wire::Scheme::Internal,
        };
        Ok(Self {
            scheme,
            address,
            tags: spec.tags.clone(),
            listeners,
            health_check,
            source_ranges,
            session_affinity,
            backends: backends(&spec.nodes),
        })
    }

    /// Scheme or a requested address differ: the cloud cannot change those in place.
    pub fn needs_replace(&self, lb: &wire::LoadBalancer) -> bool {
        lb.scheme != self.scheme || self.address.is_some_and(|a| a != lb.address)
    }

    /// Listeners, health check, source ranges, affinity or tags differ (order-insensitive).
    pub fn config_differs(&self, lb: &wire::LoadBalancer) -> bool {
        let sorted = |l: &[wire::Listener]| {
            let mut v: Vec<(u16, String, u16)> = l
                .iter()
                .map(|l| (l.port, l.protocol.clone(), l.backend_port))
                .collect();
            v.sort();
            v
        };
        let mut ranges = lb.source_ranges.clone();
        ranges.sort();
        sorted(&self.listeners) != sorted(&lb.listeners)
            || self.health_check != lb.health_check
            || self.source_ranges != ranges
            || self.session_affinity != lb.session_affinity
            || self.tags != lb.tags
    }
}

/// Add and remove lists turning `current` into `desired`.
pub fn delta(current: &BTreeSet<String>, desired: &BTreeSet<String>) -> wire::BackendsRequest {
    wire::BackendsRequest {
        add: desired.difference(current).cloned().collect(),
        remove: current.difference(desired).cloned().collect(),
    }
}

/// A cloud-side field name (`listeners[1].protocol`) as the Service field it came from.
pub fn service_field(cloud_field: &str) -> String {
    let mapped = [
        ("listeners", "spec.ports"),
        ("source_ranges", "spec.loadBalancerSourceRanges"),
        ("address", "spec.loadBalancerIP"),
        ("health_check", "spec.healthCheckNodePort"),
        ("session_affinity", "spec.sessionAffinity"),
    ];
    for (cloud, service) in mapped {
        if let Some(rest) = cloud_field.strip_prefix(cloud) {
            let rest = rest.replace(".backend_port", ".nodePort");
            return match cloud {
                "listeners" | "source_ranges" => format!("{service}{rest}"),
                _ => service.to_string(),
            };
        }
    }
    cloud_field.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_core::provider::{PortSpec, ServiceKey};

    pub(crate) fn spec() -> LoadBalancerSpec {
        LoadBalancerSpec {
            cluster: "c1".into(),
            service: ServiceKey::new("ns", "web"),
            uid: "u1".into(),
            name: "au1".into(),
            ports: vec![PortSpec {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: Some(30080),
            }],
            nodes: vec![],
            health_check: HealthCheck::Tcp,
            source_ranges: vec![],
            requested_ips: vec![],
            ip_families: vec![IpFamily::IPv4],
            session_affinity: SessionAffinity::None,
            scheme: Scheme::External,
            tags: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn rejections_name_the_service_field() {
        type Edit = fn(&mut LoadBalancerSpec);
        let table: [(Edit, &str); 5] = [
            (
                |s| s.ports[0].protocol = Protocol::Sctp,
                "spec.ports[0].protocol",
            ),
            (|s| s.ports[0].node_port = None, "spec.ports[0].nodePort"),
            (|s| s.ports.clear(), "spec.ports"),
            (
                |s| s.requested_ips = vec!["2001:db8::1".parse().unwrap()],
                "spec.loadBalancerIP",
            ),
            (|s| s.ip_families = vec![IpFamily::IPv6], "spec.ipFamilies"),
        ];
        for (edit, want) in table {
            let mut s = spec();
            edit(&mut s);
            match Desired::from_spec(&s) {
                Err(ProviderError::InvalidSpec { field, .. }) => assert_eq!(field, want),
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn health_check_and_instances() {
        let mut s = spec();
        s.nodes = vec![
            BackendNode {
                name: "n1".into(),
                provider_id: Some("mock:///zone-a/i-1".into()),
                addresses: vec![],
                zone: None,
            },
            BackendNode {
                name: "n2".into(),
                provider_id: Some("aws:///zone-a/i-2".into()),
                addresses: vec![],
                zone: None,
            },
            BackendNode {
                name: "n3".into(),
                provider_id: None,
                addresses: vec![],
                zone: None,
            },
        ];
        let d = Desired::from_spec(&s).unwrap();
        assert_eq!(d.health_check.port, 30080);
        assert_eq!(d.backends, BTreeSet::from(["i-1".to_string()]));
        s.health_check = HealthCheck::Http {
            port: 32000,
            path: "/healthz".into(),
        };
        let d = Desired::from_spec(&s).unwrap();
        assert_eq!(
            (d.health_check.protocol.as_str(), d.health_check.port),
            ("HTTP", 32000)
        );
    }

    #[test]
    fn deltas() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let d = delta(&set(&["a", "b"]), &set(&["b", "c"]));
        assert_eq!(
            (d.add, d.remove),
            (vec!["c".to_string()], vec!["a".to_string()])
        );
        let same = delta(&set(&["a"]), &set(&["a"]));
        assert!(same.add.is_empty() && same.remove.is_empty());
    }

    #[test]
    fn field_mapping() {
        let table = [
            ("listeners[1].protocol", "spec.ports[1].protocol"),
            ("listeners[0].backend_port", "spec.ports[0].nodePort"),
            ("source_ranges[2]", "spec.loadBalancerSourceRanges[2]"),
            ("address", "spec.loadBalancerIP"),
            ("health_check.path", "spec.healthCheckNodePort"),
            ("name", "name"),
        ];
        for (cloud, want) in table {
            assert_eq!(service_field(cloud), want);
        }
    }
}
