//! `ValidateService`, `ValidateServiceUpdate` and `ValidateServiceStatusUpdate` of
//! `pkg/apis/core/validation` (v1.32): same checks, same order, same field paths (including
//! upstream's `spec.LoadBalancerSourceRanges` capital L) and same rendered values.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::model::{CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT, NONE, Spec, TargetPort};
use super::validate_ips::{
    opt_quote, validate_cluster_ips_related, validate_external_ip,
    validate_upgrade_downgrade_cluster_ips, validate_upgrade_downgrade_ip_families,
};
use crate::kube::errors::Cause;
use crate::kube::validation::{
    go_quote, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name,
    validate_labels,
};

const RANGE_1_65535: &str = "must be between 1 and 65535, inclusive";
const VALID_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const ONLY_LB: &str = "may only be used when `type` is 'LoadBalancer'";
const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const TOPOLOGY_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const MAX_CLIENT_IP_TIMEOUT: i64 = 86400;

/// `core.ServicePort{...}` as Go prints the (protocol, port) key of a duplicate.
fn service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

fn validate_port(spec: &Spec, i: usize, names: &mut HashSet<String>, out: &mut Vec<Cause>) {
    let p = &spec.ports[i];
    let path = format!("spec.ports[{i}]");
    if spec.ports.len() > 1 && p.name.is_empty() {
        out.push(Cause::required(format!("{path}.name"), ""));
    } else if !p.name.is_empty() {
        for msg in is_dns1123_label(&p.name) {
            out.push(Cause::invalid(
                format!("{path}.name"),
                go_quote(&p.name),
                &msg,
            ));
        }
        if !names.insert(p.name.clone()) {
            out.push(Cause::duplicate(format!("{path}.name"), go_quote(&p.name)));
        }
    }
    if !(1..=65535).contains(&p.port) {
        out.push(Cause::invalid(
            format!("{path}.port"),
            p.port,
            RANGE_1_65535,
        ));
    }
    if p.protocol.is_empty() {
        out.push(Cause::required(format!("{path}.protocol"), ""));
    } else if !matches!(p.protocol.as_str(), "TCP" | "UDP" | "SCTP") {
        out.push(Cause::not_supported(
            format!("{path}.protocol"),
            go_quote(&p.protocol),
            &["SCTP", "TCP", "UDP"],
        ));
    }
    match &p.target_port {
        TargetPort::Int(v) if !(1..=65535).contains(v) => {
            out.push(Cause::invalid(
                format!("{path}.targetPort"),
                v,
                RANGE_1_65535,
            ));
        }
        TargetPort::Str(s) => {
            for msg in is_valid_port_name(s) {
                out.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    go_quote(s),
                    &msg,
                ));
            }
        }
        _ => {}
    }
    if let Some(app) = &p.app_protocol {
        for msg in is_qualified_name(app) {
            out.push(Cause::invalid(
                format!("{path}.appProtocol"),
                go_quote(app),
                &msg,
            ));
        }
    }
}

