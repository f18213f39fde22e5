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

fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn bm_world(addresses: &[&str]) -> World {
    trace();
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

/// A LoadBalancer Service without a selector, for the bulk tests: the sandbox's endpoint
/// simulator costs O(Services x EndpointSlices) per change, which at 1,000 selector Services
/// dominates everything (the controller and the allocator do not read endpoints).
fn bare_service(name: &str) -> Service {
    let mut svc = lb_service(name, &[], 80);
    svc.spec.as_mut().unwrap().selector = None;
    svc
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

/// `eventually` with a slower poll, for checks that list 1,000 Services: at 50 ms such a
/// list (and its decoding, debug build) is most of the CPU the controller under test needs.
async fn slowly<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Requests a client sent, by "VERB kind" (kind: the path's last collection segment).
type CallLog = Arc<std::sync::Mutex<BTreeMap<String, u64>>>;

async fn counting_client(world: &World) -> (Client, CallLog) {
    let kc = kube::config::Kubeconfig::read_from(&world.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let log: CallLog = Arc::default();
    let l = log.clone();
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&tower::util::MapRequestLayer::new(
            move |req: http::Request<kube::client::Body>| {
                let path = req.uri().path();
                let q = req.uri().query().unwrap_or("");
                let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                // .../<plural>[/<name>[/status]]
                let (kind, named) = match segs.iter().rposition(|s| {
                    [
                        "services",
                        "ipaddressclaims",
                        "ipaddresspools",
                        "events",
                        "namespaces",
                        "nodes",
                        "leases",
                    ]
                    .contains(s)
                }) {
                    Some(i) => (segs[i], i + 1 < segs.len()),
                    None => (path, false),
                };
                let verb = match (req.method().as_str(), named) {
                    ("GET", _) if q.contains("watch=") => "WATCH",
                    ("GET", false) => "LIST",
                    ("GET", true) => "GET",
                    (m, _) => m,
                };
                *l.lock()
                    .unwrap()
                    .entry(format!("{verb} {kind}"))
                    .or_default() += 1;
                req
            },
        ))
        .build();
    (client, log)
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
    // Releasing one user keeps the address for the other. And "clash", refused only because
    // "first" held TCP/80, fits now: its retry (with backoff) joins the claim.
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let users_of = |all: &[IPAddressClaim]| -> Vec<String> {
        let mut u: Vec<String> = all
            .iter()
            .flat_map(|c| c.spec.users.iter().map(|u| u.name.clone()))
            .collect();
        u.sort();
        u
    };
    eventually(Duration::from_secs(10), "first leaves the claim", || {
        let c = world.client.clone();
        async move {
            let all = claims(&c).await;
            let users = users_of(&all);
            assert!(
                users.contains(&"sharer".to_string()),
                "sharer lost it: {users:?}"
            );
            (all.len() == 1 && !users.contains(&"first".to_string())).then_some(())
        }
    })
    .await;
    assert_eq!(wait_ip(&world.client, "sharer").await, "192.0.2.5");
    eventually(
        Duration::from_secs(10),
        "clash joins once TCP/80 is free",
        || {
            let c = world.client.clone();
            async move {
                let all = claims(&c).await;
                (all.len() == 1 && users_of(&all) == ["clash", "sharer"]).then_some(())
            }
        },
    )
    .await;
    assert_eq!(wait_ip(&world.client, "clash").await, "192.0.2.5");
    ctl.stop().await;
    world.shutdown().await;
}

async fn failed_message(world: &World, name: &str) -> String {
    world
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("reason=AllocationFailed,involvedObject.name={name}"),
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await
}

#[tokio::test]
async fn priority_selectors_and_exhaustion() {
    let world = bm_world(&[]).await;
    // "gold": preferred (priority 1) but only for Services labelled tier=gold; "general": two
    // addresses for everyone. Applied with kubectl, as a user would.
    let pools = r#"
apiVersion: frontdesk.dev/v1alpha1
kind: IPAddressPool
metadata: {name: gold}
spec:
  addresses: ["192.0.2.10-192.0.2.11"]
  serviceAllocation:
    priority: 1
    serviceSelectors: [{matchLabels: {tier: gold}}]
---
apiVersion: frontdesk.dev/v1alpha1
kind: IPAddressPool
metadata: {name: general}
spec:
  addresses: ["198.51.100.0/31"]
"#;
    let (ok, _, err) = world.kubectl_stdin(&["apply", "-f", "-"], pools).await;
    assert!(ok, "{err}");
    let ctl = start_bm(&world, world.client.clone()).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let mut gold = lb_service("g1", &[], 80);
    gold.metadata.labels = Some(BTreeMap::from([("tier".into(), "gold".into())]));
    api.create(&PostParams::default(), &gold).await.unwrap();
    assert!(wait_ip(&world.client, "g1").await.starts_with("192.0.2.1"));
    for name in ["p1", "p2"] {
        api.create(&PostParams::default(), &lb_service(name, &[], 80))
            .await
            .unwrap();
        let ip = wait_ip(&world.client, name).await;
        assert!(
            ip.starts_with("198.51.100."),
            "{name} got {ip}: not from general"
        );
    }
    // general is full and gold is not for p3: exhausted, with a message naming the fix.
    api.create(&PostParams::default(), &lb_service("p3", &[], 80))
        .await
        .unwrap();
    let msg = eventually(Duration::from_secs(10), "AllocationFailed for p3", || {
        let w = &world;
        async move {
            let m = failed_message(w, "p3").await;
            m.contains("no free").then_some(m)
        }
    })
    .await;
    assert!(
        msg.contains("general") && msg.contains("add addresses"),
        "{msg}"
    );
    let p3: Service = api.get("p3").await.unwrap();
    assert!(ips_of(&p3).is_empty(), "p3 got an address from a full pool");
    // An address frees up: p3 gets it on its retry (exhaustion is retried with backoff).
    let p1_ip = wait_ip(&world.client, "p1").await;
    api.delete("p1", &DeleteParams::default()).await.unwrap();
    assert_eq!(wait_ip(&world.client, "p3").await, p1_ip);
    assert!(wait_ip(&world.client, "g1").await.starts_with("192.0.2.1"));
    ctl.stop().await;
    world.shutdown().await;
}

mod scale;
