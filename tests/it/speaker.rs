//! The bare-metal speaker on a real (namespaced) LAN: three node namespaces and a client on a
//! bridge, the sandbox API on the root namespace's lab address, one `frontdesk speaker` per
//! node namespace, probed with the real `arping` and `ndisc6`. Needs root (network
//! namespaces); fails loudly without the tools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_mock_cloud::MockCloudConfig;
use frontdesk_provider_baremetal::BareMetalProvider;
use frontdesk_provider_baremetal::crd::{
    IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec,
};
use frontdesk_provider_baremetal::speaker::election;
use frontdesk_provider_baremetal::speaker::lab::{self, Lab};
use k8s_openapi::api::core::v1::{Event, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

/// The chart's speaker RBAC, proven by running speakers as its ServiceAccount.
mod rbac;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// Lab + sandbox + bare-metal controller + one speaker per node namespace. Field order is
/// drop order: the lab (which kills the speakers and removes the namespaces) goes first.
struct Net {
    lab: Lab,
    world: World,
    controller: Option<RunningController>,
    speakers: BTreeMap<String, u32>,
}

impl Net {
    async fn up() -> Net {
        lab::require_tools().expect("speaker tests need iproute2, arping and ndisc6");
        let lab = Lab::create(NODES.len()).expect("build the namespace lab (root needed)");
        let world = World::start_with(MockCloudConfig {
            kube_listen: (lab.host_ip(), 0).into(),
            nodes: NODES.len(),
            ..MockCloudConfig::default()
        })
        .await;
        frontdesk_provider_baremetal::install(&world.client, false)
            .await
            .unwrap();
        let pools: Api<IPAddressPool> = Api::all(world.client.clone());
        let pool = IPAddressPool::new(
            "lab",
            IPAddressPoolSpec {
                addresses: vec![lab.pool_v4(), lab.pool_v6()],
                auto_assign: true,
                ..Default::default()
            },
        );
        pools.create(&PostParams::default(), &pool).await.unwrap();
        let ads: Api<L2Advertisement> = Api::all(world.client.clone());
        let ad = L2Advertisement::new("lab", L2AdvertisementSpec::default());
        ads.create(&PostParams::default(), &ad).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
        let provider = BareMetalProvider::new(world.client.clone(), ctx);
        let controller =
            start_controller_with(world.client.clone(), provider, test_config(), metrics).await;
        let mut net = Net {
            lab,
            world,
            controller: Some(controller),
            speakers: BTreeMap::new(),
        };
        for node in NODES {
            net.start_speaker(node);
        }
        net
    }

    fn index(node: &str) -> usize {
        NODES.iter().position(|n| *n == node).unwrap()
    }

    fn mac(&self, node: &str) -> String {
        self.lab.nodes[Self::index(node)].mac.clone()
    }

    fn start_speaker(&mut self, node: &str) {
        let n = &self.lab.nodes[Self::index(node)];
        let log = std::fs::File::create(self.world.dir.path().join(format!("{node}.log"))).unwrap();
        let kubeconfig = self.world.kubeconfig.to_str().unwrap().to_string();
        let metrics = format!("{}:9120", n.ip4);
        let pid = self
            .lab
            .spawn(
                &n.ns,
                &[
                    env!("CARGO_BIN_EXE_frontdesk"),
                    "speaker",
                    "--node-name",
                    node,
                    "--kubeconfig",
                    &kubeconfig,
                    "--namespace",
                    "default",
                    "--metrics-listen",
                    &metrics,
                ],
                Some(log),
            )
            .unwrap();
        self.speakers.insert(node.to_string(), pid);
    }

    /// Stop a speaker with `signal` and reap it.
    fn stop_speaker(&mut self, node: &str, signal: &str) {
        let pid = self.speakers.remove(node).unwrap();
        self.lab.signal(pid, signal).unwrap();
        self.lab.wait(pid);
    }

    fn logs(&self) -> String {
        NODES
            .iter()
            .map(|n| {
                let p = self.world.dir.path().join(format!("{n}.log"));
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {n}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A LoadBalancer Service without selector, its endpoints on `on`; the controller gives
    /// it an address from the lab pool.
    async fn service(&self, name: &str, local: bool, on: &[&str]) -> Ipv4Addr {
        self.create_service(name, local, on, None).await;
        let api: Api<Service> = Api::namespaced(self.world.client.clone(), "default");
        eventually(Duration::from_secs(15), "an ingress address", || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.ok()?;
                frontdesk_provider_baremetal::speaker::view::ingress_ips(&s)
                    .into_iter()
                    .find_map(|i| match i {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    })
            }
        })
        .await
    }

    /// The sandbox is single-stack IPv4, so an IPv6 address comes from elsewhere: a Service of
    /// another loadBalancerClass (our controller leaves it alone) whose status we write. The
    /// speaker announces any ingress address inside a pool, whoever wrote it.
    async fn service_v6(&self, name: &str, ip: Ipv6Addr) {
        self.create_service(name, false, &NODES, Some("example.com/elsewhere"))
            .await;
        let api: Api<Service> = Api::namespaced(self.world.client.clone(), "default");
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }

    async fn create_service(&self, name: &str, local: bool, on: &[&str], class: Option<&str>) {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": class,
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                     "ports": [{"name": "p", "protocol": "TCP", "port": 8080}]}
        }))
        .unwrap();
        let api: Api<Service> = Api::namespaced(self.world.client.clone(), "default");
        api.create(&PostParams::default(), &svc).await.unwrap();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-test"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": "speaker-test"}},
            "addressType": "IPv4",
            "endpoints": endpoints(on),
            "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let slices: Api<EndpointSlice> = Api::namespaced(self.world.client.clone(), "default");
        slices.create(&PostParams::default(), &slice).await.unwrap();
    }

    async fn move_endpoints(&self, name: &str, on: &[&str]) {
        let slices: Api<EndpointSlice> = Api::namespaced(self.world.client.clone(), "default");
        slices
            .patch(
                &format!("{name}-test"),
                &PatchParams::default(),
                &Patch::Merge(json!({"endpoints": endpoints(on)})),
            )
            .await
            .unwrap();
    }

    /// Wait until `arping` gets replies, all from `want`'s MAC (or none at all for `None`),
    /// then check that a few more probes agree.
    async fn wait_answerer(&self, ip: Ipv4Addr, want: Option<&str>, within: Duration) {
        let want_mac = want.map(|n| self.mac(n));
        let started = Instant::now();
        loop {
            let macs = self.arping(ip, 2).await;
            let ok = match &want_mac {
                Some(m) => !macs.is_empty() && macs.iter().all(|x| x == m),
                None => macs.is_empty(),
            };
            if ok {
                break;
            }
            assert!(
                started.elapsed() < within,
                "{ip}: wanted replies from {want:?} ({want_mac:?}), last probe {macs:?}\n{}",
                self.logs()
            );
        }
        let macs = self.arping(ip, 4).await;
        match &want_mac {
            Some(m) => assert!(
                macs.len() >= 3 && macs.iter().all(|x| x == m),
                "{ip}: exactly one MAC ({m}) must answer, got {macs:?}"
            ),
            None => assert!(macs.is_empty(), "{ip}: nobody may answer, got {macs:?}"),
        }
    }

    async fn arping(&self, ip: Ipv4Addr, count: u32) -> Vec<String> {
        let lab = &self.lab;
        tokio::task::block_in_place(|| lab.arping(ip, count, Duration::from_millis(100))).unwrap()
    }

    async fn label_node(&self, node: &str, value: Option<&str>) {
        let nodes: Api<Node> = Api::all(self.world.client.clone());
        let patch = json!({"metadata": {"labels": {
            "node.kubernetes.io/exclude-from-external-load-balancers": value}}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    async fn down(mut self) {
        if let Some(c) = self.controller.take() {
            c.stop().await;
        }
        let Net { lab, world, .. } = self;
        drop(lab);
        world.shutdown().await;
    }
}

fn endpoints(on: &[&str]) -> serde_json::Value {
    json!(
        on.iter()
            .enumerate()
            .map(
                |(i, n)| json!({"addresses": [format!("10.99.0.{}", i + 1)], "nodeName": n,
                                 "conditions": {"ready": true}})
            )
            .collect::<Vec<_>>()
    )
}

/// Wait until the running probe has recent replies from `mac`.
async fn probe_sees(probe: &lab::Prober, mac: &str) {
    let mac = mac.to_string();
    eventually(Duration::from_secs(5), "the probe to see replies", || {
        let n = probe
            .replies()
            .iter()
            .filter(|(t, m)| *m == mac && t.elapsed() < Duration::from_millis(300))
            .count();
        async move { (n >= 3).then_some(()) }
    })
    .await;
}

fn winner(ip: IpAddr, among: &[&str]) -> String {
    election::winner(among.iter().copied(), ip)
        .unwrap()
        .to_string()
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elected_node_alone_answers_arp_ndp_and_tcp() {
    let net = Net::up().await;
    let v4 = net.service("web", false, &NODES).await;
    let w4 = winner(v4.into(), &NODES);
    net.wait_answerer(v4, Some(&w4), Duration::from_secs(20))
        .await;

    // IPv6: ndisc6 sees one advertisement, from the IPv6 address's winner.
    let v6: Ipv6Addr = net
        .lab
        .pool_v6()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    net.service_v6("web6", v6).await;
    let w6 = winner(v6.into(), &NODES);
    let want6 = net.mac(&w6);
    let got6 = eventually(Duration::from_secs(10), "ndisc6 answer", || {
        let lab = &net.lab;
        let macs = tokio::task::block_in_place(|| lab.ndisc(v6)).unwrap();
        async move { (!macs.is_empty()).then_some(macs) }
    })
    .await;
    assert!(
        got6.iter().all(|m| *m == want6),
        "{v6}: {got6:?}, want {want6}"
    );

    // TCP reaches a listener in the winner's namespace (the address is local there only by a
    // route on lo; arp_ignore keeps the kernel from answering ARP for it).
    let ns = net.lab.nodes[Net::index(&w4)].ns.clone();
    net.lab
        .exec(
            &ns,
            &[
                "ip",
                "route",
                "add",
                "local",
                &format!("{v4}/32"),
                "dev",
                "lo",
            ],
        )
        .unwrap();
    let script = format!(
        "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', 8080)); s.listen(8)\nwhile True:\n c,_=s.accept(); c.sendall(b'{w4}\\n'); c.close()\n"
    );
    net.lab
        .spawn(&ns, &["python3", "-c", &script], None)
        .expect("python3 for the TCP listener");
    let client = net.lab.client.ns.clone();
    let reply = eventually(Duration::from_secs(10), "TCP reply from the winner", || {
        let cmd = format!("exec 3<>/dev/tcp/{v4}/8080 && head -n1 <&3");
        let lab = &net.lab;
        let out = tokio::task::block_in_place(|| {
            lab.exec(&client, &["timeout", "2", "bash", "-c", &cmd])
        });
        async move { out.ok().filter(|s| !s.trim().is_empty()) }
    })
    .await;
    assert_eq!(reply.trim(), w4);

    // Condition + Event name the winner; only it wrote them.
    let svcs: Api<Service> = Api::namespaced(net.world.client.clone(), "default");
    let svc = svcs.get("web").await.unwrap();
    let conds = svc.status.unwrap().conditions.unwrap_or_default();
    let c = conds
        .iter()
        .find(|c| c.type_ == "L2Announced")
        .expect("L2Announced condition");
    assert!(
        c.message.contains(&w4) || c.message.contains(&w6),
        "{}",
        c.message
    );
    let events: Api<Event> = Api::namespaced(net.world.client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("nodeAssigned")
                && e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("frontdesk-speaker")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&w4) || m.contains(&w6))),
        "nodeAssigned event from frontdesk-speaker"
    );

    // Metrics on the winner: requests answered, gratuitous sent, addresses owned.
    let url = format!("http://{}:9120/metrics", net.lab.nodes[Net::index(&w4)].ip4);
    assert!(metric(&url, "frontdesk_layer2_requests_received_total").await >= 1.0);
    assert!(metric(&url, "frontdesk_layer2_responses_sent_total").await >= 1.0);
    assert!(metric(&url, "frontdesk_layer2_gratuitous_sent_total").await >= 2.0);
    assert!(metric(&url, "frontdesk_speaker_addresses_owned").await >= 1.0);
    net.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_follow_exclusion_local_endpoints_and_release() {
    let net = Net::up().await;
    let v4 = net.service("web", false, &NODES).await;
    let first = winner(v4.into(), &NODES);
    net.wait_answerer(v4, Some(&first), Duration::from_secs(20))
        .await;

    // Excluded by label: another node takes over; unlabelled: back. Both hand-overs are
    // between live speakers: the new owner waits until the old one is silent.
    let probe = net.lab.probe(v4, Duration::from_millis(10)).unwrap();
    probe_sees(&probe, &net.mac(&first)).await;
    let labelled = Instant::now();
    net.label_node(&first, Some("true")).await;
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != first).collect();
    let second = winner(v4.into(), &rest);
    net.wait_answerer(v4, Some(&second), Duration::from_secs(10))
        .await;
    probe_sees(&probe, &net.mac(&second)).await;
    let unlabelled = Instant::now();
    net.label_node(&first, None).await;
    net.wait_answerer(v4, Some(&first), Duration::from_secs(10))
        .await;
    let replies = probe.replies();
    for (from, since, until) in [
        (&first, labelled, Some(unlabelled)),
        (&second, unlabelled, None),
    ] {
        let f = lab::failover_between(&replies, &net.mac(from), since, until).expect("a hand-over");
        assert_eq!(f.overlap, 0, "two MACs answered: {f:?}");
        assert!(f.gap < Duration::from_secs(1), "hand-over took {:?}", f.gap);
    }
    drop(probe);

    // Carrier lost on the winner: it releases its Lease, another node answers at once;
    // plugged back, the address returns.
    net.lab.set_carrier(Net::index(&first), false).unwrap();
    net.wait_answerer(v4, Some(&winner(v4.into(), &rest)), Duration::from_secs(5))
        .await;
    net.lab.set_carrier(Net::index(&first), true).unwrap();
    net.wait_answerer(v4, Some(&first), Duration::from_secs(10))
        .await;

    // An advertisement naming an interface no node has: nobody is elected, nobody answers.
    // Naming the one they have: back to the winner.
    let ads: Api<L2Advertisement> = Api::all(net.world.client.clone());
    for (ifaces, want) in [(["eth1"], None), (["eth0"], Some(first.as_str()))] {
        ads.patch(
            "lab",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"interfaces": ifaces}})),
        )
        .await
        .unwrap();
        net.wait_answerer(v4, want, Duration::from_secs(10)).await;
    }

    // Local: only a node with a ready endpoint; the announcement follows the endpoint.
    let l4 = net.service("local", true, &["node-2"]).await;
    net.wait_answerer(l4, Some("node-2"), Duration::from_secs(20))
        .await;
    net.move_endpoints("local", &["node-3"]).await;
    net.wait_answerer(l4, Some("node-3"), Duration::from_secs(10))
        .await;
    // No endpoint at all: nobody answers, and the node that announced says why.
    net.move_endpoints("local", &[]).await;
    net.wait_answerer(l4, None, Duration::from_secs(10)).await;
    let svcs: Api<Service> = Api::namespaced(net.world.client.clone(), "default");
    eventually(
        Duration::from_secs(10),
        "condition False/NoEndpoints",
        || {
            let svcs = svcs.clone();
            async move {
                let s = svcs.get("local").await.ok()?;
                let conds = s.status?.conditions?;
                conds
                    .iter()
                    .any(|c| {
                        c.type_ == "L2Announced" && c.status == "False" && c.reason == "NoEndpoints"
                    })
                    .then_some(())
            }
        },
    )
    .await;

    // Released: the Service goes, so does the answer.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    net.wait_answerer(v4, None, Duration::from_secs(15)).await;
    net.down().await;
}

#[test]
fn bad_speaker_flags_fail_naming_the_flag() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_frontdesk"))
            .arg("speaker")
            .args(args)
            .env_remove("NODE_NAME")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = run(&[
        "--node-name",
        "n1",
        "--lease-renew-ms",
        "300",
        "--lease-expiry-ms",
        "400",
    ]);
    assert!(
        !ok && err.contains("--lease-expiry-ms") && err.contains("twice the renew period"),
        "{err}"
    );
    let (ok, err) = run(&["--node-name", "", "--kubeconfig", "/nonexistent"]);
    assert!(!ok && err.contains("--node-name"), "{err}");
    let (ok, err) = run(&[]);
    assert!(!ok && err.contains("--node-name"), "{err}");
}

mod failover;
