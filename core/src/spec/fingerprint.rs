//! A hash of everything about a Service that can change its load balancer.
//!
//! Upstream re-ensures on *any* annotation change (`needsUpdate` #7), so kubectl's
//! last-applied copy, external-dns or Argo CD bookkeeping cause cloud calls. frontdesk compares
//! this fingerprint instead. Covered: type, loadBalancerClass, uid, ports (by index: name,
//! protocol, port, nodePort, appProtocol), source ranges, session affinity and its timeout,
//! loadBalancerIP, externalIPs, externalTrafficPolicy, healthCheckNodePort, ipFamilies (the
//! whole list, not only its length), and annotations under `annotations::HONOURED_DOMAINS`.
//!
//! Deliberately not covered: `targetPort` (the load balancer sends to the NodePort; kube-proxy
//! maps it to the target port, so a targetPort change needs no cloud work — upstream compares
//! it), labels, selector, status, finalizers, and our own provisioning record.
//!
//! Spellings that mean the same thing hash the same (unset protocol = TCP, unset affinity =
//! None, nodePort 0 = unset, unset vs empty lists), so a defaulting round-trip through the API
//! server is not a change. The hash is FNV-1a over a canonical JSON form: identical across
//! processes and Rust versions, so it may be stored.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use serde::Serialize;

use super::build::DEFAULT_AFFINITY_TIMEOUT;
use crate::annotations::is_honoured_key;

#[derive(Serialize)]
struct Port<'a> {
    name: &'a str,
    protocol: &'a str,
    port: i32,
    node_port: Option<i32>,
    app_protocol: Option<&'a str>,
}

#[derive(Serialize)]
struct Projection<'a> {
    uid: &'a str,
    type_: &'a str,
    class: &'a str,
    ports: Vec<Port<'a>>,
    source_ranges: Vec<&'a str>,
    session_affinity: &'a str,
    affinity_timeout: Option<i64>,
    load_balancer_ip: &'a str,
    external_ips: Vec<&'a str>,
    external_traffic_policy: &'a str,
    health_check_node_port: Option<i32>,
    ip_families: Vec<&'a str>,
    annotations: BTreeMap<&'a str, &'a str>,
}

fn strs(v: &Option<Vec<String>>) -> Vec<&str> {
    v.iter().flatten().map(String::as_str).collect()
}

fn project<'a>(svc: &'a Service, spec: &'a ServiceSpec) -> Projection<'a> {
    let session_affinity = match spec.session_affinity.as_deref() {
        None | Some("") => "None",
        Some(s) => s,
    };
    let affinity_timeout = (session_affinity == "ClientIP").then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .map_or(i64::from(DEFAULT_AFFINITY_TIMEOUT), i64::from)
    });
    Projection {
        uid: svc.metadata.uid.as_deref().unwrap_or_default(),
        type_: spec.type_.as_deref().unwrap_or("ClusterIP"),
        class: spec.load_balancer_class.as_deref().unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| Port {
                name: p.name.as_deref().unwrap_or_default(),
                protocol: p.protocol.as_deref().unwrap_or("TCP"),
                port: p.port,
                node_port: p.node_port.filter(|n| *n != 0),
                app_protocol: p.app_protocol.as_deref(),
            })
            .collect(),
        source_ranges: strs(&spec.load_balancer_source_ranges),
        session_affinity,
        affinity_timeout,
        load_balancer_ip: spec.load_balancer_ip.as_deref().unwrap_or_default(),
        external_ips: strs(&spec.external_ips),
        external_traffic_policy: spec.external_traffic_policy.as_deref().unwrap_or("Cluster"),
        health_check_node_port: spec.health_check_node_port.filter(|n| *n != 0),
        ip_families: strs(&spec.ip_families),
        annotations: svc
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| is_honoured_key(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    }
}

