//! What one Service's NLB should look like, computed purely from the spec: names, target
//! groups, listeners, security group rules, tags, attributes; plus the diffs ensure applies.

use std::collections::{BTreeMap, BTreeSet};

use frontdesk_core::provider::{
    BackendNode, HealthCheck, LoadBalancerSpec, PortSpec, Protocol, ProviderError, Scheme,
    SessionAffinity,
};

use crate::options::{self, HcProtocol, IpAddressType, Options};

/// AWS's limit for load balancer and target group names.
pub const MAX_NAME: usize = 32;

/// Stable 64-bit FNV-1a: names must not change between releases or Rust versions (std's hasher
/// gives no such promise), or every upgrade would orphan target groups.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Target group name: the LB name's first 21 characters + `-` + 10 hex digits of a hash over
/// everything that cannot be modified on a target group in place (cluster, UID, listener port,
/// protocol, NodePort). 32 characters, deterministic, so a lost create answer is found again.
pub fn tg_name(
    lb_name: &str,
    cluster: &str,
    uid: &str,
    port: u16,
    proto: TgProtocol,
    node_port: u16,
) -> String {
    let prefix: String = lb_name.chars().take(MAX_NAME - 11).collect();
    let h = fnv1a(&[
        cluster,
        uid,
        &port.to_string(),
        proto.as_str(),
        &node_port.to_string(),
    ]);
    format!("{prefix}-{:010x}", h & 0xff_ffff_ffff)
}

/// The security group the provider owns for one LB (SG names are per VPC, up to 255 chars).
pub fn sg_name(lb_name: &str) -> String {
    format!("frontdesk-{lb_name}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TgProtocol {
    Tcp,
    Udp,
    TcpUdp,
}

impl TgProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TgProtocol::Tcp => "TCP",
            TgProtocol::Udp => "UDP",
            TgProtocol::TcpUdp => "TCP_UDP",
        }
    }

    /// The IP protocols an SG rule must open for this listener.
    pub fn ip_protocols(self) -> &'static [&'static str] {
        match self {
            TgProtocol::Tcp => &["tcp"],
            TgProtocol::Udp => &["udp"],
            TgProtocol::TcpUdp => &["tcp", "udp"],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    pub protocol: HcProtocol,
    /// `traffic-port` or a number.
    pub port: String,
    pub path: Option<String>,
    pub interval: i32,
    pub timeout: i32,
    pub healthy: i32,
    pub unhealthy: i32,
}

/// One listener and the target group behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TgSpec {
    pub name: String,
    pub port: u16,
    pub protocol: TgProtocol,
    pub node_port: u16,
    pub health: HealthSpec,
}

/// One ingress rule of the owned security group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SgRule {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
    /// A CIDR, or the id (`sg-…`) of the security group the traffic comes from.
    pub peer: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub lb_name: String,
    pub scheme: Scheme,
    pub options: Options,
    pub tgs: Vec<TgSpec>,
    /// The SG the provider owns; `None` with bring-your-own security groups.
    pub sg_name: Option<String>,
    pub sg_rules: BTreeSet<SgRule>,
    /// Ownership tags + `additional-resource-tags`.
    pub tags: BTreeMap<String, String>,
    /// Attributes every target group must have (only these keys are managed).
    pub tg_attributes: BTreeMap<String, String>,
    /// Load balancer attributes (only these keys are managed).
    pub lb_attributes: BTreeMap<String, String>,
}

