use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ClientIPConfig, Service, SessionAffinityConfig};

use super::*;
use crate::annotations::LAST_APPLIED;
use crate::naming::{RECORD_ANNOTATION, TAG_SERVICE};
use crate::provider::BackendNode;
use crate::spec::describe_errors;
use crate::spec::fixtures::{UID, annotations, port, service, with_annotations, with_spec};

fn backend(name: &str) -> BackendNode {
    BackendNode {
        name: name.to_owned(),
        provider_id: Some(format!("mock://{name}")),
        addresses: vec![],
        zone: None,
    }
}

fn build(svc: &Service, needs_node_ports: bool) -> Result<LoadBalancerSpec, Vec<SpecError>> {
    let nodes = [backend("n2"), backend("n1")];
    build_spec(&SpecInput {
        cluster: "prod",
        service: svc,
        nodes: &nodes,
        needs_node_ports,
    })
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().filter_map(|s| s.parse().ok()).collect()
}

fn client_ip(timeout: Option<i32>) -> Option<SessionAffinityConfig> {
    Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: timeout,
        }),
    })
}

#[test]
fn basic_service() {
    let spec = build(&service(), true).unwrap();
    assert_eq!(spec.cluster, "prod");
    assert_eq!(spec.service, ServiceKey::new("shop", "web"));
    assert_eq!(spec.uid, UID);
    assert_eq!(spec.name, "a6f1a0b2c3d4e4f508a9b0c1d2e3f4a5");
    assert_eq!(
        spec.ports,
        vec![PortSpec {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: Some(30080)
        }]
    );
    let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2"], "nodes sorted by name");
    assert_eq!(spec.health_check, HealthCheck::Tcp);
    assert!(spec.source_ranges.is_empty() && spec.requested_ips.is_empty());
    assert_eq!(spec.ip_families, vec![IpFamily::IPv4]);
    assert_eq!(spec.session_affinity, SessionAffinity::None);
    assert_eq!(spec.scheme, Scheme::External);
    assert_eq!(
        spec.tags.get(TAG_SERVICE).map(String::as_str),
        Some("shop/web")
    );
    assert_eq!(spec.tags.len(), 3);
    assert!(spec.annotations.is_empty());
}

