//! S8 footprint: the controller watching 10,000 Services (2,000 of them LoadBalancer, a
//! quarter of those with externalTrafficPolicy Local and an EndpointSlice each) and 5,000
//! Nodes, steady, during forced relists, and idle (cloud-api-limits §10, row S8).
//!
//! Method: the sandbox is populated first (the LoadBalancer Services converged by an
//! unthrottled in-process controller, like S4's backlog, then stopped; ClusterIP Services and
//! EndpointSlices created through the API; Nodes by the simulator). The controller under test
//! then runs as a child process (`frontdesk run --provider mock`, this same binary), so its
//! resident set is its own: VmRSS and VmHWM of the child from /proc. Its reconciles are read
//! from its /metrics.
//!
//! Phases: (1) initial sync until every Service was reconciled and 5 s passed quietly: steady
//! RSS. (2) `RELISTS` times, the sandbox expires every watch as an API server does after a
//! compaction (open streams end, the resume is answered 410 Gone inside the stream), which
//! forces kube-runtime to relist Services and Nodes; VmRSS is sampled every 50 ms until the
//! relist is complete (both resources watched again from a post-expiry version, counted by
//! the sandbox) and the controller has been quiet for 3 s. (3) An idle window with nothing
//! changing: utime+stime of the child from /proc/<pid>/stat gives its CPU share of one core.

mod child;
mod phases;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use frontdesk_core::config::ControllerConfig;
use frontdesk_mock_cloud::faults::Profile;
use frontdesk_mock_cloud::kube::store::Store;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::process::Child;

use super::BenchArgs;
use super::report::{Check, CloudCalls, Report, progress};
use super::world::{BenchProfile, World, service_manifest};
use child::{TempDir, free_addr, mib, proc_rss, spawn_controller};
use phases::{Idle, Relist, Sweep, Watched, first_sweep, idle, relist, watch_child};

/// How long the controller may take to look at every Service.
const SYNC_LIMIT: Duration = Duration::from_secs(300);
/// Quiet time after the last reconcile before the steady reading.
const QUIET: Duration = Duration::from_secs(5);
/// Forced relists, to show whether memory grows from one to the next.
const RELISTS: usize = 3;
/// RSS sampling period during a relist.
const SAMPLE: Duration = Duration::from_millis(50);
/// A relist has settled when no reconcile happened for this long.
const SETTLE: Duration = Duration::from_secs(3);
/// How long one relist may take to settle.
const RELIST_LIMIT: Duration = Duration::from_secs(180);
/// How long to wait for the first orphan sweep (its first pass is about a minute in).
const SWEEP_LIMIT: Duration = Duration::from_secs(150);
/// The idle window for the CPU reading.
const IDLE: Duration = Duration::from_secs(30);
/// The check's limit for the controller (issue 8).
const LIMIT_MIB: f64 = 150.0;

/// Who the bench's EndpointSlices say manages them, so the sandbox's slice controller leaves
/// them alone (it only touches its own and selector Services').
const SLICE_MANAGER: &str = "bench.frontdesk.dev";

/// What S8 puts in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Population {
    services: usize,
    load_balancers: usize,
    /// LoadBalancer Services with externalTrafficPolicy Local (one EndpointSlice each).
    local: usize,
}

impl Population {
    /// The reference's mix for `services` Services: a fifth are LoadBalancer (2,000 of
    /// 10,000), a quarter of those externalTrafficPolicy Local.
    fn of(services: usize) -> Self {
        let load_balancers = services / 5;
        Self {
            services,
            load_balancers,
            local: load_balancers.div_ceil(4),
        }
    }

