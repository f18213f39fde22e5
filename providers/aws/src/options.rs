//! The upstream `service.beta.kubernetes.io/aws-load-balancer-*` annotations, parsed into typed
//! options. Pure: `record()` runs this so a bad value fails before any cloud call, and every
//! rejection names the annotation key and what it accepts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use frontdesk_core::provider::{ProviderError, Scheme};

pub const PREFIX: &str = "service.beta.kubernetes.io/aws-load-balancer-";

pub const TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
pub const INTERNAL: &str = "service.beta.kubernetes.io/aws-load-balancer-internal";
pub const SCHEME: &str = "service.beta.kubernetes.io/aws-load-balancer-scheme";
pub const SUBNETS: &str = "service.beta.kubernetes.io/aws-load-balancer-subnets";
pub const HC_PROTOCOL: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol";
pub const HC_PORT: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port";
pub const HC_PATH: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path";
pub const HC_INTERVAL: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval";
pub const HC_TIMEOUT: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-timeout";
pub const HC_HEALTHY: &str =
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-healthy-threshold";
pub const HC_UNHEALTHY: &str =
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-unhealthy-threshold";
pub const TG_ATTRIBUTES: &str =
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes";
pub const PROXY_PROTOCOL: &str = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol";
pub const CROSS_ZONE: &str =
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled";
pub const EXTRA_TAGS: &str =
    "service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags";
pub const SECURITY_GROUPS: &str = "service.beta.kubernetes.io/aws-load-balancer-security-groups";
pub const EIP_ALLOCATIONS: &str = "service.beta.kubernetes.io/aws-load-balancer-eip-allocations";
pub const PRIVATE_IPV4: &str =
    "service.beta.kubernetes.io/aws-load-balancer-private-ipv4-addresses";
pub const IP_ADDRESS_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-ip-address-type";

/// Every key this provider understands; any other key under [`PREFIX`] is rejected rather than
/// silently ignored (a user who writes `ssl-cert` must learn it does nothing here).
const KNOWN: &[&str] = &[
    TYPE,
    INTERNAL,
    SCHEME,
    SUBNETS,
    HC_PROTOCOL,
    HC_PORT,
    HC_PATH,
    HC_INTERVAL,
    HC_TIMEOUT,
    HC_HEALTHY,
    HC_UNHEALTHY,
    TG_ATTRIBUTES,
    PROXY_PROTOCOL,
    CROSS_ZONE,
    EXTRA_TAGS,
    SECURITY_GROUPS,
    EIP_ALLOCATIONS,
    PRIVATE_IPV4,
    IP_ADDRESS_TYPE,
];

/// Target group attributes NLB instance target groups accept, with their value kind.
const TG_ATTRIBUTE_KEYS: &[(&str, ValueKind)] = &[
    ("preserve_client_ip.enabled", ValueKind::Bool),
    ("proxy_protocol_v2.enabled", ValueKind::Bool),
    (
        "deregistration_delay.timeout_seconds",
        ValueKind::Int(0, 3600),
    ),
    (
        "deregistration_delay.connection_termination.enabled",
        ValueKind::Bool,
    ),
    ("stickiness.enabled", ValueKind::Bool),
    ("stickiness.type", ValueKind::SourceIp),
    ("load_balancing.cross_zone.enabled", ValueKind::CrossZone),
];

#[derive(Clone, Copy, Debug)]
enum ValueKind {
    Bool,
    Int(i64, i64),
    SourceIp,
    CrossZone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HcProtocol {
    Tcp,
    Http,
    Https,
}

impl HcProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            HcProtocol::Tcp => "TCP",
            HcProtocol::Http => "HTTP",
            HcProtocol::Https => "HTTPS",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpAddressType {
    Ipv4,
    Dualstack,
}

impl IpAddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            IpAddressType::Ipv4 => "ipv4",
            IpAddressType::Dualstack => "dualstack",
        }
    }
}

