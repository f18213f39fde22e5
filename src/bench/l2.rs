//! `frontdesk bench l2-failover`: how long an address is unanswered when its announcing
//! speaker dies (SIGKILL: the others wait for its Lease to expire) or stops (SIGTERM: it
//! releases its Lease first).
//!
//! Builds the namespace lab (3 node namespaces + a client on a bridge; needs root, iproute2,
//! arping), the sandbox API on the lab address, one speaker per node namespace (this binary),
//! and one announced address. A continuous `arping` from the client (one request per 10 ms)
//! records every reply; failover = last reply from the old MAC to the first from the new one.
//! After each trial the stopped speaker is restarted and the lab settles (the address may move
//! back: that hand-over is measured too).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use frontdesk_provider_baremetal::crd::{
    IPAddressPool, IPAddressPoolSpec, L2Advertisement, L2AdvertisementSpec,
};
use frontdesk_provider_baremetal::speaker::lab::{self, Failover, Lab};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::BenchArgs;
use super::report::progress;

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
const PROBE_INTERVAL: Duration = Duration::from_millis(10);

struct Trial {
    kind: &'static str,
    failover: Option<Failover>,
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    lab::require_tools()?;
    let trials = args.trials.max(1);
    let lab = Lab::create(NODES.len()).context("building the namespace lab (needs root)")?;
    let cloud = MockCloud::start(MockCloudConfig {
        kube_listen: (lab.host_ip(), 0).into(),
        nodes: NODES.len(),
        ..MockCloudConfig::default()
    })
    .await?;
    let kubeconfig =
        std::env::temp_dir().join(format!("frontdesk-l2-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, cloud.kubeconfig_yaml())?;
    let result = measure(&lab, &kubeconfig, trials).await;
    let _ = std::fs::remove_file(&kubeconfig);
    drop(lab);
    cloud.shutdown().await;
    let results = result?;
    print(&results, args.json)
}

async fn measure(lab: &Lab, kubeconfig: &Path, trials: usize) -> anyhow::Result<Vec<Trial>> {
    let client = crate::run::kube_client(Some(&kubeconfig.to_path_buf())).await?;
    frontdesk_provider_baremetal::install(&client, false).await?;
    let pools: Api<IPAddressPool> = Api::all(client.clone());
    let spec = IPAddressPoolSpec {
        addresses: vec![lab.pool_v4()],
        auto_assign: true,
        ..Default::default()
    };
    pools
        .create(&PostParams::default(), &IPAddressPool::new("lab", spec))
        .await?;
    let ads: Api<L2Advertisement> = Api::all(client.clone());
    let ad = L2Advertisement::new("lab", L2AdvertisementSpec::default());
    ads.create(&PostParams::default(), &ad).await?;
    // The address is written straight into the status (a Service of another class), so the
    // bench measures the speakers alone, not the allocator.
    let vip: Ipv4Addr = lab
        .pool_v4()
        .split('-')
        .next()
        .unwrap_or_default()
        .parse()?;
    announce_service(&client, vip).await?;

    let exe = std::env::current_exe()?;
    let mut pids: Vec<Option<u32>> = (0..NODES.len())
        .map(|i| start_speaker(lab, &exe, kubeconfig, i).map(Some))
        .collect::<anyhow::Result<_>>()?;
    let probe = lab.probe(vip, PROBE_INTERVAL)?;
    let mut out = Vec::new();
    for kind in ["KILL", "TERM"] {
        for t in 0..trials {
            let owner = settled_owner(&probe, Duration::from_secs(15)).await?;
            let Some(i) = lab.nodes.iter().position(|n| n.mac == owner) else {
                bail!("{owner} answers, but it is no lab node");
            };
            progress(&format!("{kind} {} ({}/{trials})", NODES[i], t + 1));
            let since = Instant::now();
            if let Some(pid) = pids[i].take() {
                lab.signal(pid, kind)?;
                tokio::task::block_in_place(|| lab.wait(pid));
            }
            let deadline = since + Duration::from_secs(10);
            let failover = loop {
                if let Some(f) = lab::failover(&probe.replies(), &owner, since) {
                    break Some(f);
                }
                if Instant::now() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let new_owner = failover.as_ref().map(|f| f.to.clone());
            out.push(Trial { kind, failover });
            let restarted = Instant::now();
            pids[i] = Some(start_speaker(lab, &exe, kubeconfig, i)?);
            // Let the restarted speaker rejoin; the address moves back to it if it wins.
            tokio::time::sleep(Duration::from_secs(3)).await;
            if let Some(back) =
                new_owner.and_then(|n| lab::failover(&probe.replies(), &n, restarted))
            {
                out.push(Trial {
                    kind: "rejoin",
                    failover: Some(back),
                });
            }
        }
    }
    Ok(out)
}

/// The MAC answering now, once replies have come from one MAC only for a while.
async fn settled_owner(probe: &lab::Prober, within: Duration) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let replies = probe.replies();
        let recent: Vec<&String> = replies
            .iter()
            .filter(|(t, _)| t.elapsed() < Duration::from_millis(500))
            .map(|(_, m)| m)
            .collect();
        if recent.len() >= 10 && recent.iter().all(|m| *m == recent[0]) {
            return Ok(recent[0].clone());
        }
        if started.elapsed() > within {
            bail!("no single MAC answered steadily within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_speaker(lab: &Lab, exe: &Path, kubeconfig: &Path, i: usize) -> anyhow::Result<u32> {
    let exe = exe.to_string_lossy().to_string();
    let kc = kubeconfig.to_string_lossy().to_string();
    let log: PathBuf = std::env::temp_dir().join(format!(
        "frontdesk-l2-{}-{}.log",
        std::process::id(),
        NODES[i]
    ));
    let file = std::fs::File::create(&log)?;
    Ok(lab.spawn(
        &lab.nodes[i].ns,
        &[
            &exe,
            "speaker",
            "--node-name",
            NODES[i],
            "--kubeconfig",
            &kc,
            "--namespace",
            "default",
        ],
        Some(file),
    )?)
}

async fn announce_service(client: &kube::Client, vip: Ipv4Addr) -> anyhow::Result<()> {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "l2-bench", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/bench",
                 "ports": [{"name": "p", "protocol": "TCP", "port": 80}]}
    }))?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &svc).await?;
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": vip.to_string()}]}}});
    api.patch_status("l2-bench", &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "l2-bench", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "l2-bench",
                                "endpointslice.kubernetes.io/managed-by": "bench"}},
        "addressType": "IPv4",
        "endpoints": NODES.iter().enumerate().map(|(i, n)| json!({
            "addresses": [format!("10.99.0.{}", i + 1)], "nodeName": n,
            "conditions": {"ready": true}})).collect::<Vec<_>>(),
    }))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    slices.create(&PostParams::default(), &slice).await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn print(results: &[Trial], as_json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for kind in ["KILL", "TERM", "rejoin"] {
        let of: Vec<&Trial> = results.iter().filter(|t| t.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let mut gaps: Vec<f64> = of
            .iter()
            .filter_map(|t| t.failover.as_ref().map(|f| ms(f.gap)))
            .collect();
        gaps.sort_by(f64::total_cmp);
        let missed = of.iter().filter(|t| t.failover.is_none()).count();
        let overlap: usize = of
            .iter()
            .filter_map(|t| t.failover.as_ref().map(|f| f.overlap))
            .sum();
        let median = gaps.get(gaps.len() / 2).copied();
        rows.push(json!({
            "kind": match kind { "KILL" => "SIGKILL", "TERM" => "SIGTERM (graceful)", _ => "rejoin (address moves back)" },
            "trials": of.len(),
            "min_ms": gaps.first(), "median_ms": median, "max_ms": gaps.last(),
            "no_takeover": missed,
            "old_mac_after_new": overlap,
            "target_ms": match kind { "KILL" => Some(2000), "TERM" => Some(1000), _ => None },
        }));
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"scenario": "l2-failover", "probe_interval_ms": ms(PROBE_INTERVAL), "results": rows})
            )?
        );
        return Ok(());
    }
    println!(
        "l2-failover: last reply from the old MAC to the first from the new (arping every 10 ms)"
    );
    println!(
        "{:<30} {:>6} {:>9} {:>9} {:>9} {:>8} {:>12} {:>8}",
        "stop", "trials", "min ms", "median", "max ms", "target", "no takeover", "overlap"
    );
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
    for r in &rows {
        println!(
            "{:<30} {:>6} {:>9} {:>9} {:>9} {:>8} {:>12} {:>8}",
            r["kind"].as_str().unwrap_or_default(),
            r["trials"].to_string(),
            f(&r["min_ms"]),
            f(&r["median_ms"]),
            f(&r["max_ms"]),
            r["target_ms"]
                .as_u64()
                .map_or("-".to_string(), |t| format!("<{t}")),
            r["no_takeover"].to_string(),
            r["old_mac_after_new"].to_string(),
        );
    }
    Ok(())
}
