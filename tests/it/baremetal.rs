//! Bare-metal mode through the real controller against the sandbox: pools, claims, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_provider_baremetal::BareMetalProvider;
use frontdesk_provider_baremetal::crd::{IPAddressClaim, IPAddressPool, IPAddressPoolSpec};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::support::*;

async fn bm_world(addresses: &[&str]) -> World {
    let world = World::start(1).await;
    frontdesk_provider_baremetal::install(&world.client, false)
        .await
        .unwrap();
    if !addresses.is_empty() {
        create_pool(&world.client, "pool-a", addresses).await;
    }
    world
}

async fn create_pool(client: &Client, name: &str, addresses: &[&str]) {
    let pools: Api<IPAddressPool> = Api::all(client.clone());
    let pool = IPAddressPool::new(
        name,
        IPAddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            auto_assign: true,
            ..Default::default()
        },
    );
    pools.create(&PostParams::default(), &pool).await.unwrap();
}

async fn start_bm(world: &World, client: Client) -> RunningController {
    let metrics = Arc::new(Metrics::new());
    let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
    let provider = BareMetalProvider::new(client.clone(), ctx);
    let _ = world;
    start_controller_with(client, provider, test_config(), metrics).await
}

fn lb_service(name: &str, annotations: &[(&str, &str)], port: i32) -> Service {
    let ann: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": ann},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"name": "p", "protocol": "TCP", "port": port, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn ips_of(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

async fn wait_ip(client: &Client, name: &str) -> String {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(15),
        &format!("an address for {name}"),
        || {
            let api = api.clone();
            async move { ips_of(&api.get(name).await.ok()?).into_iter().next() }
        },
    )
    .await
}

async fn claims(client: &Client) -> Vec<IPAddressClaim> {
    let api: Api<IPAddressClaim> = Api::all(client.clone());
    api.list(&ListParams::default()).await.unwrap().items
}

#[tokio::test]
async fn sandbox_default_pool_gives_the_example_an_address_and_counts_show() {
    let world = World::start(1).await;
    frontdesk_provider_baremetal::install(&world.client, true)
        .await
        .unwrap();
    let ctl = start_bm(&world, world.client.clone()).await;
    world.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let ip = wait_ip(&world.client, "my-app-service").await;
    assert!(ip.starts_with("198.51.100."), "{ip}");
    let out = world
        .kubectl_ok(&[
            "get",
            "svc",
            "my-app-service",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ipMode}",
        ])
        .await;
    assert_eq!(out, "VIP");
    let table = eventually(Duration::from_secs(10), "pool counts", || {
        let w = &world;
        async move {
            let out = w.kubectl_ok(&["get", "ipaddresspools"]).await;
            // Columns: NAME AUTO ASSIGN, AVOID BUGGY IPS, ADDRESSES, IPv4 ASSIGNED, IPv4 AVAILABLE, ...
            out.lines()
                .any(|l| l.starts_with("default") && l.contains(" 1 ") && l.contains(" 255 "))
                .then_some(out)
        }
    })
    .await;
    assert!(table.contains("IPV4 ASSIGNED"), "{table}");
    let claims_table = world.kubectl_ok(&["get", "ipaddressclaims"]).await;
    assert!(claims_table.contains(&ip), "{claims_table}");
    let events = world
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=IPAllocated",
            "-o",
            "name",
        ])
        .await;
    assert!(!events.trim().is_empty(), "no IPAllocated event");

    world.kubectl_ok(&["delete", "svc", "my-app-service"]).await;
    eventually(Duration::from_secs(10), "claim released", || {
        let c = world.client.clone();
        async move { claims(&c).await.is_empty().then_some(()) }
    })
    .await;
    ctl.stop().await;
    world.shutdown().await;
}

#[tokio::test]
async fn pool_deleted_while_in_use_waits_for_its_services() {
    let world = bm_world(&["192.0.2.0/30"]).await;
    let ctl = start_bm(&world, world.client.clone()).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    api.create(&PostParams::default(), &lb_service("a", &[], 80))
        .await
        .unwrap();
    let ip = wait_ip(&world.client, "a").await;
    let pools: Api<IPAddressPool> = Api::all(world.client.clone());
    eventually(Duration::from_secs(10), "pool finalizer", || {
        let pools = pools.clone();
        async move {
            let p = pools.get("pool-a").await.ok()?;
            (!p.finalizers().is_empty()).then_some(())
        }
    })
    .await;
    pools
        .delete("pool-a", &DeleteParams::default())
        .await
        .unwrap();
    // Still there, saying why, and the Service keeps its address.
    let reason = eventually(Duration::from_secs(10), "AddressesInUse condition", || {
        let pools = pools.clone();
        async move {
            let p = pools.get("pool-a").await.ok()?;
            let c = p
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "AddressesInUse")?;
            (c.status == "True").then_some(c.reason)
        }
    })
    .await;
    assert_eq!(reason, "DeletionBlocked");
    // A new Service gets nothing from a pool being deleted.
    api.create(&PostParams::default(), &lb_service("b", &[], 80))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "AllocationFailed for b", || {
        let w = &world;
        async move {
            let out = w
                .kubectl_ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    "reason=AllocationFailed,involvedObject.name=b",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])
                .await;
            out.contains("autoAssign").then_some(())
        }
    })
    .await;
    assert_eq!(wait_ip(&world.client, "a").await, ip);
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(15), "pool gone once unused", || {
        let pools = pools.clone();
        async move { pools.get_opt("pool-a").await.ok()?.is_none().then_some(()) }
    })
    .await;
    ctl.stop().await;
    world.shutdown().await;
}