    /// LoadBalancer Services are svc-0.. and every 4th of them is Local.
    fn is_local(i: usize) -> bool {
        i.is_multiple_of(4)
    }
}

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let pop = Population::of(args.services_or(10_000));
    let n = pop.services;
    let nodes = args.nodes_or(5_000);
    let world = World::start(profile, nodes).await?;
    populate(&world, pop).await?;
    let faults = world.cloud.generic.faults().clone();
    let seq = faults.next_seq() - 1;
    let store = world.cloud.sandbox.store();

    let dir = TempDir::new()?;
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(&kubeconfig, world.cloud.kubeconfig_yaml())
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let watch_only = dir.0.join("watch-only.yaml");
    std::fs::write(
        &watch_only,
        "driftIntervalSeconds: 0\nsweepIntervalSeconds: 0\n",
    )
    .with_context(|| format!("writing {}", watch_only.display()))?;
    let cloud_url = world.cloud.cloud_url();

    progress("controller A (default config): initial sync, first orphan sweep, idle");
    let mut a = Running::start(&kubeconfig, &cloud_url, None)?;
    let defaults = defaults_phases(&mut a, n).await;
    let a_hwm = a.stop().await;
    let defaults = defaults?;
    progress("controller B (drift check and orphan sweep off): initial sync, forced relists, idle");
    let mut b = Running::start(&kubeconfig, &cloud_url, Some(&watch_only))?;
    let relists = relist_phases(&mut b, &store, n).await;
    let b_hwm = b.stop().await;
    let relists = relists?;
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));
    let report = build_report(
        profile,
        pop,
        nodes,
        &defaults,
        &relists,
        a_hwm.max(b_hwm),
        cloud,
    );
    world.shutdown().await;
    Ok(report)
}

/// One controller child.
struct Running {
    child: Child,
    pid: u32,
    metrics: std::net::SocketAddr,
    start: Instant,
}

impl Running {
    fn start(
        kubeconfig: &std::path::Path,
        cloud_url: &str,
        config: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let metrics = free_addr()?;
        let start = Instant::now();
        let child = spawn_controller(kubeconfig, cloud_url, metrics, config)?;
        let pid = child
            .id()
            .context("the controller child exited at once (no pid)")?;
        Ok(Self {
            child,
            pid,
            metrics,
            start,
        })
    }

    /// Stops the child; its VmHWM read just before.
    async fn stop(mut self) -> u64 {
        let hwm = proc_rss(self.pid).map_or(0, |r| r.1);
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        hwm
    }

    /// After the initial sync: (VmRSS, VmHWM).
    async fn sync(&mut self, n: usize) -> anyhow::Result<(Watched, u64, u64)> {
        let sync = watch_child(&mut self.child, self.pid, self.metrics, n, self.start).await?;
        let (rss, hwm) = proc_rss(self.pid).context("reading the child's memory")?;
        progress(&format!(
            "steady: controller RSS {:.1} MiB (initial sync peak {:.1} MiB)",
            mib(rss),
            mib(hwm)
        ));
        Ok((sync, rss, hwm))
    }
}

/// Controller A, as deployed: its memory includes the drift check and the orphan sweep.
struct Defaults {
    sync: Watched,
    steady_kib: u64,
    sync_hwm_kib: u64,
    sweep: Option<Sweep>,
    idle: Idle,
}

async fn defaults_phases(c: &mut Running, n: usize) -> anyhow::Result<Defaults> {
    let (sync, steady_kib, sync_hwm_kib) = c.sync(n).await?;
    progress("waiting for the first orphan sweep");
    let sweep = first_sweep(&mut c.child, c.pid, c.metrics).await?;
    if let Some(s) = &sweep {
        progress(&format!(
            "orphan sweep: {} pages; RSS peak {:.1} MiB, after {:.1} MiB",
            s.pages,
            mib(s.peak_kib),
            mib(s.after_kib)
        ));
    }
    progress(&format!("idle: {} s with nothing changing", IDLE.as_secs()));
    let idle = idle(&mut c.child, c.pid, c.metrics).await?;
    Ok(Defaults {
        sync,
        steady_kib,
        sync_hwm_kib,
        sweep,
        idle,
    })
}

/// Controller B, watches only: the relists' own cost, with nothing else in the window.
struct Relists {
    steady_kib: u64,
    sync_hwm_kib: u64,
    relists: Vec<Relist>,
    /// VmHWM after the last relist settled.
    relists_hwm_kib: u64,
    idle: Idle,
}

