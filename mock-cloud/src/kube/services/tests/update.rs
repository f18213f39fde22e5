//! Updates: carried-over allocations, type transitions, status writes.

use serde_json::{Value, json};

use super::*;
use crate::kube::strategy::Strategy;

#[test]
fn health_check_port_follows_the_traffic_policy() {
    let s = strategy();
    let lb = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        ),
    );
    let hc = lb["spec"]["healthCheckNodePort"].as_i64().expect("hc");
    assert_eq!(s.allocated_node_ports(), 2);

    // Changing the value while Local is forbidden.
    let mut moved = lb.clone();
    moved["spec"]["healthCheckNodePort"] = json!(hc + 1);
    let (code, msg) = err_message(update(&s, &lb, moved));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"lb\" is invalid: spec.healthCheckNodePort: Forbidden: field is immutable"
        )
    );

    let mut cluster = lb.clone();
    cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
    let cluster = updated(&s, &lb, cluster);
    assert!(cluster["spec"].get("healthCheckNodePort").is_none());
    assert_eq!(s.allocated_node_ports(), 1);

    let mut local = cluster.clone();
    local["spec"]["externalTrafficPolicy"] = json!("Local");
    let local = updated(&s, &cluster, local);
    assert!(local["spec"]["healthCheckNodePort"].as_i64().is_some());
    assert_eq!(s.allocated_node_ports(), 2);
}

#[test]
fn requested_health_check_port_taken_is_a_500() {
    let s = strategy();
    created(
        &s,
        svc(
            "a",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]}),
        ),
    );
    let r = create(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30500, "ports": [{"port": 80}]}),
        ),
    );
    let (code, msg) = err_message(r);
    assert_eq!(
        (code, msg.as_str()),
        (
            500,
            "Internal error occurred: failed to allocate requested HealthCheck NodePort 30500: provided port is already allocated"
        )
    );
    assert_eq!(
        s.allocated_node_ports(),
        1,
        "the LB's own nodePort was given back"
    );
    assert_eq!(s.allocated_ips(), 1);
}

#[test]
fn load_balancer_to_cluster_ip_releases_ports_and_wipes_status() {
    let s = strategy();
    let lb = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 31000}]}),
        ),
    );
    let ip = lb["spec"]["clusterIP"].clone();
    // The controller published an address.
    let mut with_status = lb.clone();
    with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}});
    s.update(&lb, &mut with_status, &STATUS)
        .expect("status write");
    assert_eq!(
        with_status["status"]["loadBalancer"]["ingress"][0]["ipMode"],
        "VIP"
    );

    // kubectl apply of the same object with only the type changed.
    let mut next = with_status.clone();
    next["spec"]["type"] = json!("ClusterIP");
    let out = updated(&s, &with_status, next);
    assert!(node_ports(&out).is_empty());
    assert_eq!(out["spec"]["clusterIP"], ip);
    assert!(out["spec"].get("allocateLoadBalancerNodePorts").is_none());
    assert!(out["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(out["status"], json!({"loadBalancer": {}}));
    assert_eq!(s.allocated_node_ports(), 0);
    // Reusable immediately.
    created(
        &s,
        svc(
            "again",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
        ),
    );
}

#[test]
fn put_of_the_original_manifest_keeps_allocations() {
    let s = strategy();
    let manifest = svc(
        "web",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
    );
    let stored = created(&s, manifest.clone());
    let out = updated(&s, &stored, manifest);
    assert_eq!(node_ports(&out), node_ports(&stored));
    assert_eq!(out["spec"]["clusterIP"], stored["spec"]["clusterIP"]);
    assert_eq!(
        out["spec"]["healthCheckNodePort"],
        stored["spec"]["healthCheckNodePort"]
    );
    assert_eq!(s.allocated_node_ports(), 3);
    assert_eq!(s.allocated_ips(), 1);
}

#[test]
fn cluster_ip_is_immutable() {
    let s = strategy();
    let stored = created(&s, svc("web", json!({"ports": [{"port": 80}]})));
    let mut next = stored.clone();
    next["spec"]["clusterIP"] = json!("10.96.5.5");
    next["spec"]["clusterIPs"] = json!(["10.96.5.5"]);
    let (code, msg) = err_message(update(&s, &stored, next));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.5.5\"}: may not change once set"
        )
    );
}

#[test]
fn load_balancer_class_is_immutable_while_load_balancer() {
    let s = strategy();
    let stored = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/a", "ports": [{"port": 80}]}),
        ),
    );
    let mut next = stored.clone();
    next["spec"]["loadBalancerClass"] = json!("example.com/b");
    let (code, msg) = err_message(update(&s, &stored, next));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"lb\" is invalid: spec.loadBalancerClass: Invalid value: \"example.com/b\": may not change once set"
        )
    );
    // Leaving LoadBalancer drops the unchanged class.
    let mut next = stored.clone();
    next["spec"]["type"] = json!("ClusterIP");
    let out = updated(&s, &stored, next);
    assert!(out["spec"].get("loadBalancerClass").is_none());
}

