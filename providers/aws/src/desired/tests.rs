use super::*;
use frontdesk_core::naming;
use frontdesk_core::provider::{IpFamily, ServiceKey};

fn port(name: &str, protocol: Protocol, port: u16, node_port: Option<u16>) -> PortSpec {
    PortSpec {
        name: name.into(),
        protocol,
        port,
        node_port,
    }
}

fn spec(ports: Vec<PortSpec>) -> LoadBalancerSpec {
    let service = ServiceKey::new("default", "web");
    let uid = "0a1b2c3d-1111-2222-3333-444455556666";
    LoadBalancerSpec {
        cluster: "prod".into(),
        tags: naming::ownership_tags("prod", &service, uid),
        service,
        uid: uid.into(),
        name: naming::load_balancer_name(uid),
        ports,
        nodes: vec![],
        health_check: HealthCheck::Tcp,
        source_ranges: vec![],
        requested_ips: vec![],
        ip_families: vec![IpFamily::IPv4],
        session_affinity: SessionAffinity::None,
        scheme: Scheme::External,
        annotations: BTreeMap::new(),
    }
}

const PINNED_TG_NAME: &str = "a0a1b2c3d111122223333-e808b64de7";

#[test]
fn names_are_short_stable_and_distinct() {
    let a = tg_name(
        "a0a1b2c3d111122223333444455556666",
        "c",
        "u",
        80,
        TgProtocol::Tcp,
        30080,
    );
    assert_eq!(a.len(), MAX_NAME);
    assert_eq!(
        a,
        tg_name(
            "a0a1b2c3d111122223333444455556666",
            "c",
            "u",
            80,
            TgProtocol::Tcp,
            30080
        )
    );
    assert!(!a.ends_with('-') && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    for other in [
        tg_name(
            "a0a1b2c3d111122223333444455556666",
            "c",
            "u",
            81,
            TgProtocol::Tcp,
            30080,
        ),
        tg_name(
            "a0a1b2c3d111122223333444455556666",
            "c",
            "u",
            80,
            TgProtocol::TcpUdp,
            30080,
        ),
        tg_name(
            "a0a1b2c3d111122223333444455556666",
            "c",
            "u",
            80,
            TgProtocol::Tcp,
            30081,
        ),
        tg_name(
            "a0a1b2c3d111122223333444455556666",
            "d",
            "u",
            80,
            TgProtocol::Tcp,
            30080,
        ),
    ] {
        assert_ne!(a, other);
    }
    // Pinned: a change here renames every target group in every cluster on upgrade.
    assert_eq!(a, PINNED_TG_NAME);
}

#[test]
#[allow(clippy::type_complexity)]
fn listener_grouping_table() {
    use Protocol::*;
    let table: Vec<(Vec<PortSpec>, Result<Vec<(u16, TgProtocol, u16)>, &str>)> = vec![
        (
            vec![port("http", Tcp, 80, Some(30080))],
            Ok(vec![(80, TgProtocol::Tcp, 30080)]),
        ),
        (
            vec![
                port("dns", Udp, 53, Some(30053)),
                port("dnst", Tcp, 53, Some(30053)),
            ],
            Ok(vec![(53, TgProtocol::TcpUdp, 30053)]),
        ),
        (
            vec![
                port("b", Udp, 443, Some(30443)),
                port("a", Tcp, 80, Some(30080)),
            ],
            Ok(vec![
                (80, TgProtocol::Tcp, 30080),
                (443, TgProtocol::Udp, 30443),
            ]),
        ),
        (vec![port("x", Tcp, 80, None)], Err("spec.ports[].nodePort")),
        (
            vec![
                port("d", Udp, 53, Some(30053)),
                port("t", Tcp, 53, Some(30054)),
            ],
            Err("spec.ports[].nodePort"),
        ),
        (
            vec![port("s", Sctp, 80, Some(30080))],
            Err("spec.ports[].protocol"),
        ),
    ];
    for (ports, want) in table {
        match (listeners(&ports), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(ProviderError::InvalidSpec { field, .. }), Err(f)) => assert_eq!(field, f),
            (got, want) => panic!("{ports:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn health_checks_follow_traffic_policy_and_annotations() {
    let mut s = spec(vec![port("http", Protocol::Tcp, 80, Some(30080))]);
    let d = Desired::from_spec(&s).unwrap();
    assert_eq!(d.tgs[0].health.protocol, HcProtocol::Tcp);
    assert_eq!(d.tgs[0].health.port, "traffic-port");
    assert_eq!(
        (d.tgs[0].health.interval, d.tgs[0].health.path.as_deref()),
        (30, None)
    );

    s.health_check = HealthCheck::Http {
        port: 32000,
        path: "/healthz".into(),
    };
    let d = Desired::from_spec(&s).unwrap();
    let h = &d.tgs[0].health;
    assert_eq!(
        (h.protocol, h.port.as_str(), h.path.as_deref()),
        (HcProtocol::Http, "32000", Some("/healthz"))
    );

    s.annotations
        .insert(options::HC_INTERVAL.into(), "20".into());
    s.annotations
        .insert(options::HC_PATH.into(), "/ready".into());
    let d = Desired::from_spec(&s).unwrap();
    assert_eq!(
        (d.tgs[0].health.interval, d.tgs[0].health.path.as_deref()),
        (20, Some("/ready"))
    );
}

#[test]
fn security_group_rules_from_source_ranges() {
    let mut s = spec(vec![
        port("http", Protocol::Tcp, 80, Some(30080)),
        port("dns", Protocol::Udp, 53, Some(30053)),
        port("dnst", Protocol::Tcp, 53, Some(30053)),
    ]);
    let d = Desired::from_spec(&s).unwrap();
    assert_eq!(
        d.sg_name.as_deref(),
        Some("frontdesk-a0a1b2c3d11112222333344445555666")
    );
    let rules: Vec<(String, u16, String)> = d
        .sg_rules
        .iter()
        .map(|r| (r.protocol.clone(), r.port, r.peer.clone()))
        .collect();
    assert_eq!(
        rules,
        [
            ("tcp".to_string(), 53, "0.0.0.0/0".to_string()),
            ("tcp".into(), 80, "0.0.0.0/0".into()),
            ("udp".into(), 53, "0.0.0.0/0".into()),
        ]
    );
    s.source_ranges = vec![
        "10.0.0.0/8".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    let d = Desired::from_spec(&s).unwrap();
    assert_eq!(d.sg_rules.len(), 6);
    assert!(d.sg_rules.iter().all(|r| r.peer != "0.0.0.0/0"));

    s.annotations
        .insert(options::SECURITY_GROUPS.into(), "sg-1".into());
    assert!(matches!(
        Desired::from_spec(&s),
        Err(ProviderError::InvalidSpec { .. })
    ));
    s.source_ranges.clear();
    let d = Desired::from_spec(&s).unwrap();
    assert!(d.sg_name.is_none() && d.sg_rules.is_empty());
}

#[test]
fn tags_attributes_and_affinity() {
    let mut s = spec(vec![port("http", Protocol::Tcp, 80, Some(30080))]);
    s.annotations
        .insert(options::EXTRA_TAGS.into(), "team=web".into());
    s.annotations
        .insert(options::CROSS_ZONE.into(), "true".into());
    s.session_affinity = SessionAffinity::ClientIp {
        timeout_seconds: 10800,
    };
    let d = Desired::from_spec(&s).unwrap();
    assert_eq!(d.tags["team"], "web");
    assert_eq!(d.tags[naming::TAG_CLUSTER], "prod");
    assert_eq!(d.lb_attributes["load_balancing.cross_zone.enabled"], "true");
    assert_eq!(d.tg_attributes["stickiness.type"], "source_ip");
    s.requested_ips = vec!["1.2.3.4".parse().unwrap()];
    assert!(
        matches!(Desired::from_spec(&s), Err(ProviderError::InvalidSpec { field, .. }) if field == "spec.loadBalancerIP")
    );
}

#[test]
fn instance_ids_from_provider_ids() {
    let node = |name: &str, pid: Option<&str>| BackendNode {
        name: name.into(),
        provider_id: pid.map(String::from),
        addresses: vec![],
        zone: None,
    };
    let ids = instance_ids(&[
        node("a", Some("aws:///us-east-1a/i-0abc")),
        node("b", Some("gce://p/z/b")),
        node("c", None),
        node("d", Some("aws:///us-east-1b/i-0def")),
    ]);
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["i-0abc", "i-0def"]);
    let cur: BTreeSet<String> = ["i-1", "i-2"].map(String::from).into();
    let want: BTreeSet<String> = ["i-2", "i-3"].map(String::from).into();
    assert_eq!(
        delta(&cur, &want),
        (vec!["i-3".to_string()], vec!["i-1".to_string()])
    );
}

#[test]
fn listener_plan_table() {
    let s = spec(vec![
        port("http", Protocol::Tcp, 80, Some(30080)),
        port("dns", Protocol::Udp, 53, Some(30053)),
    ]);
    let d = Desired::from_spec(&s).unwrap();
    // tgs sorted by port: 53/UDP then 80/TCP.
    let arns = vec!["tg-53".to_string(), "tg-80".to_string()];
    let l = |arn: &str, port: u16, proto: &str, tg: &str| CurrentListener {
        arn: arn.into(),
        port,
        protocol: proto.into(),
        target_group_arn: Some(tg.into()),
    };
    let none = plan_listeners(&[], &d.tgs, &arns);
    assert_eq!(none.create, [0, 1]);
    let same = plan_listeners(
        &[l("L53", 53, "UDP", "tg-53"), l("L80", 80, "TCP", "tg-80")],
        &d.tgs,
        &arns,
    );
    assert_eq!(same, ListenerPlan::default());
    let changed = plan_listeners(
        &[
            l("L53", 53, "TCP", "tg-53"),
            l("L80", 80, "TCP", "old"),
            l("L443", 443, "TCP", "x"),
        ],
        &d.tgs,
        &arns,
    );
    assert_eq!(changed.create, Vec::<usize>::new());
    assert_eq!(
        changed.modify,
        [("L53".to_string(), 0), ("L80".to_string(), 1)]
    );
    assert_eq!(changed.delete, ["L443"]);
}
