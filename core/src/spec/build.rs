//! `build_spec`: validate and translate one Service. Every check runs, so the user sees all
//! problems at once instead of fixing them one Event at a time.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::ServiceSpec;

use super::{SpecError, SpecInput};
use crate::annotations::{
    self, INTERNAL, LOAD_BALANCER_IPS, SOURCE_RANGES, annotation_field, lb_relevant_annotations,
};
use crate::naming::{load_balancer_name, ownership_tags};
use crate::provider::{
    HealthCheck, IpFamily, LoadBalancerSpec, PortSpec, Protocol, Scheme, ServiceKey,
    SessionAffinity,
};

/// kube-proxy's health-check path on `healthCheckNodePort`.
pub const HEALTH_CHECK_PATH: &str = "/healthz";
/// The API server's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// The API server's maximum for the same field (1 day).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86_400;

pub fn build_spec(input: &SpecInput) -> Result<LoadBalancerSpec, Vec<SpecError>> {
    let svc = input.service;
    let mut errors = Vec::new();

    let name = svc.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.push(SpecError::new(
            "metadata.name",
            "is empty; pass the Service as read from the API server",
        ));
    }
    // A namespaced object read from the API server always has one; "default" is what kubectl
    // would have filled in.
    let namespace = svc
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        errors.push(SpecError::new(
            "metadata.uid",
            "is empty; cloud names derive from it, so pass the Service as read from the API server",
        ));
    }

    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    let annotations = lb_relevant_annotations(svc);

    let ports = ports(spec, input.needs_node_ports, &mut errors);
    let ip_families = ip_families(spec, &mut errors);
    let source_ranges = source_ranges(spec, &annotations, &mut errors);
    let requested_ips = requested_ips(spec, &annotations, &ip_families, &mut errors);
    let session_affinity = session_affinity(spec, &mut errors);
    let health_check = health_check(spec, &mut errors);
    let scheme = match annotations::get_bool(&annotations, INTERNAL) {
        Ok(Some(true)) => Scheme::Internal,
        Ok(_) => Scheme::External,
        Err(e) => {
            errors.push(e.into());
            Scheme::External
        }
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let service = ServiceKey::new(namespace, name);
    let mut nodes = input.nodes.to_vec();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(LoadBalancerSpec {
        cluster: input.cluster.to_owned(),
        tags: ownership_tags(input.cluster, &service, &uid),
        name: load_balancer_name(&uid),
        service,
        uid,
        ports,
        nodes,
        health_check,
        source_ranges,
        requested_ips,
        ip_families,
        session_affinity,
        scheme,
        annotations,
    })
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

fn ports(spec: &ServiceSpec, needs_node_ports: bool, errors: &mut Vec<SpecError>) -> Vec<PortSpec> {
    let list = spec.ports.as_deref().unwrap_or_default();
    if list.is_empty() {
        errors.push(SpecError::new(
            "spec.ports",
            "is empty; a LoadBalancer Service needs at least one port",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let protocol = match p.protocol.as_deref() {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some("SCTP") => Some(Protocol::Sctp),
            Some(other) => {
                errors.push(SpecError::new(
                    format!("spec.ports[{i}].protocol"),
                    format!("{other:?} is not a protocol; use TCP, UDP or SCTP"),
                ));
                None
            }
        };
        let port = port_number(p.port);
        if port.is_none() {
            errors.push(SpecError::new(
                format!("spec.ports[{i}].port"),
                format!("{} is out of range; use 1 to 65535", p.port),
            ));
        }
        // The API server omits an unallocated nodePort; 0 means the same.
        let node_port = match p.node_port {
            None | Some(0) => None,
            Some(n) => {
                let np = port_number(n);
                if np.is_none() {
                    errors.push(SpecError::new(
                        format!("spec.ports[{i}].nodePort"),
                        format!("{n} is out of range; use 1 to 65535 or leave it for the API server to allocate"),
                    ));
                }
                np
            }
        };
        if node_port.is_none() && p.node_port.unwrap_or(0) == 0 && needs_node_ports {
            errors.push(SpecError::new(
                format!("spec.ports[{i}].nodePort"),
                format!(
                    "port {} has no nodePort, but this provider sends load-balancer traffic to \
                     NodePorts; remove spec.allocateLoadBalancerNodePorts: false (or set it to \
                     true) so the API server allocates one, or set this nodePort explicitly",
                    p.port
                ),
            ));
        }
        if let (Some(protocol), Some(port)) = (protocol, port) {
            out.push(PortSpec {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port,
                node_port,
            });
        }
    }
    out
}

fn ip_families(spec: &ServiceSpec, errors: &mut Vec<SpecError>) -> Vec<IpFamily> {
    let mut out = Vec::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        let family = match f.as_str() {
            "IPv4" => IpFamily::IPv4,
            "IPv6" => IpFamily::IPv6,
            other => {
                errors.push(SpecError::new(
                    format!("spec.ipFamilies[{i}]"),
                    format!("{other:?} is not an IP family; use IPv4 or IPv6"),
                ));
                continue;
            }
        };
        if !out.contains(&family) {
            out.push(family);
        }
    }
    if out.is_empty() {
        // Old API servers and hand-written objects omit ipFamilies: the cluster IPs tell, and a
        // single-stack IPv4 cluster is the default everywhere.
        let ips = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter());
        for ip in ips.filter_map(|s| s.parse::<IpAddr>().ok()) {
            let family = family_of(&ip);
            if !out.contains(&family) {
                out.push(family);
            }
        }
    }
    if out.is_empty() {
        out.push(IpFamily::IPv4);
    }
    out
}

fn family_of(ip: &IpAddr) -> IpFamily {
    if ip.is_ipv4() {
        IpFamily::IPv4
    } else {
        IpFamily::IPv6
    }
}

fn source_ranges(
    spec: &ServiceSpec,
    annotations: &BTreeMap<String, String>,
    errors: &mut Vec<SpecError>,
) -> Vec<IpNet> {
    let from_spec = spec
        .load_balancer_source_ranges
        .as_deref()
        .unwrap_or_default();
    let mut out = Vec::new();
    if !from_spec.is_empty() {
        for (i, s) in from_spec.iter().enumerate() {
            match annotations::parse_cidr(s.trim()) {
                Some(net) => out.push(net),
                None => errors.push(SpecError::new(
                    format!("spec.loadBalancerSourceRanges[{i}]"),
                    format!("{s:?} is not a CIDR; use the form 203.0.113.0/24 or 2001:db8::/32"),
                )),
            }
        }
    } else if let Some(value) = annotations.get(SOURCE_RANGES) {
        // Upstream reads the legacy annotation only when the field is empty.
        match annotations::cidr_list_value(SOURCE_RANGES, value) {
            Ok(nets) => out = nets,
            Err(e) => errors.push(e.into()),
        }
    }
    out.dedup();
    out
}

fn requested_ips(
    spec: &ServiceSpec,
    annotations: &BTreeMap<String, String>,
    families: &[IpFamily],
    errors: &mut Vec<SpecError>,
) -> Vec<IpAddr> {
    // (address, the field it came from)
    let mut found: Vec<(IpAddr, String)> = Vec::new();
    if let Some(s) = spec
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match s.parse::<IpAddr>() {
            Ok(ip) => found.push((ip, "spec.loadBalancerIP".into())),
            Err(_) => errors.push(SpecError::new(
                "spec.loadBalancerIP",
                format!(
                    "{s:?} is not an IP address; use one address like 192.0.2.10 (for dual-stack, \
                     use annotation {LOAD_BALANCER_IPS})"
                ),
            )),
        }
    }
    match annotations::get_parsed(annotations, LOAD_BALANCER_IPS, annotations::ip_list_value) {
        Ok(ips) => {
            let field = annotation_field(LOAD_BALANCER_IPS);
            found.extend(ips.into_iter().flatten().map(|ip| (ip, field.clone())));
        }
        Err(e) => errors.push(e.into()),
    }

    let mut out: Vec<IpAddr> = Vec::new();
    for (ip, field) in found {
        if out.contains(&ip) {
            continue;
        }
        let family = family_of(&ip);
        if !families.contains(&family) {
            errors.push(SpecError::new(
                field,
                format!(
                    "{ip} is {family:?}, but the Service's ipFamilies are {families:?}; request an \
                     address of the Service's family or change spec.ipFamilies"
                ),
            ));
        } else if let Some(other) = out.iter().find(|o| family_of(o) == family) {
            errors.push(SpecError::new(
                field,
                format!(
                    "{ip} and {other} are both {family:?}; a load balancer takes at most one \
                     requested address per IP family (spec.loadBalancerIP and {LOAD_BALANCER_IPS} \
                     together)"
                ),
            ));
        } else {
            out.push(ip);
        }
    }
    out
}

