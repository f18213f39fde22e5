//! The chart's RBAC for `provider: baremetal`: the controller, run as the chart's
//! ServiceAccount with RBAC enforced by the sandbox, allocates from a pool (with a namespace
//! selector, so the namespace read is exercised), keeps the pool's status and in-use finalizer,
//! releases the claim on delete, is never refused, and uses every verb the chart grants it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_mock_cloud::MockCloudConfig;
use frontdesk_mock_cloud::kube::auth::AuditEntry;
use frontdesk_provider_baremetal::BareMetalProvider;
use frontdesk_provider_baremetal::crd::{IPAddressClaim, IPAddressPool};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::chart::{
    WAIT, apply, docs, example_values, external_ip, granted, kubeconfig_with_token, render,
    rendered_config, sa_decisions,
};
use crate::support::{
    World, client_for, eventually, example_path, start_controller_with, test_config,
};

const POOL: &str = r#"
apiVersion: frontdesk.dev/v1alpha1
kind: IPAddressPool
metadata:
  name: lab
spec:
  addresses: ["192.0.2.0/28"]
  serviceAllocation:
    namespaceSelectors:
      - matchLabels:
          kubernetes.io/metadata.name: default
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_for_the_baremetal_controller_and_no_more() {
    let w = World::start_with(MockCloudConfig {
        nodes: 2,
        enforce_rbac: true,
        ..MockCloudConfig::default()
    })
    .await;
    w.kubectl_ok(&["create", "namespace", "frontdesk"]).await;
    let stream = render(&example_values("baremetal"), "frontdesk", "frontdesk").unwrap();
    let docs = docs(&stream);
    apply(&w, &stream).await;
    let (ok, out, err) = w.kubectl_stdin(&["apply", "-f", "-"], POOL).await;
    assert!(ok, "{out}{err}");

    let token = w
        .kubectl_ok(&["-n", "frontdesk", "create", "token", "frontdesk-controller"])
        .await;
    let sa_kubeconfig = kubeconfig_with_token(&w, token.trim(), "controller.kubeconfig");
    let sa_client = client_for(&sa_kubeconfig).await;
    let mut config = test_config();
    config.leader_election = rendered_config(&docs).leader_election.clone();
    config.leader_election.lease_duration_seconds = 3.0;
    config.leader_election.renew_interval_seconds = 0.5;
    let metrics = Arc::new(Metrics::new());
    let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
    let provider = BareMetalProvider::new(sa_client.clone(), ctx);
    let ctl = start_controller_with(sa_client.clone(), provider, config, metrics).await;

    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let ip = eventually(WAIT, "an address from the pool", || {
        external_ip(&api, "my-app-service")
    })
    .await;
    assert!(ip.starts_with("192.0.2."), "{ip}");
    let pools: Api<IPAddressPool> = Api::all(w.client.clone());
    eventually(WAIT, "the pool's status counts the address", || async {
        let status = pools.get("lab").await.ok()?.status?;
        (status.assigned_ipv4 == 1 && status.available_ipv4 == 15).then_some(())
    })
    .await;

    // Two Services sharing one requested address (MetalLB's allow-shared-ip), then one leaves:
    // the shared claim is rewritten (claims `update`).
    for (name, port) in [("share-a", 80), ("share-b", 443)] {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": {
                "metallb.io/allow-shared-ip": "web",
                "metallb.io/loadBalancerIPs": "192.0.2.9"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"protocol": "TCP", "port": port, "targetPort": 8080}]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &svc).await.unwrap();
    }
    for name in ["share-a", "share-b"] {
        let got = eventually(WAIT, "the shared address", || external_ip(&api, name)).await;
        assert_eq!(got, "192.0.2.9", "{name}");
    }
    api.delete("share-a", &DeleteParams::default())
        .await
        .unwrap();
    let claims: Api<IPAddressClaim> = Api::all(w.client.clone());
    eventually(WAIT, "the shared claim keeps only share-b", || async {
        let list = claims.list(&ListParams::default()).await.ok()?.items;
        let shared = list.iter().find(|c| c.spec.address == "192.0.2.9")?;
        (shared.spec.users.len() == 1).then_some(())
    })
    .await;

    // An address outside every pool: a repeated Warning (the recorder patches its count).
    let bad: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "outside", "namespace": "default",
                     "annotations": {"metallb.io/loadBalancerIPs": "198.51.100.7"}},
        "spec": {"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 80}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &bad).await.unwrap();
    eventually(WAIT, "the AllocationFailed warning repeated", || async {
        let events = w
            .kubectl_ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=outside",
                "-o",
                "jsonpath={range .items[*]}{.reason}={.count}{\"\\n\"}{end}",
            ])
            .await;
        events
            .lines()
            .filter_map(|l| l.strip_prefix("AllocationFailed="))
            .any(|n| n.parse::<u32>().unwrap_or(0) >= 2)
            .then_some(())
    })
    .await;

    for name in ["my-app-service", "share-b", "outside"] {
        w.kubectl_ok(&["delete", "svc", name, "--timeout=30s"])
            .await;
    }
    eventually(WAIT, "the claims released", || async {
        claims
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;

    let denied: Vec<AuditEntry> = sa_decisions(&w)
        .into_iter()
        .filter(|e| !e.allowed)
        .collect();
    assert!(denied.is_empty(), "the chart's RBAC refused: {denied:#?}");
    let used = sa_decisions(&w);
    let unused: Vec<_> = granted(&docs)
        .into_iter()
        .filter(|(group, resource, verb)| {
            !used
                .iter()
                .any(|e| &e.api_group == group && &e.resource == resource && &e.verb == verb)
        })
        .collect();
    assert!(
        unused.is_empty(),
        "the chart grants these (group, resource, verb) but the controller never used them: \
         {unused:?}"
    );
    ctl.stop().await;
    w.shutdown().await;
}

/// `examples/baremetal-pool.yaml`, which the chart's NOTES point to, is accepted as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_pool_is_accepted() {
    let w = World::start(1).await;
    frontdesk_provider_baremetal::install(&w.client, false)
        .await
        .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/baremetal-pool.yaml");
    w.kubectl_ok(&["apply", "-f", path]).await;
    w.kubectl_ok(&["get", "l2advertisements", "default"]).await;
    let pools: Api<IPAddressPool> = Api::all(w.client.clone());
    let pool = pools.get("default").await.unwrap();
    assert!(pool.spec.avoid_buggy_ips && pool.spec.auto_assign);
    w.shutdown().await;
}
