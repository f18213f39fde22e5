//! The chart's speaker RBAC is enough and not more (needs root for the lab and the helm venv
//! for rendering, like `chart.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use frontdesk_mock_cloud::MockCloudConfig;
use frontdesk_provider_baremetal::crd::{
    IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec,
};
use frontdesk_provider_baremetal::speaker::lab::{self, Lab};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{endpoints, winner};
use crate::support::*;

/// The chart's speaker RBAC is enough and not more: two speakers run in this process as the
/// chart's `frontdesk-speaker` ServiceAccount against the sandbox with RBAC enforced, answering
/// on the root namespace's lab interface; the address moves node-1 → node-2 → node-1 (so the
/// Event is both created and aggregated), then both stop gracefully (Lease deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_for_the_speaker_and_no_more() {
    use crate::chart::{apply, docs, example_values, kubeconfig_with_token, render};
    use frontdesk_provider_baremetal::speaker::{self, InterfaceFilter, SpeakerConfig};
    use tokio_util::sync::CancellationToken;

    lab::require_tools().expect("speaker tests need iproute2, arping and ndisc6");
    let lab = Lab::create(0).expect("build the namespace lab (root needed)");
    let w = World::start_with(MockCloudConfig {
        nodes: 2,
        enforce_rbac: true,
        ..MockCloudConfig::default()
    })
    .await;
    w.kubectl_ok(&["create", "namespace", "frontdesk"]).await;
    let stream = render(&example_values("baremetal"), "frontdesk", "frontdesk").unwrap();
    let rendered = docs(&stream);
    apply(&w, &stream).await;
    let token = w
        .kubectl_ok(&["-n", "frontdesk", "create", "token", "frontdesk-speaker"])
        .await;
    let sa_client = client_for(&kubeconfig_with_token(
        &w,
        token.trim(),
        "speaker.kubeconfig",
    ))
    .await;

    // As the admin: a pool, an advertisement, a Service of another class holding a pool
    // address, endpoints on both nodes.
    let admin = w.client.clone();
    let pools: Api<IPAddressPool> = Api::all(admin.clone());
    let spec = IPAddressPoolSpec {
        addresses: vec![lab.pool_v4()],
        auto_assign: true,
        ..Default::default()
    };
    pools
        .create(&PostParams::default(), &IPAddressPool::new("lab", spec))
        .await
        .unwrap();
    let ads: Api<L2Advertisement> = Api::all(admin.clone());
    let ad = L2Advertisement::new("lab", L2AdvertisementSpec::default());
    ads.create(&PostParams::default(), &ad).await.unwrap();
    let vip: Ipv4Addr = lab.pool_v4().split('-').next().unwrap().parse().unwrap();
    let two = ["node-1", "node-2"];
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/elsewhere",
                 "ports": [{"name": "p", "protocol": "TCP", "port": 80}]}
    }))
    .unwrap();
    let svcs: Api<Service> = Api::namespaced(admin.clone(), "default");
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": vip.to_string()}]}}});
    svcs.patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-test", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web",
                                "endpointslice.kubernetes.io/managed-by": "speaker-test"}},
        "addressType": "IPv4", "endpoints": endpoints(&two)
    }))
    .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");
    slices.create(&PostParams::default(), &slice).await.unwrap();

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for node in two {
        let mut config = SpeakerConfig::new(node, "frontdesk");
        config.interfaces = InterfaceFilter {
            only: vec![lab.host_interface().to_string()],
        };
        let (client, stop) = (sa_client.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            speaker::run(client, config, stop.cancelled_owned()).await
        }));
    }
    let says = |node: &'static str| {
        let svcs = svcs.clone();
        move || {
            let svcs = svcs.clone();
            async move {
                let s = svcs.get("web").await.ok()?;
                frontdesk_provider_baremetal::speaker::status::says(&s, node).then_some(())
            }
        }
    };
    let first: &'static str = if winner(vip.into(), &two) == "node-1" {
        "node-1"
    } else {
        "node-2"
    };
    let other: &'static str = if first == "node-1" {
        "node-2"
    } else {
        "node-1"
    };
    eventually(WAIT_RBAC, "the first winner's condition", says(first)).await;
    let macs =
        tokio::task::block_in_place(|| lab.arping(vip, 3, Duration::from_millis(100))).unwrap();
    assert!(!macs.is_empty(), "the in-process speaker answers ARP");
    let nodes: Api<Node> = Api::all(admin.clone());
    let label = |v: Option<&str>| {
        json!({"metadata": {"labels": {
            "node.kubernetes.io/exclude-from-external-load-balancers": v}}})
    };
    nodes
        .patch(
            first,
            &PatchParams::default(),
            &Patch::Merge(label(Some("true"))),
        )
        .await
        .unwrap();
    eventually(WAIT_RBAC, "the other node's condition", says(other)).await;
    nodes
        .patch(first, &PatchParams::default(), &Patch::Merge(label(None)))
        .await
        .unwrap();
    eventually(WAIT_RBAC, "the first winner's condition again", says(first)).await;
    // The same Event message a second time is aggregated (a patch, not a create).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), "frontdesk");
    let left = leases.list(&ListParams::default()).await.unwrap().items;
    assert!(
        left.is_empty(),
        "graceful stop deletes the Leases: {left:?}"
    );

    // Enough: nothing refused. Not more: every granted verb used.
    let user = "system:serviceaccount:frontdesk:frontdesk-speaker";
    let audit: Vec<_> = w
        .cloud
        .sandbox
        .audit()
        .into_iter()
        .filter(|e| e.user == user)
        .collect();
    let denied: Vec<_> = audit.iter().filter(|e| !e.allowed).collect();
    assert!(
        denied.is_empty(),
        "the chart's speaker RBAC refused: {denied:#?}"
    );
    let mut granted = Vec::new();
    for role in rendered.iter().filter(|d| {
        (d["kind"] == "ClusterRole" || d["kind"] == "Role")
            && d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("frontdesk-speaker"))
    }) {
        for rule in role["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        granted.push((
                            g.as_str().unwrap().to_string(),
                            r.as_str().unwrap().to_string(),
                            v.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    assert!(granted.len() >= 12, "speaker rules found: {granted:?}");
    for (group, resource, verb) in granted {
        assert!(
            audit
                .iter()
                .any(|e| e.api_group == group && e.resource == resource && e.verb == verb),
            "the chart grants {verb} on {resource} (group {group:?}) but the speaker never used it"
        );
    }
    drop(lab);
    w.shutdown().await;
}

const WAIT_RBAC: Duration = Duration::from_secs(15);