fn validate_session_affinity(spec: &Spec, out: &mut Vec<Cause>) {
    match spec.session_affinity.as_str() {
        "" => out.push(Cause::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let base = "spec.sessionAffinityConfig";
            let when = "when session affinity type is ClientIP";
            let cfg = spec.session_affinity_config.as_ref();
            let client = cfg.and_then(|c| c.get("clientIP")).filter(|v| !v.is_null());
            let timeout = client
                .and_then(|c| c.get("timeoutSeconds"))
                .filter(|v| !v.is_null());
            match (cfg, client, timeout) {
                (None, _, _) => out.push(Cause::required(base, when)),
                (_, None, _) => out.push(Cause::required(format!("{base}.clientIP"), when)),
                (_, _, None) => out.push(Cause::required(
                    format!("{base}.clientIP.timeoutSeconds"),
                    when,
                )),
                (_, _, Some(t)) => {
                    let secs = t.as_i64().unwrap_or(0);
                    if secs <= 0 || secs > MAX_CLIENT_IP_TIMEOUT {
                        out.push(Cause::invalid(
                            format!("{base}.clientIP.timeoutSeconds"),
                            secs,
                            &format!(
                                "must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"
                            ),
                        ));
                    }
                }
            }
        }
        NONE => {
            if spec.session_affinity_config.is_some() {
                out.push(Cause::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => out.push(Cause::not_supported(
            "spec.sessionAffinity",
            go_quote(other),
            &["ClientIP", "None"],
        )),
    }
}

fn validate_source_ranges(
    spec: &Spec,
    annotations: Option<&Map<String, Value>>,
    out: &mut Vec<Cause>,
) {
    if !spec.load_balancer_source_ranges.is_empty() {
        // Upstream's field path really is capitalised here.
        let path = "spec.LoadBalancerSourceRanges";
        if spec.type_ != LOAD_BALANCER {
            out.push(Cause::forbidden(path, ONLY_LB));
        }
        for (i, v) in spec.load_balancer_source_ranges.iter().enumerate() {
            let v = v.trim();
            if v.parse::<ipnet::IpNet>().is_err() {
                out.push(Cause::invalid(
                    format!("{path}[{i}]"),
                    go_quote(v),
                    VALID_CIDR,
                ));
            }
        }
    } else if let Some(val) = annotations
        .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
        .and_then(Value::as_str)
    {
        let path = format!("metadata.annotations[{SOURCE_RANGES_ANNOTATION}]");
        if spec.type_ != LOAD_BALANCER {
            out.push(Cause::forbidden(&path, ONLY_LB));
        }
        let val = val.trim();
        if !val.is_empty() {
            for v in val.split(',').map(str::trim) {
                if v.parse::<ipnet::IpNet>().is_err() {
                    out.push(Cause::invalid(&path, go_quote(v), VALID_CIDR));
                }
            }
        }
    }
}

fn validate_lb_class(old: Option<&Spec>, spec: &Spec, out: &mut Vec<Cause>) {
    if let Some(old) = old
        && old.type_ == LOAD_BALANCER
        && spec.type_ == LOAD_BALANCER
        && old.load_balancer_class != spec.load_balancer_class
    {
        out.push(Cause::invalid(
            "spec.loadBalancerClass",
            opt_quote(&spec.load_balancer_class),
            "may not change once set",
        ));
    }
    if let Some(class) = &spec.load_balancer_class {
        if spec.type_ == LOAD_BALANCER {
            for msg in is_qualified_name(class) {
                out.push(Cause::invalid(
                    "spec.loadBalancerClass",
                    go_quote(class),
                    &msg,
                ));
            }
        } else {
            out.push(Cause::forbidden("spec.loadBalancerClass", ONLY_LB));
        }
    }
}

fn validate_traffic_policies(spec: &Spec, out: &mut Vec<Cause>) {
    let etp = spec.external_traffic_policy.as_str();
    if !spec.externally_accessible() {
        if !etp.is_empty() {
            out.push(Cause::invalid(
                "spec.externalTrafficPolicy",
                go_quote(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        out.push(Cause::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        out.push(Cause::not_supported(
            "spec.externalTrafficPolicy",
            go_quote(etp),
            &["Cluster", "Local"],
        ));
    }
    let hc = spec.health_check_node_port;
    if !spec.needs_hc_node_port() {
        if hc != 0 {
            out.push(Cause::invalid(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        out.push(Cause::required("spec.healthCheckNodePort", ""));
    } else if !(1..=65535).contains(&hc) {
        out.push(Cause::invalid(
            "spec.healthCheckNodePort",
            hc,
            RANGE_1_65535,
        ));
    }
    match &spec.internal_traffic_policy {
        None if matches!(spec.type_.as_str(), CLUSTER_IP | NODE_PORT | LOAD_BALANCER) => {
            out.push(Cause::required("spec.internalTrafficPolicy", ""));
        }
        Some(itp) if itp != "Cluster" && itp != "Local" => {
            out.push(Cause::not_supported(
                "spec.internalTrafficPolicy",
                go_quote(itp),
                &["Cluster", "Local"],
            ));
        }
        _ => {}
    }
    if let Some(td) = &spec.traffic_distribution
        && td != "PreferClose"
    {
        out.push(Cause::not_supported(
            "spec.trafficDistribution",
            go_quote(td),
            &["PreferClose"],
        ));
    }
}

/// `ValidateService` minus object metadata (the store validates that for every kind).
pub fn validate_service(spec: &Spec, annotations: Option<&Map<String, Value>>) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(a) = annotations {
        let mode = a.get(TOPOLOGY_MODE).and_then(Value::as_str);
        let hints = a.get(TOPOLOGY_HINTS).and_then(Value::as_str);
        if let (Some(mode), Some(hints)) = (mode, hints)
            && mode != hints
        {
            out.push(Cause::invalid(
                format!("metadata.annotations[{TOPOLOGY_MODE}]"),
                go_quote(mode),
                &format!("must match annotations[{TOPOLOGY_HINTS}] when both are specified"),
            ));
        }
    }
    let headless = spec.is_headless();
    if spec.ports.is_empty() && !headless && spec.type_ != EXTERNAL_NAME {
        out.push(Cause::required("spec.ports", ""));
    }
    match spec.type_.as_str() {
        LOAD_BALANCER | NODE_PORT if headless => out.push(Cause::invalid(
            "spec.clusterIPs[0]",
            go_quote(NONE),
            &format!("may not be set to 'None' for {} services", spec.type_),
        )),
        EXTERNAL_NAME => {
            if !spec.cluster_ips.is_empty() {
                out.push(Cause::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !spec.ip_families.is_empty() {
                out.push(Cause::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                out.push(Cause::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = spec
                .external_name
                .strip_suffix('.')
                .unwrap_or(&spec.external_name);
            if cname.is_empty() {
                out.push(Cause::required("spec.externalName", ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    out.push(Cause::invalid("spec.externalName", go_quote(cname), &msg));
                }
            }
        }
        _ => {}
    }
    let mut names = HashSet::new();
    for i in 0..spec.ports.len() {
        validate_port(spec, i, &mut names, &mut out);
    }
    if let Some(selector) = &spec.selector {
        out.extend(validate_labels(selector, "spec.selector"));
    }
    validate_session_affinity(spec, &mut out);
    out.extend(validate_cluster_ips_related(spec));
    for (i, ip) in spec.external_ips.iter().enumerate() {
        validate_external_ip(&format!("spec.externalIPs[{i}]"), ip, &mut out);
    }
    if spec.type_.is_empty() {
        out.push(Cause::required("spec.type", ""));
    } else if !matches!(
        spec.type_.as_str(),
        CLUSTER_IP | NODE_PORT | LOAD_BALANCER | EXTERNAL_NAME
    ) {
        out.push(Cause::not_supported(
            "spec.type",
            go_quote(&spec.type_),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    if spec.type_ == CLUSTER_IP {
        for (i, p) in spec.ports.iter().enumerate() {
            if p.node_port != 0 {
                out.push(Cause::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if p.node_port != 0 && !node_ports.insert((p.protocol.as_str(), p.node_port)) {
            out.push(Cause::duplicate(
                format!("spec.ports[{i}].nodePort"),
                p.node_port,
            ));
        }
    }
    let mut ports = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if !ports.insert((p.protocol.as_str(), p.port)) {
            out.push(Cause::duplicate(
                format!("spec.ports[{i}]"),
                service_port_key(&p.protocol, p.port),
            ));
        }
    }
    validate_source_ranges(spec, annotations, &mut out);
    if spec.allocate_lb_node_ports.is_some() && spec.type_ != LOAD_BALANCER {
        out.push(Cause::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            ONLY_LB,
        ));
    }
    if spec.type_ == LOAD_BALANCER && spec.allocate_lb_node_ports.is_none() {
        // Upstream quirk: this path has no `spec.` prefix.
        out.push(Cause::required("allocateLoadBalancerNodePorts", ""));
    }
    validate_lb_class(None, spec, &mut out);
    validate_traffic_policies(spec, &mut out);
    out
}

/// `ValidateServiceUpdate` minus object metadata.
pub fn validate_service_update(
    new: &Spec,
    old: &Spec,
    annotations: Option<&Map<String, Value>>,
) -> Vec<Cause> {
    let mut out = Vec::new();
    validate_upgrade_downgrade_cluster_ips(old, new, &mut out);
    validate_upgrade_downgrade_ip_families(old, new, &mut out);
    validate_lb_class(Some(old), new, &mut out);
    if old.needs_hc_node_port()
        && new.needs_hc_node_port()
        && old.health_check_node_port != new.health_check_node_port
    {
        out.push(Cause::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        ));
    }
    out.extend(validate_service(new, annotations));
    out
}

/// Keeps the first of identical causes: upstream's message de-duplicates them too.
pub fn dedup(causes: Vec<Cause>) -> Vec<Cause> {
    let mut seen = HashSet::new();
    causes
        .into_iter()
        .filter(|c| seen.insert((c.field.clone(), c.message.clone())))
        .collect()
}
