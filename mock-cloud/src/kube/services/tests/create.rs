//! Create, delete and dry-run.

use serde_json::{Value, json};

use super::*;
use crate::kube::strategy::Strategy;

#[test]
fn create_defaults_a_cluster_ip_service() {
    let s = strategy();
    let out = created(
        &s,
        svc(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ),
    );
    let spec = &out["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert!(spec.get("externalTrafficPolicy").is_none());
    let ip = spec["clusterIP"].as_str().expect("clusterIP");
    assert_eq!(spec["clusterIPs"], json!([ip]));
    assert!(ip.starts_with("10.96."));
    // Dynamic IPs come from the upper band (above 10.96.1.0).
    let third: u8 = ip
        .split('.')
        .nth(2)
        .and_then(|o| o.parse().ok())
        .expect("octet");
    assert!(third >= 1 && ip != "10.96.1.0", "{ip}");
    assert_eq!(out["status"], json!({"loadBalancer": {}}));
    assert_eq!(s.allocated_ips(), 1);
    assert_eq!(s.allocated_node_ports(), 0);
}

#[test]
fn kubernetes_service_gets_the_first_ip_and_explicit_ip_errors() {
    let s = strategy();
    let k = created(
        &s,
        svc(
            "kubernetes",
            json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}),
        ),
    );
    assert_eq!(k["spec"]["clusterIPs"], json!(["10.96.0.1"]));
    let cases = [
        (
            "10.96.0.1",
            "Service \"x\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: provided IP is already allocated",
        ),
        (
            "1.1.1.1",
            "Service \"x\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16",
        ),
        (
            "bogus",
            "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: \"bogus\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
    ];
    for (ip, want) in cases {
        let (code, msg) = err_message(create(
            &s,
            svc("x", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        ));
        assert_eq!((code, msg.as_str()), (422, want));
    }
    assert_eq!(s.allocated_ips(), 1);
}

#[test]
fn headless_and_external_name_allocate_nothing() {
    let s = strategy();
    let h = created(
        &s,
        svc("h", json!({"clusterIP": "None", "selector": {"app": "h"}})),
    );
    assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(h["spec"]["ipFamilyPolicy"], "SingleStack");
    let h2 = created(&s, svc("h2", json!({"clusterIP": "None"})));
    assert_eq!(h2["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(h2["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let e = created(
        &s,
        svc(
            "e",
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
        ),
    );
    assert!(e["spec"].get("clusterIP").is_none());
    assert!(e["spec"].get("ipFamilies").is_none());
    assert!(e["spec"].get("internalTrafficPolicy").is_none());
    assert_eq!(s.allocated_ips(), 0);
    let (code, msg) = err_message(create(&s, svc("e2", json!({"type": "ExternalName"}))));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"e2\" is invalid: spec.externalName: Required value"
        )
    );
}

#[test]
fn validation_messages_match_upstream() {
    let s = strategy();
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "spec.ports: Required value"),
        (
            json!({"ports": [{"port": 70000, "targetPort": 8080}]}),
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]}),
            "spec.ports[1].name: Required value",
        ),
        (
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
            "spec.ports[1].name: Duplicate value: \"a\"",
        ),
        (
            json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            json!({"ports": [{"port": 80}], "externalTrafficPolicy": "Local"}),
            "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
        ),
        (
            json!({"ports": [{"port": 80}], "sessionAffinity": "Sticky"}),
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        ),
        (
            json!({"ports": [{"port": 80}], "type": "Magic"}),
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ),
        (
            json!({"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerSourceRanges": ["10.0.0.0/8", "nope"]}),
            "spec.LoadBalancerSourceRanges[1]: Invalid value: \"nope\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ),
        (
            json!({"ports": [{"port": 80}], "loadBalancerClass": "example.com/lb"}),
            "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
        ),
        (
            json!({"ports": [{"port": 80}], "healthCheckNodePort": 30500}),
            "spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ),
        (
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
            "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
            "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
        ),
        (
            json!({"ports": [{"port": 80}], "ipFamilyPolicy": "RequireDualStack"}),
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        ),
    ];
    for (spec, want) in cases {
        let (code, msg) = err_message(create(&s, svc("bad", spec.clone())));
        assert_eq!(code, 422, "{spec}");
        assert_eq!(msg, format!("Service \"bad\" is invalid: {want}"), "{spec}");
    }
    assert_eq!(s.allocated_ips(), 0, "failed creates hold no IP");
    assert_eq!(s.allocated_node_ports(), 0, "failed creates hold no port");
}

#[test]
fn several_causes_are_reported_together() {
    let s = strategy();
    let err = match create(
        &s,
        svc(
            "bad",
            json!({"ports": [{"port": 0, "protocol": "FOO"}], "sessionAffinity": "X"}),
        ),
    ) {
        Err(e) => e,
        Ok(v) => panic!("created {v}"),
    };
    let causes = err
        .details
        .as_ref()
        .and_then(|d| d["causes"].as_array())
        .map_or(0, Vec::len);
    // port, protocol, the targetPort defaulted from the bad port, sessionAffinity.
    assert_eq!(causes, 4);
    assert!(
        err.message
            .starts_with("Service \"bad\" is invalid: [spec.ports[0].port: Invalid value: 0:"),
        "{}",
        err.message
    );
}