fn health_spec(spec: &LoadBalancerSpec, o: &Options) -> HealthSpec {
    let base = match &spec.health_check {
        HealthCheck::Tcp => HealthSpec {
            protocol: HcProtocol::Tcp,
            port: "traffic-port".into(),
            path: None,
            interval: 30,
            timeout: 10,
            healthy: 3,
            unhealthy: 3,
        },
        HealthCheck::Http { port, path } => HealthSpec {
            protocol: HcProtocol::Http,
            port: port.to_string(),
            path: Some(path.clone()),
            interval: 10,
            timeout: 6,
            healthy: 2,
            unhealthy: 2,
        },
    };
    let h = &o.health;
    let protocol = h.protocol.unwrap_or(base.protocol);
    let path = match protocol {
        HcProtocol::Tcp => None,
        _ => h.path.clone().or(base.path).or_else(|| Some("/".into())),
    };
    HealthSpec {
        protocol,
        port: h.port.clone().unwrap_or(base.port),
        path,
        interval: h.interval.unwrap_or(base.interval),
        timeout: h.timeout.unwrap_or(base.timeout),
        healthy: h.healthy.unwrap_or(base.healthy),
        unhealthy: h.unhealthy.unwrap_or(base.unhealthy),
    }
}

/// Group ports by number: TCP+UDP on one number becomes one TCP_UDP listener and target group.
fn listeners(ports: &[PortSpec]) -> Result<Vec<(u16, TgProtocol, u16)>, ProviderError> {
    let mut by_port: BTreeMap<u16, Vec<&PortSpec>> = BTreeMap::new();
    for p in ports {
        by_port.entry(p.port).or_default().push(p);
    }
    let mut out = Vec::new();
    for (port, ps) in by_port {
        let mut node_ports = BTreeSet::new();
        let mut protos = BTreeSet::new();
        for p in &ps {
            let np = p.node_port.ok_or_else(|| {
                ProviderError::invalid(
                    "spec.ports[].nodePort",
                    format!(
                        "port {port} has no nodePort; NLB instance targets need one (remove \
                         allocateLoadBalancerNodePorts: false)"
                    ),
                )
            })?;
            node_ports.insert(np);
            match p.protocol {
                Protocol::Tcp | Protocol::Udp => {
                    protos.insert(p.protocol);
                }
                Protocol::Sctp => {
                    return Err(ProviderError::invalid(
                        "spec.ports[].protocol",
                        "SCTP is not supported by Network Load Balancers with instance targets",
                    ));
                }
            }
        }
        if node_ports.len() > 1 {
            return Err(ProviderError::invalid(
                "spec.ports[].nodePort",
                format!(
                    "TCP and UDP on port {port} must share one nodePort for a TCP_UDP listener"
                ),
            ));
        }
        let proto = match (
            protos.contains(&Protocol::Tcp),
            protos.contains(&Protocol::Udp),
        ) {
            (true, true) => TgProtocol::TcpUdp,
            (false, true) => TgProtocol::Udp,
            _ => TgProtocol::Tcp,
        };
        let np = node_ports.into_iter().next().unwrap_or_default();
        out.push((port, proto, np));
    }
    Ok(out)
}