/// (case, service, needs_node_ports, check on the built spec)
type OkCase = (&'static str, Service, bool, fn(&LoadBalancerSpec) -> bool);

#[test]
fn successful_translations() {
    let cases: Vec<OkCase> = vec![
        (
            "mixed TCP and UDP on one port number",
            with_spec(|s| {
                s.ports = Some(vec![
                    port("dns-tcp", "TCP", 53, Some(30053)),
                    port("dns-udp", "UDP", 53, Some(30054)),
                ])
            }),
            true,
            |s| {
                s.ports
                    == vec![
                        PortSpec {
                            name: "dns-tcp".into(),
                            protocol: Protocol::Tcp,
                            port: 53,
                            node_port: Some(30053),
                        },
                        PortSpec {
                            name: "dns-udp".into(),
                            protocol: Protocol::Udp,
                            port: 53,
                            node_port: Some(30054),
                        },
                    ]
            },
        ),
        (
            "SCTP and unset protocol (defaults to TCP)",
            with_spec(|s| {
                let mut p = port("", "TCP", 443, Some(30443));
                p.protocol = None;
                s.ports = Some(vec![p, port("sig", "SCTP", 3868, Some(30868))]);
            }),
            true,
            |s| {
                s.ports[0].protocol == Protocol::Tcp
                    && s.ports[0].name.is_empty()
                    && s.ports[1].protocol == Protocol::Sctp
            },
        ),
        (
            "no nodePorts allowed when the provider does not need them",
            with_spec(|s| {
                s.allocate_load_balancer_node_ports = Some(false);
                s.ports = Some(vec![
                    port("a", "TCP", 80, None),
                    port("b", "TCP", 81, Some(0)),
                ]);
            }),
            false,
            |s| s.ports.iter().all(|p| p.node_port.is_none()),
        ),
        (
            "dual-stack, IPv6 primary, one requested address per family",
            {
                let mut svc = with_annotations(&[(LOAD_BALANCER_IPS, "192.0.2.10, 2001:db8::10")]);
                if let Some(s) = svc.spec.as_mut() {
                    s.ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
                }
                svc
            },
            true,
            |s| {
                s.ip_families == vec![IpFamily::IPv6, IpFamily::IPv4]
                    && s.requested_ips == ips(&["192.0.2.10", "2001:db8::10"])
            },
        ),
        (
            "ipFamilies missing: taken from clusterIPs",
            with_spec(|s| {
                s.ip_families = None;
                s.cluster_ip = Some("fd00::10".into());
                s.cluster_ips = Some(vec!["fd00::10".into(), "10.96.0.10".into()]);
            }),
            true,
            |s| s.ip_families == vec![IpFamily::IPv6, IpFamily::IPv4],
        ),
        (
            "ipFamilies and clusterIPs missing: IPv4",
            with_spec(|s| {
                s.ip_families = None;
                s.cluster_ip = Some("None".into());
            }),
            true,
            |s| s.ip_families == vec![IpFamily::IPv4],
        ),
        (
            "externalTrafficPolicy Local: HTTP /healthz on healthCheckNodePort",
            with_spec(|s| {
                s.external_traffic_policy = Some("Local".into());
                s.health_check_node_port = Some(32000);
            }),
            true,
            |s| {
                s.health_check
                    == HealthCheck::Http {
                        port: 32000,
                        path: "/healthz".into(),
                    }
            },
        ),
        (
            "externalTrafficPolicy Cluster ignores a stale healthCheckNodePort",
            with_spec(|s| s.health_check_node_port = Some(32000)),
            true,
            |s| s.health_check == HealthCheck::Tcp,
        ),
        (
            "ClientIP affinity, default timeout",
            with_spec(|s| s.session_affinity = Some("ClientIP".into())),
            true,
            |s| {
                s.session_affinity
                    == SessionAffinity::ClientIp {
                        timeout_seconds: 10_800,
                    }
            },
        ),
        (
            "ClientIP affinity, explicit timeout",
            with_spec(|s| {
                s.session_affinity = Some("ClientIP".into());
                s.session_affinity_config = client_ip(Some(60));
            }),
            true,
            |s| {
                s.session_affinity
                    == SessionAffinity::ClientIp {
                        timeout_seconds: 60,
                    }
            },
        ),
        (
            "affinity None ignores a leftover config",
            with_spec(|s| {
                s.session_affinity = Some("None".into());
                s.session_affinity_config = client_ip(Some(-1));
            }),
            true,
            |s| s.session_affinity == SessionAffinity::None,
        ),
        (
            "internal: true",
            with_annotations(&[(INTERNAL, "true")]),
            true,
            |s| s.scheme == Scheme::Internal,
        ),
        (
            "internal: 1 (Go bool)",
            with_annotations(&[(INTERNAL, "1")]),
            true,
            |s| s.scheme == Scheme::Internal,
        ),
        (
            "internal: false",
            with_annotations(&[(INTERNAL, "false")]),
            true,
            |s| s.scheme == Scheme::External,
        ),
        (
            "source ranges from the spec, host bits cleared",
            with_spec(|s| {
                s.load_balancer_source_ranges =
                    Some(vec!["10.1.2.3/8".into(), " 2001:db8::/32".into()])
            }),
            true,
            |s| s.source_ranges == nets(&["10.0.0.0/8", "2001:db8::/32"]),
        ),
        (
            "source ranges from the legacy annotation",
            with_annotations(&[(SOURCE_RANGES, "203.0.113.0/24,198.51.100.0/24")]),
            true,
            |s| s.source_ranges == nets(&["203.0.113.0/24", "198.51.100.0/24"]),
        ),
        (
            "spec source ranges win; the annotation is not even read",
            {
                let mut svc = with_annotations(&[(SOURCE_RANGES, "garbage")]);
                if let Some(s) = svc.spec.as_mut() {
                    s.load_balancer_source_ranges = Some(vec!["192.0.2.0/24".into()]);
                }
                svc
            },
            true,
            |s| s.source_ranges == nets(&["192.0.2.0/24"]),
        ),
        (
            "loadBalancerIP honoured, duplicate in the annotation collapses",
            {
                let mut svc = with_annotations(&[(LOAD_BALANCER_IPS, "192.0.2.7")]);
                if let Some(s) = svc.spec.as_mut() {
                    s.load_balancer_ip = Some("192.0.2.7".into());
                }
                svc
            },
            true,
            |s| s.requested_ips == ips(&["192.0.2.7"]),
        ),
        (
            "annotations handed over minus bookkeeping",
            with_annotations(&[
                (LAST_APPLIED, "{}"),
                (RECORD_ANNOTATION, "{}"),
                ("example.com/x", "y"),
            ]),
            true,
            |s| s.annotations.keys().collect::<Vec<_>>() == ["example.com/x"],
        ),
        (
            "no namespace: default",
            {
                let mut svc = service();
                svc.metadata.namespace = None;
                svc
            },
            true,
            |s| s.service == ServiceKey::new("default", "web"),
        ),
    ];
    for (name, svc, needs_node_ports, check) in cases {
        match build(&svc, needs_node_ports) {
            Ok(spec) => assert!(check(&spec), "case {name}: unexpected spec {spec:#?}"),
            Err(e) => panic!("case {name}: {}", describe_errors(&e)),
        }
    }
}

#[test]
fn errors_name_the_field_and_all_are_collected() {
    let ann = |k: &str| format!("metadata.annotations[{k}]");
    let cases: Vec<(&str, Service, Vec<String>)> = vec![
        (
            "port without nodePort while the provider needs them",
            with_spec(|s| {
                s.allocate_load_balancer_node_ports = Some(false);
                s.ports = Some(vec![
                    port("a", "TCP", 80, Some(30080)),
                    port("b", "UDP", 81, None),
                ]);
            }),
            vec!["spec.ports[1].nodePort".into()],
        ),
        (
            "bad CIDR in the spec",
            with_spec(|s| {
                s.load_balancer_source_ranges = Some(vec!["10.0.0.0/8".into(), "10.0.0.1".into()])
            }),
            vec!["spec.loadBalancerSourceRanges[1]".into()],
        ),
        (
            "bad CIDR in the legacy annotation",
            with_annotations(&[(SOURCE_RANGES, "10.0.0.0/8,10.0.0.0/40")]),
            vec![ann(SOURCE_RANGES)],
        ),
        (
            "bad boolean",
            with_annotations(&[(INTERNAL, "yes")]),
            vec![ann(INTERNAL)],
        ),
        (
            "empty boolean",
            with_annotations(&[(INTERNAL, "")]),
            vec![ann(INTERNAL)],
        ),
        (
            "Local without healthCheckNodePort",
            with_spec(|s| s.external_traffic_policy = Some("Local".into())),
            vec!["spec.healthCheckNodePort".into()],
        ),
        (
            "Local with healthCheckNodePort out of range",
            with_spec(|s| {
                s.external_traffic_policy = Some("Local".into());
                s.health_check_node_port = Some(70_000);
            }),
            vec!["spec.healthCheckNodePort".into()],
        ),
        (
            "bad loadBalancerIP",
            with_spec(|s| s.load_balancer_ip = Some("192.0.2.300".into())),
            vec!["spec.loadBalancerIP".into()],
        ),
        (
            "loadBalancerIP of the wrong family",
            with_spec(|s| s.load_balancer_ip = Some("2001:db8::1".into())),
            vec!["spec.loadBalancerIP".into()],
        ),
        (
            "bad address annotation",
            with_annotations(&[(LOAD_BALANCER_IPS, "192.0.2.1,nope")]),
            vec![ann(LOAD_BALANCER_IPS)],
        ),
        (
            "two addresses of one family",
            {
                let mut svc = with_annotations(&[(LOAD_BALANCER_IPS, "192.0.2.2")]);
                if let Some(s) = svc.spec.as_mut() {
                    s.load_balancer_ip = Some("192.0.2.1".into());
                }
                svc
            },
            vec![ann(LOAD_BALANCER_IPS)],
        ),
        (
            "unknown protocol",
            with_spec(|s| s.ports = Some(vec![port("a", "HTTP", 80, Some(30080))])),
            vec!["spec.ports[0].protocol".into()],
        ),
        (
            "ports out of range",
            with_spec(|s| {
                s.ports = Some(vec![
                    port("a", "TCP", 0, Some(30080)),
                    port("b", "TCP", 70_000, Some(-1)),
                ])
            }),
            vec![
                "spec.ports[0].port".into(),
                "spec.ports[1].port".into(),
                "spec.ports[1].nodePort".into(),
            ],
        ),
        (
            "no ports",
            with_spec(|s| s.ports = None),
            vec!["spec.ports".into()],
        ),
        (
            "unknown family",
            with_spec(|s| s.ip_families = Some(vec!["IPv5".into()])),
            vec!["spec.ipFamilies[0]".into()],
        ),
        (
            "unknown affinity",
            with_spec(|s| s.session_affinity = Some("Cookie".into())),
            vec!["spec.sessionAffinity".into()],
        ),
        (
            "affinity timeout out of range",
            with_spec(|s| {
                s.session_affinity = Some("ClientIP".into());
                s.session_affinity_config = client_ip(Some(86_401));
            }),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds".into()],
        ),
        (
            "no uid, no name",
            {
                let mut svc = service();
                svc.metadata.uid = None;
                svc.metadata.name = None;
                svc
            },
            vec!["metadata.name".into(), "metadata.uid".into()],
        ),
        (
            "everything at once",
            {
                let mut svc = with_annotations(&[(INTERNAL, "maybe"), (SOURCE_RANGES, "x")]);
                if let Some(s) = svc.spec.as_mut() {
                    s.external_traffic_policy = Some("Local".into());
                    s.ports = Some(vec![port("a", "TCP", 80, None)]);
                }
                svc
            },
            vec![
                "spec.ports[0].nodePort".into(),
                ann(SOURCE_RANGES),
                "spec.healthCheckNodePort".into(),
                ann(INTERNAL),
            ],
        ),
    ];
    for (name, svc, want) in cases {
        let errors = match build(&svc, true) {
            Ok(spec) => panic!("case {name}: expected errors, got {spec:?}"),
            Err(e) => e,
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, want, "case {name}: {}", describe_errors(&errors));
        for e in &errors {
            assert!(e.message.len() > 20, "case {name}: terse message {e}");
            assert!(e.to_string().starts_with(&e.field));
        }
    }
}

#[test]
fn error_messages_explain_the_fix() {
    let svc = with_spec(|s| s.ports = Some(vec![port("a", "TCP", 80, None)]));
    let errors = build(&svc, true).unwrap_err();
    assert!(
        errors[0].message.contains("allocateLoadBalancerNodePorts"),
        "{}",
        errors[0]
    );

    let errors = build(&with_annotations(&[(INTERNAL, "yes")]), true).unwrap_err();
    assert!(
        errors[0].message.contains("\"yes\"") && errors[0].message.contains("\"true\""),
        "{}",
        errors[0]
    );

    let svc = with_spec(|s| s.load_balancer_source_ranges = Some(vec!["10.0.0.1".into()]));
    let errors = build(&svc, true).unwrap_err();
    assert!(
        errors[0].message.contains("/24"),
        "expected form shown: {}",
        errors[0]
    );

    let errors = build(
        &with_spec(|s| s.external_traffic_policy = Some("Local".into())),
        true,
    )
    .unwrap_err();
    assert!(
        errors[0].message.contains("externalTrafficPolicy"),
        "{}",
        errors[0]
    );
}

#[test]
fn annotation_value_never_panics_build() {
    use rand::Rng;
    const ALPHABET: &[char] = &[
        '1', '0', '/', '.', ':', ',', ' ', 'f', 't', 'a', '2', '3', 'é',
    ];
    let mut rng = rand::rng();
    for _ in 0..500 {
        let len = rng.random_range(0..24);
        let v: String = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect();
        let mut svc = service();
        svc.metadata.annotations = Some(annotations(&[
            (INTERNAL, &v),
            (SOURCE_RANGES, &v),
            (LOAD_BALANCER_IPS, &v),
        ]));
        let _ = build(&svc, true);
    }
}