#[test]
fn type_changes_allocate_and_release_cluster_ips() {
    let s = strategy();
    let en = created(
        &s,
        svc(
            "x",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    );
    let mut to_cip = en.clone();
    to_cip["spec"] = json!({"type": "ClusterIP", "ports": [{"port": 80}]});
    let cip = updated(&s, &en, to_cip);
    assert!(
        cip["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_eq!(s.allocated_ips(), 1);

    let mut back = cip.clone();
    back["spec"]["type"] = json!("ExternalName");
    back["spec"]["externalName"] = json!("example.com");
    let back = updated(&s, &cip, back);
    assert!(back["spec"].get("clusterIP").is_none());
    assert!(back["spec"].get("ipFamilies").is_none());
    assert!(back["spec"].get("internalTrafficPolicy").is_none());
    assert_eq!(s.allocated_ips(), 0);
}

#[test]
fn node_port_update_allocates_new_and_releases_removed_ports() {
    let s = strategy();
    let stored = created(
        &s,
        svc(
            "np",
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81}]}),
        ),
    );
    assert_eq!(s.allocated_node_ports(), 2);
    let mut next = stored.clone();
    next["spec"]["ports"] = json!([{"name": "a", "port": 80, "nodePort": 30090}]);
    let out = updated(&s, &stored, next);
    assert_eq!(node_ports(&out), [30090]);
    assert_eq!(s.allocated_node_ports(), 1);
    // 30080 is free again.
    created(
        &s,
        svc(
            "other",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    );
}

#[test]
fn failed_update_keeps_the_old_allocations() {
    let s = strategy();
    let stored = created(
        &s,
        svc(
            "np",
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}]}),
        ),
    );
    let mut next = stored.clone();
    next["spec"]["type"] = json!("ClusterIP");
    next["spec"]["sessionAffinity"] = json!("Bad");
    assert_eq!(err_message(update(&s, &stored, next)).0, 422);
    assert_eq!(
        s.allocated_node_ports(),
        1,
        "deferred release not applied on failure"
    );
    let mut next = stored.clone();
    next["spec"]["ports"] =
        json!([{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 8080}]);
    assert_eq!(err_message(update(&s, &stored, next)).0, 422);
    assert_eq!(s.allocated_node_ports(), 1);
}

#[test]
fn status_writes_are_validated_and_allocate_nothing() {
    let s = strategy();
    let cip = created(&s, svc("c", json!({"ports": [{"port": 80}]})));
    let mut st = cip.clone();
    st["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
    let (code, msg) = err_message(s.update(&cip, &mut st, &STATUS).map(|()| Value::Null));
    assert_eq!(
        (code, msg.as_str()),
        (
            422,
            "Service \"c\" is invalid: status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
        )
    );
    let lb = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    );
    let before = (s.allocated_ips(), s.allocated_node_ports());
    let cases = [
        (
            json!([{"ip": "not-an-ip"}]),
            "status.loadBalancer.ingress[0].ip: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            json!([{"hostname": "lb.example.com", "ipMode": "VIP"}]),
            "status.loadBalancer.ingress[0].ipMode: Forbidden: may not be specified when `ip` is not set",
        ),
        (
            json!([{"ip": "192.0.2.1", "ipMode": "Magic"}]),
            "status.loadBalancer.ingress[0].ipMode: Unsupported value: \"Magic\": supported values: \"Proxy\", \"VIP\"",
        ),
    ];
    for (ingress, want) in cases {
        let mut st = lb.clone();
        st["status"] = json!({"loadBalancer": {"ingress": ingress}});
        let (code, msg) = err_message(s.update(&lb, &mut st, &STATUS).map(|()| Value::Null));
        assert_eq!(code, 422);
        assert_eq!(msg, format!("Service \"lb\" is invalid: {want}"));
    }
    let mut ok = lb.clone();
    ok["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "Proxy"}, {"hostname": "lb.example.com"}]}});
    s.update(&lb, &mut ok, &STATUS).expect("valid status");
    assert_eq!((s.allocated_ips(), s.allocated_node_ports()), before);
}

#[test]
fn main_resource_writes_keep_the_stored_status() {
    let s = strategy();
    let lb = created(
        &s,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    );
    let mut with_status = lb.clone();
    with_status["status"] =
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}});
    let mut next = with_status.clone();
    next["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9", "ipMode": "VIP"}]}});
    next["spec"]["selector"] = json!({"app": "new"});
    let out = updated(&s, &with_status, next);
    assert_eq!(out["status"], with_status["status"]);
}
