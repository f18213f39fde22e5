//! S4 restart with a large backlog: N converged LoadBalancer Services among 5N Services (the
//! reference's 2000 of 10000), the controller restarts, one new LoadBalancer Service arrives
//! 1 s later; time until it has an address.
//!
//! Bound: the new Service's own critical path (its provider calls one after another at the
//! profile's median latency); restart work must not stand in front of it. Leader election is
//! off in the bench (one process), so no lease takeover time is included.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::BenchArgs;
use super::report::{Check, CloudCalls, Limits, Report, peak_mib, progress};
use super::world::{BenchProfile, World};

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let n = args.services_or(1_000);
    let nodes = args.nodes_or(1_000);
    let world = World::start(profile, nodes).await?;
    world.converge_backlog(n).await?;
    progress(&format!("setup: creating {} ClusterIP Services", 4 * n));
    world.create_services(n..5 * n, false).await?;
    let faults = world.cloud.generic.faults().clone();
    let seq = faults.next_seq() - 1;
    let kube_before = world.kube_calls.snapshot();

    progress("restarting the controller");
    let restart = Instant::now();
    let controller = world
        .start_controller(args.controller_config()?, false)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let new_index = 5 * n;
    let new_name = format!("svc-{new_index}");
    progress(&format!("creating {new_name} 1 s after the restart"));
    let start = Instant::now();
    world
        .create_services(new_index..new_index + 1, true)
        .await?;
    while !world.has_address(&new_name) {
        if start.elapsed() > Duration::from_secs(300) {
            bail!("{new_name} had no address after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let measured = start.elapsed().as_secs_f64();
    let restart_to_new = restart.elapsed().as_secs_f64();
    let at_address = CloudCalls::from_log(&faults.calls(Some(seq)));
    // Whatever the restart still does in its first seconds is counted too.
    super::s2::settle(&world).await;
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));
    let kube = world.kube_calls.snapshot().since(&kube_before);
    let window = restart.elapsed().as_secs_f64();
    controller.stop().await;

    let limits = Limits::of(&profile.faults());
    // The new Service's own calls: 1 read + 2 writes with the mock provider, measured as
    // everything the cloud saw for it.
    let key = format!("default/{new_name}");
    let lb_name = world
        .cloud
        .generic
        .cloud()
        .all()
        .into_iter()
        .find(|lb| lb.tags.get(frontdesk_core::naming::TAG_SERVICE) == Some(&key))
        .map(|lb| lb.name)
        .unwrap_or_default();
    let own = faults
        .calls(Some(seq))
        .iter()
        .filter(|c| c.target == lb_name && c.status != 429)
        .count()
        .max(1);
    let (bound, how) = limits.bound(0.0, 0.0, own as f64);
    let mut report = Report {
        scenario: "s4".into(),
        profile: profile.name.into(),
        services: 5 * n,
        nodes,
        measured_what: format!(
            "restart with {n} converged LoadBalancer Services among {} Services; create_to_address of one new Service created 1 s after the restart",
            5 * n
        ),
        measured_s: Some(measured),
        bound_s: Some(bound),
        bound_how: format!("the new Service's own critical path: {how}"),
        cloud,
        kube,
        memory_mib: peak_mib(),
        memory_method: "VmHWM of the whole process (sandbox API + mock cloud + controller)".into(),
        ..Report::default()
    };
    report.extra("restart to new Service's address (s)", restart_to_new);
    report.extra(
        "cloud calls before the new Service had its address",
        at_address.reads + at_address.writes + at_address.throttled,
    );
    report.extra("cloud/Kubernetes calls counted over (s)", window);
    report.extra("the new Service's own cloud calls", own as u64);
    report.checks.push(Check::new(
        "S4 new Service create_to_address",
        "< 20 s",
        format!("{measured:.2} s"),
        measured < 20.0,
    ));
    world.shutdown().await;
    Ok(report)
}