#[test]
fn dynamic_node_ports_avoid_the_static_band_until_the_upper_band_is_full() {
    let s = strategy();
    let mut held = Vec::new();
    for i in 0..2682 {
        let out = created(&s, node_port_svc(&format!("s{i}")));
        let np = node_ports(&out)[0];
        assert!((30086..=32767).contains(&np), "allocation {i} took {np}");
        held.push(np);
    }
    // Explicit requests in the static band still work while dynamic allocation is active.
    let explicit = created(
        &s,
        svc(
            "fixed",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
        ),
    );
    assert_eq!(node_ports(&explicit), [30000]);
    let (code, msg) = err_message(create(
        &s,
        svc(
            "web",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
        ),
    ));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated"
        )
    );
    for i in 0..85 {
        let out = created(&s, node_port_svc(&format!("low{i}")));
        let np = node_ports(&out)[0];
        assert!(
            (30001..=30085).contains(&np),
            "lower band expected, got {np}"
        );
    }
    assert_eq!(s.allocated_node_ports(), 2768);
    let (code, msg) = err_message(create(&s, node_port_svc("full")));
    assert_eq!(
        (code, msg.as_str()),
        (
            500,
            "Internal error occurred: failed to allocate a nodePort: range is full"
        )
    );
    // The failed create gave back its ClusterIP too.
    assert_eq!(s.allocated_ips(), 2682 + 1 + 85);
}

#[test]
fn tcp_and_udp_on_the_same_port_share_a_node_port() {
    let s = strategy();
    let dns = |extra: Value| {
        let mut udp = json!({"name": "dns-udp", "port": 53, "protocol": "UDP"});
        if let (Some(u), Some(e)) = (udp.as_object_mut(), extra.as_object()) {
            u.extend(e.clone());
        }
        json!({"type": "NodePort", "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}, udp]})
    };
    let out = created(&s, svc("dns", dns(json!({}))));
    let nps = node_ports(&out);
    assert_eq!(nps.len(), 2);
    assert_eq!(nps[0], nps[1]);
    assert_eq!(s.allocated_node_ports(), 1);

    let out = created(&s, svc("dns2", dns(json!({"nodePort": 30053}))));
    assert_eq!(node_ports(&out), [30053, 30053]);
    assert_eq!(s.allocated_node_ports(), 2);
}

#[test]
fn load_balancer_without_node_ports_still_gets_a_health_check_port() {
    let s = strategy();
    let out = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        ),
    );
    assert!(node_ports(&out).is_empty());
    let hc = out["spec"]["healthCheckNodePort"]
        .as_i64()
        .expect("hc port");
    assert!((30086..=32767).contains(&hc));
    assert_eq!(s.allocated_node_ports(), 1);
}

#[test]
fn failed_create_holds_nothing() {
    let s = strategy();
    created(
        &s,
        svc(
            "a",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
        ),
    );
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (1, 1));
    // First port allocates dynamically, the second collides.
    let r = create(
        &s,
        svc(
            "b",
            json!({"type": "NodePort", "ports": [{"name": "x", "port": 81}, {"name": "y", "port": 82, "nodePort": 30100}]}),
        ),
    );
    assert_eq!(err_message(r).0, 422);
    // Validation failure after allocation also gives everything back.
    let r = create(
        &s,
        svc(
            "c",
            json!({"type": "NodePort", "sessionAffinity": "Bad", "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(err_message(r).0, 422);
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (1, 1));
}

#[test]
fn delete_releases_everything_and_dry_run_touches_nothing() {
    let s = strategy();
    let manifest = svc(
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );

    let mut dry = manifest.clone();
    s.create(&mut dry, &DRY).expect("dry-run create");
    assert_eq!(
        dry["spec"]["clusterIP"], "10.96.0.0",
        "dry-run placeholder IP"
    );
    assert_eq!(node_ports(&dry), [32769]);
    assert_eq!(dry["spec"]["healthCheckNodePort"], 32770);
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (0, 0));

    let stored = created(&s, manifest);
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (1, 2));

    let mut dry_update = stored.clone();
    dry_update["spec"]["type"] = json!("ClusterIP");
    s.update(&stored, &mut dry_update, &DRY)
        .expect("dry-run update");
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (1, 2));

    s.delete(&stored, &DRY);
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (1, 2));
    s.delete(&stored, &WRITE);
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), (0, 0));
}

#[test]
fn mistyped_fields_are_bad_requests() {
    let s = strategy();
    let r = create(&s, svc("x", json!({"ports": [{"port": "eighty"}]})));
    let (code, msg) = err_message(r);
    assert_eq!(code, 400);
    assert!(
        msg.contains(
            "cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"
        ),
        "{msg}"
    );
}

#[test]
fn ten_thousand_services_are_fast() {
    let s = strategy();
    let start = std::time::Instant::now();
    for i in 0..10_000 {
        created(
            &s,
            svc(
                &format!("s{i}"),
                json!({"selector": {"app": "x"}, "ports": [{"port": 80}]}),
            ),
        );
    }
    assert_eq!(s.allocated_ips(), 10_000);
    // Unoptimised test build on a shared machine: generous, but catches O(n) per call.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