/// FNV-1a, 64 bit: tiny, stable, and good enough to detect change (not an integrity check).
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The fingerprint of the load-balancer-relevant part of `svc` (see the module docs).
pub fn lb_fingerprint(svc: &Service) -> u64 {
    // Serialising borrowed strings, integers and maps with string keys cannot fail; an empty
    // fallback would only make every Service look alike, never panic.
    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    let json = serde_json::to_vec(&project(svc, spec)).unwrap_or_default();
    fnv1a(&json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::annotations::{INTERNAL, LAST_APPLIED};
    use crate::naming::{APPLIED_FINGERPRINT, FINALIZER, RECORD_ANNOTATION};
    use crate::spec::fixtures::{annotations, port, service, with_annotations, with_spec};
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, LoadBalancerStatus, ServiceStatus, SessionAffinityConfig,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn edit(f: impl FnOnce(&mut Service)) -> Service {
        let mut svc = service();
        f(&mut svc);
        svc
    }

    #[test]
    fn equal_when_no_cloud_work_differs() {
        let base = lb_fingerprint(&service());
        let same: Vec<(&str, Service)> = vec![
            ("clone", service()),
            (
                "last-applied added",
                with_annotations(&[(LAST_APPLIED, "{\"a\":1}")]),
            ),
            (
                "record added",
                with_annotations(&[(RECORD_ANNOTATION, "{}")]),
            ),
            (
                "applied fingerprint added",
                with_annotations(&[(APPLIED_FINGERPRINT, "0123")]),
            ),
            (
                "external-dns",
                with_annotations(&[("external-dns.alpha.kubernetes.io/hostname", "a.example.com")]),
            ),
            (
                "argo",
                with_annotations(&[("argocd.argoproj.io/tracking-id", "x")]),
            ),
            (
                "labels",
                edit(|s| s.metadata.labels = Some(annotations(&[("app", "web")]))),
            ),
            (
                "finalizers",
                edit(|s| s.metadata.finalizers = Some(vec![FINALIZER.into()])),
            ),
            (
                "resourceVersion",
                edit(|s| s.metadata.resource_version = Some("42".into())),
            ),
            (
                "status",
                edit(|s| {
                    s.status = Some(ServiceStatus {
                        load_balancer: Some(LoadBalancerStatus::default()),
                        ..Default::default()
                    })
                }),
            ),
            (
                "selector",
                with_spec(|s| s.selector = Some(annotations(&[("app", "web")]))),
            ),
            (
                "targetPort",
                with_spec(|s| {
                    if let Some(p) = s.ports.as_mut().and_then(|p| p.first_mut()) {
                        p.target_port = Some(IntOrString::String("http".into()));
                    }
                }),
            ),
            (
                "allocateLoadBalancerNodePorts",
                with_spec(|s| s.allocate_load_balancer_node_ports = Some(true)),
            ),
            (
                "ipFamilyPolicy",
                with_spec(|s| s.ip_family_policy = Some("PreferDualStack".into())),
            ),
            (
                "internalTrafficPolicy",
                with_spec(|s| s.internal_traffic_policy = Some("Local".into())),
            ),
            (
                "protocol unset = TCP",
                with_spec(|s| {
                    if let Some(p) = s.ports.as_mut().and_then(|p| p.first_mut()) {
                        p.protocol = None;
                    }
                }),
            ),
            (
                "affinity unset = None",
                with_spec(|s| s.session_affinity = Some("None".into())),
            ),
            (
                "empty vs unset source ranges",
                with_spec(|s| s.load_balancer_source_ranges = Some(vec![])),
            ),
            (
                "empty vs unset loadBalancerIP",
                with_spec(|s| s.load_balancer_ip = Some(String::new())),
            ),
            (
                "etp unset = Cluster",
                with_spec(|s| s.external_traffic_policy = None),
            ),
        ];
        for (name, svc) in same {
            assert_eq!(lb_fingerprint(&svc), base, "case {name}");
        }

        // Annotation insertion order never matters.
        let a = with_annotations(&[(INTERNAL, "true"), ("service.beta.kubernetes.io/x", "1")]);
        let mut b = service();
        let mut m = std::collections::BTreeMap::new();
        m.insert("service.beta.kubernetes.io/x".to_owned(), "1".to_owned());
        m.insert(INTERNAL.to_owned(), "true".to_owned());
        b.metadata.annotations = Some(m);
        assert_eq!(lb_fingerprint(&a), lb_fingerprint(&b));

        // ClientIP with no timeout is the same as the default timeout.
        let cfg = |t| {
            Some(SessionAffinityConfig {
                client_ip: Some(ClientIPConfig { timeout_seconds: t }),
            })
        };
        let implicit = with_spec(|s| s.session_affinity = Some("ClientIP".into()));
        let explicit = with_spec(|s| {
            s.session_affinity = Some("ClientIP".into());
            s.session_affinity_config = cfg(Some(10_800));
        });
        assert_eq!(lb_fingerprint(&implicit), lb_fingerprint(&explicit));
    }

    #[test]
    fn changes_when_cloud_work_differs() {
        let base = lb_fingerprint(&service());
        let first_port = |f: fn(&mut k8s_openapi::api::core::v1::ServicePort)| {
            with_spec(move |s| {
                if let Some(p) = s.ports.as_mut().and_then(|p| p.first_mut()) {
                    f(p);
                }
            })
        };
        let changed: Vec<(&str, Service)> = vec![
            ("port", first_port(|p| p.port = 8080)),
            ("nodePort", first_port(|p| p.node_port = Some(30081))),
            ("nodePort released", first_port(|p| p.node_port = None)),
            ("port name", first_port(|p| p.name = Some("web".into()))),
            ("protocol", first_port(|p| p.protocol = Some("UDP".into()))),
            (
                "appProtocol",
                first_port(|p| p.app_protocol = Some("http".into())),
            ),
            (
                "port added",
                with_spec(|s| {
                    s.ports = Some(vec![
                        port("http", "TCP", 80, Some(30080)),
                        port("https", "TCP", 443, Some(30443)),
                    ])
                }),
            ),
            (
                "source ranges",
                with_spec(|s| s.load_balancer_source_ranges = Some(vec!["10.0.0.0/8".into()])),
            ),
            (
                "affinity",
                with_spec(|s| s.session_affinity = Some("ClientIP".into())),
            ),
            (
                "loadBalancerIP",
                with_spec(|s| s.load_balancer_ip = Some("192.0.2.1".into())),
            ),
            (
                "externalIPs",
                with_spec(|s| s.external_ips = Some(vec!["192.0.2.9".into()])),
            ),
            ("uid", edit(|s| s.metadata.uid = Some("other".into()))),
            (
                "externalTrafficPolicy",
                with_spec(|s| s.external_traffic_policy = Some("Local".into())),
            ),
            (
                "healthCheckNodePort",
                with_spec(|s| s.health_check_node_port = Some(32000)),
            ),
            (
                "ipFamilies",
                with_spec(|s| s.ip_families = Some(vec!["IPv6".into()])),
            ),
            (
                "loadBalancerClass",
                with_spec(|s| s.load_balancer_class = Some("frontdesk.dev/lb".into())),
            ),
            ("type", with_spec(|s| s.type_ = Some("NodePort".into()))),
            (
                "frontdesk annotation",
                with_annotations(&[(INTERNAL, "true")]),
            ),
            (
                "aws annotation",
                with_annotations(&[("service.beta.kubernetes.io/aws-load-balancer-type", "nlb")]),
            ),
            (
                "provider subdomain annotation",
                with_annotations(&[("mock.frontdesk.dev/x", "1")]),
            ),
        ];
        for (name, svc) in changed {
            assert_ne!(lb_fingerprint(&svc), base, "case {name}");
        }

        // Reordering ports is a change (upstream compares by index; listeners may be ordered).
        let ab = with_spec(|s| {
            s.ports = Some(vec![
                port("a", "TCP", 80, Some(30080)),
                port("b", "TCP", 81, Some(30081)),
            ])
        });
        let ba = with_spec(|s| {
            s.ports = Some(vec![
                port("b", "TCP", 81, Some(30081)),
                port("a", "TCP", 80, Some(30080)),
            ])
        });
        assert_ne!(lb_fingerprint(&ab), lb_fingerprint(&ba));
        // ipFamilies order is compared, not only the length as upstream does.
        let v46 = with_spec(|s| s.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]));
        let v64 = with_spec(|s| s.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]));
        assert_ne!(lb_fingerprint(&v46), lb_fingerprint(&v64));
    }

    #[test]
    fn value_is_stable_across_builds() {
        // Stored in an annotation by the controller: a silent change of the algorithm would
        // re-ensure every Service after an upgrade. Change this number only on purpose.
        assert_eq!(
            format!("{:016x}", lb_fingerprint(&service())),
            "0430798b2e9ae8f4"
        );
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn empty_service_does_not_panic() {
        let _ = lb_fingerprint(&Service::default());
    }
}