impl Desired {
    /// Pure; the only place annotations are validated.
    pub fn from_spec(spec: &LoadBalancerSpec) -> Result<Desired, ProviderError> {
        let o = options::parse(&spec.annotations, spec.scheme)?;
        if !spec.requested_ips.is_empty() {
            return Err(ProviderError::invalid(
                "spec.loadBalancerIP",
                format!(
                    "cannot be set for an AWS NLB; use {} or {}",
                    options::EIP_ALLOCATIONS,
                    options::PRIVATE_IPV4
                ),
            ));
        }
        if o.security_groups.is_some() && !spec.source_ranges.is_empty() {
            return Err(ProviderError::invalid(
                options::SECURITY_GROUPS,
                "with your own security groups frontdesk manages no rules, so \
                 loadBalancerSourceRanges cannot be enforced; drop one of the two",
            ));
        }
        let health = health_spec(spec, &o);
        let tgs: Vec<TgSpec> = listeners(&spec.ports)?
            .into_iter()
            .map(|(port, protocol, node_port)| TgSpec {
                name: tg_name(
                    &spec.name,
                    &spec.cluster,
                    &spec.uid,
                    port,
                    protocol,
                    node_port,
                ),
                port,
                protocol,
                node_port,
                health: health.clone(),
            })
            .collect();
        let sg_name = o.security_groups.is_none().then(|| sg_name(&spec.name));
        let mut cidrs: Vec<String> = spec.source_ranges.iter().map(ToString::to_string).collect();
        if cidrs.is_empty() {
            cidrs.push("0.0.0.0/0".into());
            if o.ip_address_type == IpAddressType::Dualstack {
                cidrs.push("::/0".into());
            }
        }
        let sg_rules = if sg_name.is_some() {
            tgs.iter()
                .flat_map(|tg| {
                    tg.protocol.ip_protocols().iter().flat_map(|p| {
                        cidrs.iter().map(|c| SgRule {
                            protocol: (*p).to_string(),
                            port: tg.port,
                            peer: c.clone(),
                        })
                    })
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut tags = o.extra_tags.clone();
        tags.extend(spec.tags.clone());
        let mut tg_attributes = o.tg_attributes.clone();
        if let SessionAffinity::ClientIp { .. } = spec.session_affinity {
            // NLB's equivalent of ClientIP affinity; an explicit attribute must not contradict it.
            if tg_attributes
                .get("stickiness.enabled")
                .is_some_and(|v| v == "false")
            {
                return Err(ProviderError::invalid(
                    options::TG_ATTRIBUTES,
                    "stickiness.enabled=false contradicts sessionAffinity: ClientIP",
                ));
            }
            tg_attributes.insert("stickiness.enabled".into(), "true".into());
            tg_attributes.insert("stickiness.type".into(), "source_ip".into());
        }
        let mut lb_attributes = BTreeMap::new();
        if let Some(cz) = o.cross_zone {
            lb_attributes.insert("load_balancing.cross_zone.enabled".into(), cz.to_string());
        }
        Ok(Desired {
            lb_name: spec.name.clone(),
            scheme: o.scheme,
            tgs,
            sg_name,
            sg_rules,
            tags,
            tg_attributes,
            lb_attributes,
            options: o,
        })
    }

    pub fn scheme_str(&self) -> &'static str {
        match self.scheme {
            Scheme::Internal => "internal",
            Scheme::External => "internet-facing",
        }
    }
}

/// Instance ids of the backends, from `aws:///<zone>/<instance-id>` provider IDs. Nodes without
/// one cannot be targets (they are not EC2 instances we know) and are left out.
pub fn instance_ids(nodes: &[BackendNode]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter_map(|n| n.provider_id.as_deref())
        .filter(|p| p.starts_with("aws://"))
        .filter_map(|p| p.rsplit('/').next())
        .filter(|id| id.starts_with("i-"))
        .map(String::from)
        .collect()
}

/// `(add, remove)` to get from `current` to `desired`.
pub fn delta<T: Ord + Clone>(current: &BTreeSet<T>, desired: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        desired.difference(current).cloned().collect(),
        current.difference(desired).cloned().collect(),
    )
}

/// An existing listener as the cloud describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentListener {
    pub arn: String,
    pub port: u16,
    pub protocol: String,
    pub target_group_arn: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerPlan {
    /// Indexes into the desired target groups.
    pub create: Vec<usize>,
    /// (listener ARN, desired index) whose protocol or target group differs.
    pub modify: Vec<(String, usize)>,
    pub delete: Vec<String>,
}

/// Diff listeners by port: `tg_arns[i]` is the ARN of `tgs[i]`.
pub fn plan_listeners(
    current: &[CurrentListener],
    tgs: &[TgSpec],
    tg_arns: &[String],
) -> ListenerPlan {
    let mut plan = ListenerPlan::default();
    for (i, tg) in tgs.iter().enumerate() {
        match current.iter().find(|l| l.port == tg.port) {
            None => plan.create.push(i),
            Some(l) => {
                if l.protocol != tg.protocol.as_str()
                    || l.target_group_arn.as_deref() != Some(tg_arns[i].as_str())
                {
                    plan.modify.push((l.arn.clone(), i));
                }
            }
        }
    }
    for l in current {
        if !tgs.iter().any(|tg| tg.port == l.port) {
            plan.delete.push(l.arn.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests;
