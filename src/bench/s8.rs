//! S8 footprint: the controller watching 10,000 Services and 5,000 Nodes.
//!
//! Method: the sandbox is populated first (Services created through the API, Nodes by the
//! simulator), the process settles, then the controller starts; its memory is the growth of
//! this process's resident set (VmRSS, sampled every 100 ms) over the level before it
//! started, peak and steady. That delta also holds what the sandbox allocates to serve the
//! controller's lists and watches, so it over-states the controller slightly.

use std::time::{Duration, Instant};

use frontdesk_core::config::ControllerConfig;

use super::BenchArgs;
use super::report::{Check, CloudCalls, Report, progress, rss_kib};
use super::world::{BenchProfile, World};

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let n = args.services_or(10_000);
    let nodes = args.nodes_or(5_000);
    let world = World::start(profile, nodes).await?;
    progress(&format!("populating {n} ClusterIP Services"));
    world.create_services(0..n, false).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let faults = world.cloud.generic.faults().clone();
    let seq = faults.next_seq() - 1;
    let (before, _) = rss_kib();
    let kube_before = world.kube_calls.snapshot();

    progress("starting the controller");
    let start = Instant::now();
    let controller = world
        .start_controller(ControllerConfig::default(), false)
        .await?;
    let mut peak = before;
    let mut synced_s = None;
    let mut last = world.kube_calls.snapshot();
    let mut stable_since = Instant::now();
    // Run until the controller has looked at every Service and been quiet for 5 s.
    while start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_kib().0);
        let now = world.kube_calls.snapshot();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if now.since(&kube_before).reads >= n as u64 && synced_s.is_none() {
            synced_s = Some(start.elapsed().as_secs_f64());
        }
        if synced_s.is_some() && stable_since.elapsed() > Duration::from_secs(5) {
            break;
        }
        if start.elapsed().as_secs().is_multiple_of(10) && start.elapsed().subsec_millis() < 100 {
            progress(&format!(
                "{:.0} s: {} Kubernetes reads, RSS {} MiB",
                start.elapsed().as_secs_f64(),
                now.since(&kube_before).reads,
                rss_kib().0 / 1024
            ));
        }
    }
    progress(&format!(
        "controller looked at every Service after {:.1} s; reading memory",
        synced_s.unwrap_or(f64::NAN)
    ));
    let (steady, _) = rss_kib();
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));
    let kube = world.kube_calls.snapshot().since(&kube_before);
    controller.stop().await;

    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak_delta = mib(peak.saturating_sub(before));
    let steady_delta = mib(steady.saturating_sub(before));
    let mut report = Report {
        scenario: "s8".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!(
            "controller memory while watching {n} Services and {nodes} Nodes; time until it had reconciled every Service"
        ),
        measured_s: synced_s,
        bound_s: None,
        bound_how: "no time bound; reference estimate for retained data ~10-15 MB (cloud-api-limits §10 S8)".into(),
        cloud,
        kube,
        memory_mib: peak_delta,
        memory_method: "peak VmRSS growth of the process after the controller started, sandbox populated before (sampled every 100 ms)".into(),
        ..Report::default()
    };
    report.extra("RSS before the controller (MiB)", mib(before));
    report.extra("controller RSS delta, steady (MiB)", steady_delta);
    report.extra("controller RSS delta, peak (MiB)", peak_delta);
    report.checks.push(Check::new(
        "S8 controller memory",
        "< 150 MiB",
        format!("{peak_delta:.1} MiB"),
        peak_delta < 150.0,
    ));
    report.notes.push(
        "all Services are ClusterIP (none provisions a load balancer), so the figure is the watch/cache footprint".into(),
    );
    world.shutdown().await;
    Ok(report)
}
