//! The IP-shaped parts of Service validation (v1.32): `clusterIPs` / `ipFamilies` /
//! `ipFamilyPolicy` coherence and their immutability on update, `externalIPs`, and
//! `status.loadBalancer` for writes to the status subresource.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::model::{EXTERNAL_NAME, LOAD_BALANCER, NONE, SINGLE_STACK, Spec};
use crate::kube::errors::Cause;
use crate::kube::validation::{go_quote, go_string_slice, is_dns1123_subdomain};

pub const VALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Go's `%#v` of a `*string`-typed field once dereferenced (`nil` renders as `"null"`).
pub fn opt_quote(v: &Option<String>) -> String {
    go_quote(v.as_deref().unwrap_or("null"))
}

pub fn is_valid_ip(v: &str) -> bool {
    v.parse::<IpAddr>().is_ok()
}

/// `ValidateNonSpecialIP` for `spec.externalIPs`.
pub fn validate_external_ip(path: &str, v: &str, out: &mut Vec<Cause>) {
    let Ok(ip) = v.parse::<IpAddr>() else {
        out.push(Cause::invalid(path, go_quote(v), VALID_IP));
        return;
    };
    let quoted = go_quote(v);
    if ip.is_unspecified() {
        out.push(Cause::invalid(
            path,
            &quoted,
            &format!("may not be unspecified ({v})"),
        ));
    }
    if ip.is_loopback() {
        out.push(Cause::invalid(
            path,
            &quoted,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        out.push(Cause::invalid(
            path,
            &quoted,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let ll_multicast = match ip {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => (a.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        out.push(Cause::invalid(
            path,
            &quoted,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// `ValidateServiceClusterIPsRelatedFields`; also run by allocation before it touches IPs.
pub fn validate_cluster_ips_related(spec: &Spec) -> Vec<Cause> {
    let mut out = Vec::new();
    if spec.type_ == EXTERNAL_NAME {
        return out;
    }
    let ips = go_string_slice(&spec.cluster_ips);
    if !spec.cluster_ip.is_empty() {
        if spec.cluster_ips.is_empty() {
            out.push(Cause::required("spec.clusterIPs", ""));
        } else if spec.cluster_ips[0] != spec.cluster_ip {
            out.push(Cause::invalid(
                "spec.clusterIPs",
                &ips,
                "first value must match `clusterIP`",
            ));
        }
    } else if !spec.cluster_ips.is_empty() {
        out.push(Cause::invalid(
            "spec.clusterIPs",
            &ips,
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = HashSet::new();
    for (i, fam) in spec.ip_families.iter().enumerate() {
        if fam != "IPv4" && fam != "IPv6" {
            out.push(Cause::not_supported(
                format!("spec.ipFamilies[{i}]"),
                go_quote(fam),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(fam.as_str()) {
            out.push(Cause::duplicate(
                format!("spec.ipFamilies[{i}]"),
                go_quote(fam),
            ));
        }
    }
    if let Some(policy) = &spec.ip_family_policy
        && !matches!(
            policy.as_str(),
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        )
    {
        out.push(Cause::not_supported(
            "spec.ipFamilyPolicy",
            go_quote(policy),
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut invalid_ips = false;
    for (i, ip) in spec.cluster_ips.iter().enumerate() {
        if i == 0 && ip == NONE {
            if spec.cluster_ips.len() > 1 {
                invalid_ips = true;
                out.push(Cause::invalid(
                    "spec.clusterIPs",
                    &ips,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !is_valid_ip(ip) {
            invalid_ips = true;
            out.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                go_quote(ip),
                VALID_IP,
            ));
        }
    }
    if spec.cluster_ips.len() > 2 {
        out.push(Cause::invalid(
            "spec.clusterIPs",
            &ips,
            "may only hold up to 2 values",
        ));
    }
    if invalid_ips {
        return out;
    }
    if spec.cluster_ips.len() > 1 {
        let v6: Vec<bool> = spec.cluster_ips.iter().map(|ip| ip.contains(':')).collect();
        if v6.len() != 2 || v6[0] == v6[1] {
            out.push(Cause::invalid(
                "spec.clusterIPs",
                &ips,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !spec.is_headless() && !spec.cluster_ips.is_empty() && !spec.ip_families.is_empty() {
        for (i, ip) in spec
            .cluster_ips
            .iter()
            .enumerate()
            .take(spec.ip_families.len())
        {
            let is_v6 = ip.contains(':');
            let fam = spec.ip_families[i].as_str();
            if fam == "IPv4" && is_v6 {
                out.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    go_quote(ip),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_v6 {
                out.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    go_quote(ip),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    out
}

pub fn validate_upgrade_downgrade_cluster_ips(old: &Spec, new: &Spec, out: &mut Vec<Cause>) {
    if new.type_ == EXTERNAL_NAME
        || old.type_ == EXTERNAL_NAME
        || (old.is_headless() && new.is_headless())
    {
        return;
    }
    let ips = go_string_slice(&new.cluster_ips);
    let (o, n) = (&old.cluster_ips, &new.cluster_ips);
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                out.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &ips,
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            out.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &ips,
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            out.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &ips,
                "may not change once set",
            ));
        }
        if n.len() == 1 && new.ip_family_policy.as_deref() != Some(SINGLE_STACK) {
            out.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                opt_quote(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        out.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &ips,
            "may not change once set",
        ));
    }
}

pub fn validate_upgrade_downgrade_ip_families(old: &Spec, new: &Spec, out: &mut Vec<Cause>) {
    if new.type_ == EXTERNAL_NAME
        || old.type_ == EXTERNAL_NAME
        || old.is_headless()
        || new.is_headless()
    {
        return;
    }
    let fams = go_family_slice(&new.ip_families);
    let (o, n) = (&old.ip_families, &new.ip_families);
    if o.len() == n.len() {
        for (i, f) in o.iter().enumerate() {
            if *f != n[i] {
                out.push(Cause::invalid(
                    "spec.ipFamilies[0]",
                    &fams,
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if new.cluster_ips.is_empty() {
            out.push(Cause::invalid(
                "spec.ipFamilies[0]",
                &fams,
                "primary ipFamily can not be unset",
            ));
        }
        if !n.is_empty() && n[0] != o[0] {
            out.push(Cause::invalid(
                "spec.ipFamilies[0]",
                go_string_slice(&new.cluster_ips),
                "may not change once set",
            ));
        }
        if n.len() == 1 && new.ip_family_policy.as_deref() != Some(SINGLE_STACK) {
            out.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                opt_quote(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        out.push(Cause::invalid(
            "spec.ipFamilies[0]",
            go_string_slice(&new.cluster_ips),
            "may not change once set",
        ));
    }
}

/// Go's `%#v` of a `[]core.IPFamily`.
fn go_family_slice(items: &[String]) -> String {
    if items.is_empty() {
        return "[]core.IPFamily(nil)".to_string();
    }
    let inner = items
        .iter()
        .map(|s| go_quote(s))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[]core.IPFamily{{{inner}}}")
}

/// `ValidateLoadBalancerStatus` for writes to `services/status`.
pub fn validate_lb_status(obj: &Value, spec: &Spec) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(ingress) = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
    else {
        return out;
    };
    let base = "status.loadBalancer.ingress";
    if spec.type_ != LOAD_BALANCER && !ingress.is_empty() {
        out.push(Cause::forbidden(
            base,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return out;
    }
    for (i, ing) in ingress.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let ip = ing.get("ip").and_then(Value::as_str).unwrap_or_default();
        if !ip.is_empty() && !is_valid_ip(ip) {
            out.push(Cause::invalid(format!("{path}.ip"), go_quote(ip), VALID_IP));
        }
        match ing.get("ipMode").and_then(Value::as_str) {
            None if !ip.is_empty() => out.push(Cause::required(
                format!("{path}.ipMode"),
                "must be specified when `ip` is set",
            )),
            Some(_) if ip.is_empty() => {
                out.push(Cause::forbidden(
                    format!("{path}.ipMode"),
                    "may not be specified when `ip` is not set",
                ));
            }
            Some(mode) if mode != "VIP" && mode != "Proxy" => {
                out.push(Cause::not_supported(
                    format!("{path}.ipMode"),
                    go_quote(mode),
                    &["Proxy", "VIP"],
                ));
            }
            _ => {}
        }
        let host = ing
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !host.is_empty() {
            for msg in is_dns1123_subdomain(host) {
                out.push(Cause::invalid(
                    format!("{path}.hostname"),
                    go_quote(host),
                    &msg,
                ));
            }
            if is_valid_ip(host) {
                out.push(Cause::invalid(
                    format!("{path}.hostname"),
                    go_quote(host),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    out
}
