//! Bare-metal mode through the real controller against the sandbox: pools, claims, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_provider_baremetal::BareMetalProvider;
use frontdesk_provider_baremetal::crd::{IPAddressClaim, IPAddressPool, IPAddressPoolSpec};
use futures::StreamExt;
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

async fn all_ips(client: &Client) -> HashMap<String, String> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|s| Some((s.name_any(), ips_of(s).into_iter().next()?)))
        .collect()
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

#[tokio::test]
async fn requested_address_conflicts_and_sharing() {
    let world = bm_world(&["192.0.2.0/28"]).await;
    let ctl = start_bm(&world, world.client.clone()).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let mk = |name: &str, ann: &[(&str, &str)], port| lb_service(name, ann, port);
    api.create(
        &PostParams::default(),
        &mk(
            "first",
            &[
                ("metallb.io/loadBalancerIPs", "192.0.2.5"),
                ("metallb.io/allow-shared-ip", "k"),
            ],
            80,
        ),
    )
    .await
    .unwrap();
    assert_eq!(wait_ip(&world.client, "first").await, "192.0.2.5");
    // Same key, other port: shares. Legacy key: works, with a deprecation Warning.
    api.create(
        &PostParams::default(),
        &mk(
            "sharer",
            &[
                ("metallb.universe.tf/loadBalancerIPs", "192.0.2.5"),
                ("metallb.universe.tf/allow-shared-ip", "k"),
            ],
            443,
        ),
    )
    .await
    .unwrap();
    assert_eq!(wait_ip(&world.client, "sharer").await, "192.0.2.5");
    // Same port: refused, with a message naming the fix.
    api.create(
        &PostParams::default(),
        &mk(
            "clash",
            &[
                ("frontdesk.dev/load-balancer-ips", "192.0.2.5"),
                ("metallb.io/allow-shared-ip", "k"),
            ],
            80,
        ),
    )
    .await
    .unwrap();
    // Outside every pool.
    api.create(
        &PostParams::default(),
        &mk(
            "outside",
            &[("metallb.io/loadBalancerIPs", "203.0.113.9")],
            80,
        ),
    )
    .await
    .unwrap();
    for (name, needle) in [
        ("clash", "allow-shared-ip"),
        ("outside", "not in any IPAddressPool"),
    ] {
        eventually(
            Duration::from_secs(10),
            &format!("AllocationFailed for {name}"),
            || {
                let w = &world;
                let sel = format!("reason=AllocationFailed,involvedObject.name={name}");
                async move {
                    let out = w
                        .kubectl_ok(&[
                            "get",
                            "events",
                            "--field-selector",
                            &sel,
                            "-o",
                            "jsonpath={.items[*].message}",
                        ])
                        .await;
                    out.contains(needle).then_some(())
                }
            },
        )
        .await;
    }
    let dep = world
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=DeprecatedAnnotation,involvedObject.name=sharer",
            "-o",
            "name",
        ])
        .await;
    assert!(!dep.trim().is_empty(), "no DeprecatedAnnotation event");
    let all = claims(&world.client).await;
    assert_eq!(all.len(), 1, "one claim for the shared address");
    assert_eq!(all[0].spec.users.len(), 2);
    // Releasing one user keeps the address for the other.
    api.delete("first", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), "first leaves the claim", || {
        let c = world.client.clone();
        async move {
            let all = claims(&c).await;
            (all.len() == 1
                && all[0].spec.users.len() == 1
                && all[0].spec.users[0].name == "sharer")
                .then_some(())
        }
    })
    .await;
    ctl.stop().await;
    world.shutdown().await;
}

#[tokio::test]
async fn two_controllers_racing_never_hand_out_one_address_twice() {
    let world = bm_world(&["192.0.2.0/26"]).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    // Two controllers (classes a and b), each with its own memory, both starting at the
    // pool's first address: only the claims keep them from handing out one address twice.
    for i in 0..40 {
        let mut svc = lb_service(&format!("s{i}"), &[], 80);
        let class = if i % 2 == 0 {
            "example.com/a"
        } else {
            "example.com/b"
        };
        svc.spec.as_mut().unwrap().load_balancer_class = Some(class.to_string());
        api.create(&PostParams::default(), &svc).await.unwrap();
    }
    let start = |class: &'static str| {
        let w = &world;
        async move {
            let client = client_for(&w.kubeconfig).await;
            let metrics = Arc::new(Metrics::new());
            let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
            let provider = BareMetalProvider::new(client.clone(), ctx);
            let mut config = test_config();
            config.load_balancer_class = Some(class.to_string());
            config.claim_unclassed = false;
            start_controller_with(client, provider, config, metrics).await
        }
    };
    let (a, b) = tokio::join!(start("example.com/a"), start("example.com/b"));
    let ips = eventually(Duration::from_secs(20), "40 addresses", || {
        let c = world.client.clone();
        async move {
            let ips = all_ips(&c).await;
            (ips.len() == 40).then_some(ips)
        }
    })
    .await;
    let unique: HashSet<&String> = ips.values().collect();
    assert_eq!(unique.len(), 40, "duplicate addresses: {ips:?}");
    let held: HashSet<String> = claims(&world.client)
        .await
        .iter()
        .map(|c| c.spec.address.clone())
        .collect();
    assert_eq!(
        held,
        ips.values().cloned().collect(),
        "every published address is claimed once"
    );
    // They really raced: some create met the other's claim (AlreadyExists, counted Conflict).
    let mut conflicts = 0;
    for ctl in [&a, &b] {
        let text = reqwest::get(&ctl.metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        conflicts += text
            .lines()
            .filter(|l| {
                l.contains("operation=\"CreateClaim\"") && l.contains("result=\"Conflict\"")
            })
            .count();
    }
    assert!(
        conflicts > 0,
        "the controllers never collided; the test proves nothing"
    );
    a.stop().await;
    b.stop().await;
    world.shutdown().await;
}

#[tokio::test]
async fn restart_in_the_middle_of_1000_allocations() {
    let world = bm_world(&["10.20.0.0/22"]).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let t0 = std::time::Instant::now();
    futures::stream::iter(0..1000)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &lb_service(&format!("r{i}"), &[], 80),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    eprintln!("created 1000 Services in {:?}", t0.elapsed());
    let first = start_bm(&world, client_for(&world.kubeconfig).await).await;
    eventually(Duration::from_secs(30), "some addresses", || {
        let c = world.client.clone();
        async move {
            let ips = all_ips(&c).await;
            (ips.len() >= 300).then_some(())
        }
    })
    .await;
    eprintln!("300 addresses after {:?}", t0.elapsed());
    first.kill();
    let before = all_ips(&world.client).await;
    assert!(
        before.len() < 1000,
        "finished before the restart; the test proves nothing"
    );
    let second = start_bm(&world, client_for(&world.kubeconfig).await).await;
    let after = eventually(Duration::from_secs(60), "1000 addresses", || {
        let c = world.client.clone();
        async move {
            let ips = all_ips(&c).await;
            (ips.len() == 1000).then_some(ips)
        }
    })
    .await;
    for (name, ip) in &before {
        assert_eq!(
            after.get(name),
            Some(ip),
            "{name} lost its address across the restart"
        );
    }
    let unique: HashSet<&String> = after.values().collect();
    assert_eq!(unique.len(), 1000, "duplicate addresses");
    let held = claims(&world.client).await;
    assert_eq!(held.len(), 1000, "one claim per address, none leaked");
    second.stop().await;
    world.shutdown().await;
}
