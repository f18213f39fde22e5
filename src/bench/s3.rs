//! S3 idle steady state: N converged LoadBalancer Services, nodes heartbeating every 10 s, no
//! spec change. Cloud calls per minute by operation; writes must be 0.
//!
//! The drift check re-reads every load balancer once per interval; the interval is compressed
//! (`--drift-interval`, default 60 s instead of 300 s) so a few minutes show several passes.
//! Expected reads: N per drift interval plus the orphan sweep's list pages.

use std::time::{Duration, Instant};

use frontdesk_core::config::ControllerConfig;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::BenchArgs;
use super::report::{Check, CloudCalls, Report, peak_mib, progress};
use super::world::{BenchProfile, World};

const HEARTBEAT: Duration = Duration::from_secs(10);

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let n = args.services_or(1_000);
    let nodes = args.nodes_or(1_000);
    let world = World::start(profile, nodes).await?;
    world.converge_backlog(n).await?;
    let faults = world.cloud.generic.faults().clone();
    let config = ControllerConfig {
        drift_interval_seconds: args.drift_interval,
        ..args.controller_config()?
    };
    let controller = world.start_controller(config, false).await?;
    super::s2::settle(&world).await;
    let seq = faults.next_seq() - 1;
    let kube_before = world.kube_calls.snapshot();

    progress(&format!(
        "watching the idle cluster for {} s (nodes heartbeat every {} s)",
        args.duration,
        HEARTBEAT.as_secs()
    ));
    let start = Instant::now();
    let node_api: Api<Node> = Api::all(world.client.clone());
    let names: Vec<String> = world
        .cloud
        .instances
        .list()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut beats = 0u64;
    while start.elapsed() < Duration::from_secs(args.duration) {
        let round = Instant::now();
        heartbeat(&node_api, &names).await;
        beats += 1;
        progress(&format!(
            "{:.0} s: {} cloud calls so far",
            start.elapsed().as_secs_f64(),
            faults.calls(Some(seq)).len()
        ));
        tokio::time::sleep(HEARTBEAT.saturating_sub(round.elapsed())).await;
    }
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));
    let kube = world.kube_calls.snapshot().since(&kube_before);
    controller.stop().await;

    let per_min = |x: u64| x as f64 / minutes;
    let expected_reads = n as f64 * 60.0 / args.drift_interval;
    let mut report = Report {
        scenario: "s3".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!(
            "{:.1} idle minutes, drift interval {} s, node heartbeats every {} s",
            minutes,
            args.drift_interval,
            HEARTBEAT.as_secs()
        ),
        measured_s: None,
        bound_s: None,
        bound_how: format!(
            "0 writes; reads ~= N x 60 / drift interval = {expected_reads:.0} per minute (drift) + sweep list pages"
        ),
        cloud,
        kube,
        memory_mib: peak_mib(),
        memory_method: "VmHWM of the whole process (sandbox API + mock cloud + controller)".into(),
        ..Report::default()
    };
    report.extra("cloud reads per minute", per_min(report.cloud.reads));
    report.extra("cloud writes per minute", per_min(report.cloud.writes));
    report.extra("Kubernetes writes per minute", per_min(report.kube.writes));
    report.extra("Kubernetes reads per minute", per_min(report.kube.reads));
    report.extra("node heartbeat rounds", beats);
    report.checks.push(Check::new(
        "S3 cloud writes",
        "0",
        report.cloud.writes.to_string(),
        report.cloud.writes == 0,
    ));
    report.checks.push(Check::new(
        "S3 Kubernetes writes",
        "0",
        report.kube.writes.to_string(),
        report.kube.writes == 0,
    ));
    world.shutdown().await;
    Ok(report)
}

/// Every node reports Ready with a fresh heartbeat, like a kubelet.
async fn heartbeat(api: &Api<Node>, names: &[String]) {
    let now = chrono_now();
    futures::stream::iter(names)
        .map(|name| {
            let patch = json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": now, "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]}});
            let api = api.clone();
            async move {
                let _ = api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

fn chrono_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