async fn relist_phases(c: &mut Running, store: &Store, n: usize) -> anyhow::Result<Relists> {
    let (_, steady_kib, sync_hwm_kib) = c.sync(n).await?;
    let mut relists = Vec::new();
    for i in 1..=RELISTS {
        progress(&format!(
            "relist {i}/{RELISTS}: expiring every watch in the sandbox"
        ));
        let r = relist(&mut c.child, c.pid, c.metrics, store).await?;
        progress(&format!(
            "relist {i}: RSS {:.1} -> peak {:.1} -> {:.1} MiB; relisted after {:.2} s, settled after {:.2} s, {} reconciles",
            mib(r.before_kib),
            mib(r.peak_kib),
            mib(r.after_kib),
            r.relisted_s,
            r.settled_s,
            r.reconciles
        ));
        relists.push(r);
    }
    let relists_hwm_kib = proc_rss(c.pid).map_or(0, |r| r.1);
    progress(&format!("idle: {} s with nothing changing", IDLE.as_secs()));
    let idle = idle(&mut c.child, c.pid, c.metrics).await?;
    Ok(Relists {
        steady_kib,
        sync_hwm_kib,
        relists,
        relists_hwm_kib,
        idle,
    })
}

fn idle_row(i: &Idle) -> String {
    format!(
        "{:.2} % ({:.2} CPU s in {:.1} s; {} reconciles, {} drift checks)",
        i.cpu_percent, i.cpu_s, i.wall_s, i.reconciles, i.drift_checks
    )
}

