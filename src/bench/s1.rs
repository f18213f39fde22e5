//! S1 burst create: N LoadBalancer Services at once; time until every one has an address.
//!
//! Bound (cloud-api-limits §10): every Service needs its provider's writes and reads; with
//! the mock provider that is 2 writes (create, add backends) + 1 read (GET 404) per new
//! Service, so the write bucket binds: (2N − burst) / refill.

use std::time::{Duration, Instant};

use super::BenchArgs;
use super::report::{Check, CloudCalls, Limits, Report, peak_mib, progress};
use super::world::{BenchProfile, World};

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let n = args.services_or(1_000);
    let nodes = args.nodes_or(10);
    let world = World::start(profile, nodes).await?;
    let faults = world.faults().clone();
    let controller = world
        .start_controller(args.controller_config()?, false)
        .await?;
    // Let the controller's caches sync so the measurement starts from a running controller.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seq = faults.next_seq() - 1;
    let kube_before = world.kube_calls.snapshot();

    progress(&format!("creating {n} LoadBalancer Services at once"));
    let start = Instant::now();
    world.create_services(0..n, true).await?;
    let created_s = start.elapsed().as_secs_f64();
    world
        .wait_addressed(n, Duration::from_secs(60 + 4 * n as u64))
        .await?;
    let measured = start.elapsed().as_secs_f64();
    // Let the last reconciles finish their trailing writes (events) before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = faults.calls(Some(seq));
    let cloud = CloudCalls::from_log(&log);
    let kube = world.kube_calls.snapshot().since(&kube_before);
    controller.stop().await;

    let limits = Limits::of(&profile.faults());
    let per = |x: u64| x as f64 / n.max(1) as f64;
    // The provider's cost per Service, measured; the bound uses it (not a typed-in number).
    let writes_per = per(cloud.writes);
    let reads_per = per(cloud.reads);
    let chain = writes_per + reads_per;
    let (bound, how) = if profile.is_aws() {
        // AWS charges each action to its own buckets (CreateLoadBalancer: 10 burst, 0.2/s).
        Limits::bucket_bound(&profile.faults(), &log)
    } else {
        limits.bound(cloud.writes as f64, cloud.reads as f64, chain)
    };
    let mut report = Report {
        scenario: "s1".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!("time from the first create until all {n} Services have an address"),
        measured_s: Some(measured),
        bound_s: Some(bound),
        bound_how: how,
        cloud,
        kube,
        memory_mib: peak_mib(),
        memory_method: "VmHWM of the whole process (sandbox API + mock cloud + controller)".into(),
        ..Report::default()
    };
    report.extra("cloud writes per Service", writes_per);
    report.extra("cloud reads per Service", reads_per);
    report.extra("Kubernetes writes per Service", per(kube.writes));
    report.extra("Kubernetes reads per Service", per(kube.reads));
    report.extra("creating the Services took (s)", created_s);
    let throttled_pct = 100.0 * report.cloud.throttled as f64
        / (report.cloud.reads + report.cloud.writes + report.cloud.throttled).max(1) as f64;
    report.extra("throttled calls (%)", throttled_pct);
    if profile.is_aws() {
        report.notes.push(
            "profile aws: the AWS provider against the AWS front with AWS's per-action buckets; \
             the hostname is published while the NLB is still provisioning, as upstream does"
                .into(),
        );
    } else {
        report.notes.push(format!(
        "the mock provider needs {writes_per:.2} writes + {reads_per:.2} reads per new Service (create, add backends; GET 404); the bound is what the profile's limits allow those calls (see computed as)"
    ));
    }
    if profile.name == "generic" {
        if let Some(eff) = report.efficiency() {
            report.checks.push(Check::new(
                "S1 efficiency",
                ">= 0.9",
                format!("{eff:.3}"),
                eff >= 0.9,
            ));
        }
        report.checks.push(Check::new(
            "S1 throttled calls",
            "<= 2 %",
            format!("{throttled_pct:.2} %"),
            throttled_pct <= 2.0,
        ));
    }
    world.shutdown().await;
    Ok(report)
}