/// Health check overrides; `None` = the default for the Service's traffic policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthOverrides {
    pub protocol: Option<HcProtocol>,
    /// `traffic-port` or a port number, as AWS takes it.
    pub port: Option<String>,
    pub path: Option<String>,
    pub interval: Option<i32>,
    pub timeout: Option<i32>,
    pub healthy: Option<i32>,
    pub unhealthy: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub scheme: Scheme,
    /// Subnet ids or `Name` tags; `None` = tag discovery.
    pub subnets: Option<Vec<String>>,
    pub health: HealthOverrides,
    pub tg_attributes: BTreeMap<String, String>,
    /// `None` = not managed (whatever the cloud has stays).
    pub cross_zone: Option<bool>,
    pub extra_tags: BTreeMap<String, String>,
    /// Bring-your-own security groups: then the provider creates none.
    pub security_groups: Option<Vec<String>>,
    pub eip_allocations: Option<Vec<String>>,
    pub private_ipv4: Option<Vec<Ipv4Addr>>,
    pub ip_address_type: IpAddressType,
}

fn invalid(key: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::invalid(key, message)
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ProviderError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            key,
            format!("{value:?} is not a boolean; use true or false"),
        )),
    }
}

fn parse_int(key: &str, value: &str, min: i32, max: i32) -> Result<i32, ProviderError> {
    match value.trim().parse::<i32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            key,
            format!("{value:?} must be an integer from {min} to {max}"),
        )),
    }
}

/// `k1=v1,k2=v2`; keys non-empty, no duplicates.
fn parse_pairs(key: &str, value: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let mut out = BTreeMap::new();
    for item in list(value) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(invalid(
                key,
                format!("{item:?} is not key=value; write k1=v1,k2=v2"),
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(invalid(key, format!("{item:?} has an empty key")));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(invalid(key, format!("key {k:?} appears twice")));
        }
    }
    Ok(out)
}

fn scheme(annotations: &BTreeMap<String, String>, core: Scheme) -> Result<Scheme, ProviderError> {
    // Upstream meaning: any non-empty value except "false" makes the load balancer internal.
    let internal = annotations
        .get(INTERNAL)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| !v.eq_ignore_ascii_case("false"));
    let by_scheme = match annotations.get(SCHEME).map(|v| v.trim()) {
        None => None,
        Some("internal") => Some(Scheme::Internal),
        Some("internet-facing") => Some(Scheme::External),
        Some(other) => {
            return Err(invalid(
                SCHEME,
                format!("{other:?} is not a scheme; use internal or internet-facing"),
            ));
        }
    };
    let by_internal = internal.map(|i| {
        if i {
            Scheme::Internal
        } else {
            Scheme::External
        }
    });
    match (by_scheme, by_internal) {
        (Some(a), Some(b)) if a != b => Err(invalid(
            SCHEME,
            format!("contradicts {INTERNAL}; set one of the two"),
        )),
        (Some(s), _) | (None, Some(s)) => Ok(s),
        (None, None) => Ok(core),
    }
}

fn tg_attributes(value: &str) -> Result<BTreeMap<String, String>, ProviderError> {
    let pairs = parse_pairs(TG_ATTRIBUTES, value)?;
    for (k, v) in &pairs {
        let Some((_, kind)) = TG_ATTRIBUTE_KEYS.iter().find(|(name, _)| name == k) else {
            let accepted: Vec<&str> = TG_ATTRIBUTE_KEYS.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                TG_ATTRIBUTES,
                format!(
                    "attribute {k:?} is not supported; accepted: {}",
                    accepted.join(", ")
                ),
            ));
        };
        let ok = match kind {
            ValueKind::Bool => v == "true" || v == "false",
            ValueKind::Int(min, max) => v.parse::<i64>().is_ok_and(|n| (*min..=*max).contains(&n)),
            ValueKind::SourceIp => v == "source_ip",
            ValueKind::CrossZone => {
                ["true", "false", "use_load_balancer_configuration"].contains(&v.as_str())
            }
        };
        if !ok {
            return Err(invalid(
                TG_ATTRIBUTES,
                format!("{k}={v:?} has an unsupported value ({kind:?})"),
            ));
        }
    }
    Ok(pairs)
}

