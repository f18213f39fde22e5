//! NodePort allocation semantics of the sandbox, through the HTTP API with kube-rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::support::World;

fn node_port_svc(name: &str, node_port: Option<u16>) -> Service {
    let mut port = json!({"port": 80, "targetPort": 8080});
    if let Some(np) = node_port {
        port["nodePort"] = json!(np);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [port]}
    }))
    .unwrap()
}

fn node_port_of(svc: &Service) -> u16 {
    svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap() as u16
}

async fn expect_error(api: &Api<Service>, svc: Service) -> kube::core::Status {
    match api.create(&PostParams::default(), &svc).await {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_fill_the_range_then_fail_then_free() {
    let w = World::start(0).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    const RANGE: usize = 32767 - 30000 + 1;
    const STATIC_BAND_END: u16 = 30085;
    let mut seen = BTreeSet::new();
    let mut first_static = None;
    for i in 0..RANGE {
        let svc = api
            .create(
                &PostParams::default(),
                &node_port_svc(&format!("np-{i}"), None),
            )
            .await
            .unwrap();
        let port = node_port_of(&svc);
        assert!((30000..=32767).contains(&port));
        assert!(seen.insert(port), "port {port} handed out twice");
        if port <= STATIC_BAND_END && first_static.is_none() {
            first_static = Some(i);
        }
    }
    assert_eq!(seen.len(), RANGE);
    // The 2,682 ports of the dynamic band go first; only then the static band.
    assert_eq!(
        first_static,
        Some(RANGE - 86),
        "dynamic allocation must avoid 30000-30085 until the upper band is full"
    );

    let s = expect_error(&api, node_port_svc("one-too-many", None)).await;
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );

    // Deleting one frees exactly its port.
    let victim = api.get("np-7").await.unwrap();
    let freed = node_port_of(&victim);
    api.delete("np-7", &DeleteParams::default()).await.unwrap();
    let again = api
        .create(&PostParams::default(), &node_port_svc("reuse", None))
        .await
        .unwrap();
    assert_eq!(node_port_of(&again), freed);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_node_ports() {
    let w = World::start(0).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &node_port_svc("a", Some(30080)))
        .await
        .unwrap();
    assert_eq!(node_port_of(&first), 30080);
    let s = expect_error(&api, node_port_svc("b", Some(30080))).await;
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let s = expect_error(&api, node_port_svc("c", Some(8080))).await;
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{}",
        s.message
    );
    // A failed create holds nothing: the explicit port of a rejected Service stays free.
    let bad: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "d"},
        "spec": {"type": "NodePort", "ports": [{"name": "a", "port": 81, "nodePort": 30500}, {"name": "b", "port": 82, "nodePort": 30080}]}
    }))
    .unwrap();
    expect_error(&api, bad).await;
    api.create(&PostParams::default(), &node_port_svc("e", Some(30500)))
        .await
        .unwrap();
    // TCP and UDP on the same port share one nodePort.
    let dns: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "tcp", "port": 53, "protocol": "TCP"}, {"name": "udp", "port": 53, "protocol": "UDP"}]}
    }))
    .unwrap();
    let dns = api.create(&PostParams::default(), &dns).await.unwrap();
    let ports = dns.spec.unwrap().ports.unwrap();
    assert_eq!(ports[0].node_port, ports[1].node_port);
    w.shutdown().await;
}