fn build_report(
    profile: BenchProfile,
    pop: Population,
    nodes: usize,
    a: &Defaults,
    b: &Relists,
    hwm_kib: u64,
    cloud: CloudCalls,
) -> Report {
    let n = pop.services;
    let sync_peak = mib(a.sync_hwm_kib.max(a.sync.peak_rss_kib));
    let sampled = b.relists.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    // The kernel's peak covers spikes between samples; it only belongs to the relists when
    // it rose during them (otherwise it is still the initial sync's).
    let relist_peak = if b.relists_hwm_kib > b.sync_hwm_kib {
        mib(sampled.max(b.relists_hwm_kib))
    } else {
        mib(sampled)
    };
    let mut report = Report {
        scenario: "s8".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!(
            "controller memory watching {n} Services ({} LoadBalancer, {} of them externalTrafficPolicy Local with an EndpointSlice) and {nodes} Nodes: steady, first orphan sweep, {RELISTS} forced relists, idle CPU; time until it had reconciled every Service",
            pop.load_balancers, pop.local
        ),
        measured_s: Some(a.sync.synced_s),
        bound_s: None,
        bound_how: "no time bound; reference estimate for retained data ~10-15 MB (cloud-api-limits §10 S8)".into(),
        cloud,
        memory_mib: mib(hwm_kib),
        memory_method: "VmHWM (kernel peak RSS) of the controller child processes (`frontdesk run`), the higher of A and B, separate from the sandbox and mock cloud".into(),
        ..Report::default()
    };
    report.extra(
        "A: RSS after the initial sync (MiB)",
        round1(mib(a.steady_kib)),
    );
    report.extra("A: initial sync peak (MiB)", round1(sync_peak));
    report.extra("A: reconciles in the initial sync", a.sync.reconciles);
    match &a.sweep {
        Some(s) => report.extra(
            "A: first orphan sweep: pages, peak/after RSS",
            format!(
                "{} pages, last {:.1} s after the sync; {:.1} / {:.1} MiB",
                s.pages,
                s.done_s,
                mib(s.peak_kib),
                mib(s.after_kib)
            ),
        ),
        None => report.extra("A: first orphan sweep", "none within the wait"),
    }
    report.extra("A: idle CPU (% of one core)", idle_row(&a.idle));
    report.extra("A: RSS after idle (MiB)", round1(mib(a.idle.rss_kib)));
    report.extra(
        "B: RSS after the initial sync (MiB)",
        round1(mib(b.steady_kib)),
    );
    for (i, r) in b.relists.iter().enumerate() {
        let i = i + 1;
        report.extra(
            &format!("B: relist {i}: RSS before/peak/after (MiB)"),
            format!(
                "{:.1} / {:.1} / {:.1}",
                mib(r.before_kib),
                mib(r.peak_kib),
                mib(r.after_kib)
            ),
        );
        report.extra(
            &format!("B: relist {i}: relisted / settled (s)"),
            format!("{:.2} / {:.2}", r.relisted_s, r.settled_s),
        );
        report.extra(
            &format!("B: relist {i}: 410s Services/Nodes, reconciles"),
            format!("{}/{}, {}", r.gone.0, r.gone.1, r.reconciles),
        );
    }
    report.extra("B: relist peak (MiB)", round1(relist_peak));
    report.extra("B: idle CPU (% of one core)", idle_row(&b.idle));
    report.checks.push(Check::new(
        "S8 controller memory, initial sync peak",
        "< 150 MiB",
        format!("{sync_peak:.1} MiB"),
        sync_peak < LIMIT_MIB,
    ));
    report.checks.push(Check::new(
        "S8 controller memory, peak during relists",
        "< 150 MiB",
        format!("{relist_peak:.1} MiB"),
        relist_peak < LIMIT_MIB,
    ));
    let whole = mib(hwm_kib);
    report.checks.push(Check::new(
        "S8 controller memory, whole run with drift check and orphan sweep",
        "< 150 MiB",
        format!("{whole:.1} MiB"),
        whole < LIMIT_MIB,
    ));
    let relisted = b
        .relists
        .iter()
        .filter(|r| r.gone.0 > 0 && r.gone.1 > 0)
        .count();
    report.checks.push(Check::new(
        "S8 every forced relist relisted Services and Nodes",
        "410 answered and a fresh watch, both kinds, each time",
        format!("{relisted} of {RELISTS}"),
        relisted == RELISTS && b.relists.len() == RELISTS,
    ));
    if let (Some(first), Some(last)) = (b.relists.first(), b.relists.last()) {
        let growth = mib(last.after_kib) - mib(first.after_kib);
        report.checks.push(Check::new(
            "S8 no growth from relist to relist (RSS after the last vs the first)",
            "< +10 %",
            format!("{growth:+.1} MiB"),
            last.after_kib as f64 <= first.after_kib as f64 * 1.1,
        ));
    }
    report.notes.push(format!(
        "population: svc-0..svc-{} LoadBalancer (converged before the controllers under test start, so they trust them without cloud calls), every 4th externalTrafficPolicy Local with one EndpointSlice of 3 endpoints; the rest ClusterIP without a selector",
        pop.load_balancers.saturating_sub(1)
    ));
    report.notes.push(
        "A runs the default config; B the same binary with driftIntervalSeconds and sweepIntervalSeconds 0, so a relist's window holds nothing but the relist (the sweep's cloud listing otherwise lands in it about a minute after start)".into(),
    );
    report.notes.push(
        "the controller does not watch EndpointSlices (eTP=Local uses the healthCheckNodePort), so the slices are in the cluster but not in its cache".into(),
    );
    report.notes.push(
        "a relist: the sandbox ends every open watch and answers resumes with an ERROR 410 (Expired) event, as after an etcd compaction; 'relisted' is when both Services and Nodes were watched again from a post-expiry version (counted by the sandbox), 'settled' when the controller had also been quiet for 3 s; kube-runtime re-reconciles every Service after a relist".into(),
    );
    report.notes.push(
        "Kubernetes API calls are not counted here: the controllers are separate processes, outside the bench's counting client".into(),
    );
    report
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The LoadBalancer Services converged by an unthrottled in-process controller (stopped
/// before the measured one starts), their EndpointSlices, then the ClusterIP Services.
async fn populate(world: &World, pop: Population) -> anyhow::Result<()> {
    progress(&format!(
        "setup: converging {} LoadBalancer Services ({} externalTrafficPolicy Local) with an unthrottled controller",
        pop.load_balancers, pop.local
    ));
    let faults = world.cloud.generic.faults();
    faults.set_profile(Profile::None);
    let setup = world
        .start_controller(ControllerConfig::default(), true)
        .await?;
    let lbs = create_all(world, 0..pop.load_balancers, |i| {
        let mut m = service_manifest(i, true);
        if Population::is_local(i) {
            m["spec"]["externalTrafficPolicy"] = json!("Local");
        }
        Ok(("Service", m))
    })
    .await;
    let converged = match lbs {
        Ok(()) => {
            world
                .wait_addressed(pop.load_balancers, Duration::from_secs(600))
                .await
        }
        Err(e) => Err(e),
    };
    setup.stop().await;
    converged?;
    faults
        .set_config(world.profile.faults())
        .context("restoring the profile")?;
    let node_names: Vec<String> = world
        .cloud
        .sandbox
        .store()
        .list("", "nodes", None)
        .0
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .take(64)
        .collect();
    progress(&format!(
        "setup: {} EndpointSlices for the Local Services",
        pop.local
    ));
    let locals: Vec<usize> = (0..pop.load_balancers)
        .filter(|i| Population::is_local(*i))
        .collect();
    create_all_of(world, locals, |i| {
        Ok(("EndpointSlice", endpoint_slice(i, &node_names)))
    })
    .await?;
    progress(&format!(
        "setup: {} ClusterIP Services (no selector)",
        pop.services - pop.load_balancers
    ));
    create_all(world, pop.load_balancers..pop.services, |i| {
        let mut m = service_manifest(i, false);
        // Without a selector the sandbox's slice controller leaves them alone: with one, its
        // passes walk every Service of the namespace, and 8,000 of them keep it busy.
        if let Some(spec) = m["spec"].as_object_mut() {
            spec.remove("selector");
        }
        Ok(("Service", m))
    })
    .await
}

/// One EndpointSlice of 3 ready endpoints for `svc-{i}`, not managed by the sandbox.
fn endpoint_slice(i: usize, nodes: &[String]) -> Value {
    let endpoints: Vec<Value> = (0..3)
        .map(|k| {
            let n = i * 3 + k;
            let mut ep = json!({
                "addresses": [format!("10.250.{}.{}", (n >> 8) & 0xff, n & 0xff)],
                "conditions": {"ready": true, "serving": true, "terminating": false},
            });
            if !nodes.is_empty() {
                ep["nodeName"] = json!(nodes[n % nodes.len()]);
            }
            ep
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("svc-{i}-bench"), "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": format!("svc-{i}"),
                "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER,
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

type Manifest = anyhow::Result<(&'static str, Value)>;

async fn create_all(
    world: &World,
    range: std::ops::Range<usize>,
    make: impl Fn(usize) -> Manifest,
) -> anyhow::Result<()> {
    create_all_of(world, range.collect(), make).await
}

/// Creates one object per index through the API, 32 in flight; fails with the first error.
async fn create_all_of(
    world: &World,
    indices: Vec<usize>,
    make: impl Fn(usize) -> Manifest,
) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(world.client.clone(), "default");
    let make = &make;
    let failed: Vec<anyhow::Error> = futures::stream::iter(indices)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                let (kind, manifest) = make(i)?;
                let pp = PostParams::default();
                let created = match kind {
                    "EndpointSlice" => slices
                        .create(&pp, &serde_json::from_value(manifest)?)
                        .await
                        .map(|_| ()),
                    _ => services
                        .create(&pp, &serde_json::from_value(manifest)?)
                        .await
                        .map(|_| ()),
                };
                created.with_context(|| format!("creating {kind} for svc-{i}"))
            }
        })
        .buffer_unordered(32)
        .filter_map(|r: anyhow::Result<()>| async move { r.err() })
        .collect()
        .await;
    if let Some(first) = failed.first() {
        bail!("{} creates failed; first: {first:#}", failed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_follows_the_reference() {
        let cases = [
            (10_000, (2_000, 500)),
            (1_000, (200, 50)),
            (7, (1, 1)),
            (0, (0, 0)),
        ];
        for (services, (lb, local)) in cases {
            let p = Population::of(services);
            assert_eq!((p.load_balancers, p.local), (lb, local), "{services}");
            let counted = (0..p.load_balancers)
                .filter(|i| Population::is_local(*i))
                .count();
            assert_eq!(counted, p.local, "{services}: is_local agrees with local");
        }
    }
}