fn health(a: &BTreeMap<String, String>) -> Result<HealthOverrides, ProviderError> {
    let protocol = match a.get(HC_PROTOCOL).map(|v| v.trim().to_ascii_uppercase()) {
        None => None,
        Some(p) if p == "TCP" => Some(HcProtocol::Tcp),
        Some(p) if p == "HTTP" => Some(HcProtocol::Http),
        Some(p) if p == "HTTPS" => Some(HcProtocol::Https),
        Some(p) => {
            return Err(invalid(
                HC_PROTOCOL,
                format!("{p:?} is not supported; use TCP, HTTP or HTTPS"),
            ));
        }
    };
    let port = match a.get(HC_PORT).map(|v| v.trim()) {
        None => None,
        Some("traffic-port") => Some("traffic-port".to_string()),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n.to_string()),
            _ => {
                return Err(invalid(
                    HC_PORT,
                    format!("{p:?} must be traffic-port or a port number 1-65535"),
                ));
            }
        },
    };
    let path = a.get(HC_PATH).map(|p| p.trim().to_string());
    if let Some(p) = &path
        && !p.starts_with('/')
    {
        return Err(invalid(HC_PATH, format!("{p:?} must start with /")));
    }
    if path.is_some() && protocol == Some(HcProtocol::Tcp) {
        return Err(invalid(
            HC_PATH,
            "applies only to HTTP or HTTPS health checks; remove it or set the protocol",
        ));
    }
    let num = |key: &str, min: i32, max: i32| -> Result<Option<i32>, ProviderError> {
        a.get(key).map(|v| parse_int(key, v, min, max)).transpose()
    };
    Ok(HealthOverrides {
        protocol,
        port,
        path,
        interval: num(HC_INTERVAL, 5, 300)?,
        timeout: num(HC_TIMEOUT, 2, 120)?,
        healthy: num(HC_HEALTHY, 2, 10)?,
        unhealthy: num(HC_UNHEALTHY, 2, 10)?,
    })
}

fn ids_with_prefix(key: &str, value: &str, prefix: &str) -> Result<Vec<String>, ProviderError> {
    let ids = list(value);
    if ids.is_empty() {
        return Err(invalid(key, "is empty; list at least one id or remove it"));
    }
    if let Some(bad) = ids.iter().find(|id| !id.starts_with(prefix)) {
        return Err(invalid(
            key,
            format!("{bad:?} is not an id starting with {prefix}"),
        ));
    }
    Ok(ids)
}