fn session_affinity(spec: &ServiceSpec, errors: &mut Vec<SpecError>) -> SessionAffinity {
    match spec.session_affinity.as_deref() {
        None | Some("") | Some("None") => SessionAffinity::None,
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                None => SessionAffinity::ClientIp {
                    timeout_seconds: DEFAULT_AFFINITY_TIMEOUT,
                },
                Some(t) => match u32::try_from(t) {
                    Ok(t) if (1..=MAX_AFFINITY_TIMEOUT).contains(&t) => {
                        SessionAffinity::ClientIp { timeout_seconds: t }
                    }
                    _ => {
                        errors.push(SpecError::new(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            format!(
                                "{t} is out of range; use 1 to {MAX_AFFINITY_TIMEOUT} seconds \
                                 (default {DEFAULT_AFFINITY_TIMEOUT})"
                            ),
                        ));
                        SessionAffinity::None
                    }
                },
            }
        }
        Some(other) => {
            errors.push(SpecError::new(
                "spec.sessionAffinity",
                format!("{other:?} is not supported; use None or ClientIP"),
            ));
            SessionAffinity::None
        }
    }
}

fn health_check(spec: &ServiceSpec, errors: &mut Vec<SpecError>) -> HealthCheck {
    if spec.external_traffic_policy.as_deref() != Some("Local") {
        return HealthCheck::Tcp;
    }
    match spec.health_check_node_port {
        Some(n) if n != 0 => match port_number(n) {
            Some(port) => HealthCheck::Http {
                port,
                path: HEALTH_CHECK_PATH.to_owned(),
            },
            None => {
                errors.push(SpecError::new(
                    "spec.healthCheckNodePort",
                    format!("{n} is out of range; use 1 to 65535 or leave it for the API server to allocate"),
                ));
                HealthCheck::Tcp
            }
        },
        _ => {
            errors.push(SpecError::new(
                "spec.healthCheckNodePort",
                "is not allocated, but externalTrafficPolicy is Local and the load balancer must \
                 probe it to find nodes with local endpoints; the API server allocates it for \
                 type LoadBalancer, so re-apply the Service (or set externalTrafficPolicy: Cluster)",
            ));
            HealthCheck::Tcp
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