/// Parse every AWS annotation of a Service. `core_scheme` is the cloud-neutral scheme the
/// controller derived; the AWS keys override it.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    core_scheme: Scheme,
) -> Result<Options, ProviderError> {
    if let Some(unknown) = annotations
        .keys()
        .find(|k| k.starts_with(PREFIX) && !KNOWN.contains(&k.as_str()))
    {
        return Err(invalid(
            unknown,
            "is not supported by frontdesk's AWS provider (NLB, instance targets); remove it",
        ));
    }
    if let Some(t) = annotations.get(TYPE).map(|v| v.trim())
        && t != "nlb"
    {
        return Err(invalid(
            TYPE,
            format!("{t:?} is not supported; frontdesk makes Network Load Balancers: use nlb"),
        ));
    }
    let scheme = scheme(annotations, core_scheme)?;
    let subnets = annotations.get(SUBNETS).map(|v| list(v));
    if subnets.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(SUBNETS, "is empty; list subnet ids or Name tags"));
    }
    let mut tg_attrs = match annotations.get(TG_ATTRIBUTES) {
        Some(v) => tg_attributes(v)?,
        None => BTreeMap::new(),
    };
    if let Some(v) = annotations.get(PROXY_PROTOCOL) {
        if v.trim() != "*" {
            return Err(invalid(
                PROXY_PROTOCOL,
                format!("{v:?} is not supported; use *"),
            ));
        }
        if tg_attrs
            .get("proxy_protocol_v2.enabled")
            .is_some_and(|v| v == "false")
        {
            return Err(invalid(
                PROXY_PROTOCOL,
                format!("contradicts proxy_protocol_v2.enabled=false in {TG_ATTRIBUTES}"),
            ));
        }
        tg_attrs.insert("proxy_protocol_v2.enabled".into(), "true".into());
    }
    let cross_zone = annotations
        .get(CROSS_ZONE)
        .map(|v| parse_bool(CROSS_ZONE, v))
        .transpose()?;
    let extra_tags = match annotations.get(EXTRA_TAGS) {
        Some(v) => parse_pairs(EXTRA_TAGS, v)?,
        None => BTreeMap::new(),
    };
    if let Some(k) = extra_tags
        .keys()
        .find(|k| k.starts_with("frontdesk.dev/") || k.starts_with("aws:"))
    {
        return Err(invalid(
            EXTRA_TAGS,
            format!("tag key {k:?} is reserved (frontdesk.dev/ and aws: prefixes)"),
        ));
    }
    let security_groups = annotations
        .get(SECURITY_GROUPS)
        .map(|v| ids_with_prefix(SECURITY_GROUPS, v, "sg-"))
        .transpose()?;
    let eip_allocations = annotations
        .get(EIP_ALLOCATIONS)
        .map(|v| ids_with_prefix(EIP_ALLOCATIONS, v, "eipalloc-"))
        .transpose()?;
    let private_ipv4 = match annotations.get(PRIVATE_IPV4) {
        None => None,
        Some(v) => {
            let mut ips = Vec::new();
            for item in list(v) {
                ips.push(item.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(PRIVATE_IPV4, format!("{item:?} is not an IPv4 address"))
                })?);
            }
            Some(ips)
        }
    };
    if eip_allocations.is_some() && scheme == Scheme::Internal {
        return Err(invalid(
            EIP_ALLOCATIONS,
            "needs an internet-facing load balancer; this one is internal",
        ));
    }
    if private_ipv4.is_some() && scheme == Scheme::External {
        return Err(invalid(
            PRIVATE_IPV4,
            "needs an internal load balancer; set aws-load-balancer-scheme: internal",
        ));
    }
    for (key, n) in [
        (EIP_ALLOCATIONS, eip_allocations.as_ref().map(Vec::len)),
        (PRIVATE_IPV4, private_ipv4.as_ref().map(Vec::len)),
    ] {
        if let (Some(n), Some(s)) = (n, subnets.as_ref())
            && n != s.len()
        {
            return Err(invalid(
                key,
                format!(
                    "has {n} entries but {SUBNETS} lists {}; give one per subnet",
                    s.len()
                ),
            ));
        }
    }
    let ip_address_type = match annotations.get(IP_ADDRESS_TYPE).map(|v| v.trim()) {
        None | Some("ipv4") => IpAddressType::Ipv4,
        Some("dualstack") => IpAddressType::Dualstack,
        Some(other) => {
            return Err(invalid(
                IP_ADDRESS_TYPE,
                format!("{other:?} is not supported; use ipv4 or dualstack"),
            ));
        }
    };
    Ok(Options {
        scheme,
        subnets,
        health: health(annotations)?,
        tg_attributes: tg_attrs,
        cross_zone,
        extra_tags,
        security_groups,
        eip_allocations,
        private_ipv4,
        ip_address_type,
    })
}

#[cfg(test)]
mod tests;
