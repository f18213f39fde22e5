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

use std::path::PathBuf;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::BenchArgs;
use super::report::{Check, CloudCalls, Report, progress};
use super::world::{BenchProfile, World, service_manifest};

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
        i % 4 == 0
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
    let metrics_addr = free_addr()?;

    progress(&format!(
        "starting the controller as a child process (metrics on {metrics_addr})"
    ));
    let start = Instant::now();
    let mut child = spawn_controller(&kubeconfig, &world.cloud.cloud_url(), metrics_addr)?;
    let pid = child
        .id()
        .context("the controller child exited at once (no pid)")?;
    let measured = measure(&mut child, pid, metrics_addr, &store, n, start).await;
    let end_hwm = proc_rss(pid).map_or(0, |r| r.1);
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let m = measured?;
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));
    let report = build_report(profile, pop, nodes, &m, end_hwm, cloud);
    world.shutdown().await;
    Ok(report)
}

/// Everything S8 measured on the child.
struct Measured {
    sync: Watched,
    steady_kib: u64,
    /// VmHWM when the steady reading was taken (the initial sync's peak).
    sync_hwm_kib: u64,
    relists: Vec<Relist>,
    /// VmHWM after the last relist settled.
    relists_hwm_kib: u64,
    idle: Idle,
}

async fn measure(
    child: &mut Child,
    pid: u32,
    metrics_addr: std::net::SocketAddr,
    store: &Store,
    n: usize,
    start: Instant,
) -> anyhow::Result<Measured> {
    let sync = watch_child(child, pid, metrics_addr, n, start).await?;
    let (steady_kib, sync_hwm_kib) = proc_rss(pid).context("reading the child's memory")?;
    progress(&format!(
        "steady: controller RSS {:.1} MiB (initial sync peak {:.1} MiB)",
        mib(steady_kib),
        mib(sync_hwm_kib)
    ));
    let mut relists = Vec::new();
    for i in 1..=RELISTS {
        progress(&format!(
            "relist {i}/{RELISTS}: expiring every watch in the sandbox"
        ));
        let r = relist(child, pid, metrics_addr, store).await?;
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
    let relists_hwm_kib = proc_rss(pid).map_or(0, |r| r.1);
    progress(&format!("idle: {} s with nothing changing", IDLE.as_secs()));
    let idle = idle(child, pid, metrics_addr).await?;
    Ok(Measured {
        sync,
        steady_kib,
        sync_hwm_kib,
        relists,
        relists_hwm_kib,
        idle,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn build_report(
    profile: BenchProfile,
    pop: Population,
    nodes: usize,
    m: &Measured,
    end_hwm_kib: u64,
    cloud: CloudCalls,
) -> Report {
    let n = pop.services;
    let sync_peak = mib(m.sync_hwm_kib.max(m.sync.peak_rss_kib));
    let sampled = m.relists.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    // The kernel's peak covers spikes between samples; it only belongs to the relists when
    // it rose during them (otherwise it is still the initial sync's).
    let relist_peak = if m.relists_hwm_kib > m.sync_hwm_kib {
        mib(sampled.max(m.relists_hwm_kib))
    } else {
        mib(sampled)
    };
    let mut report = Report {
        scenario: "s8".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!(
            "controller memory watching {n} Services ({} LoadBalancer, {} of them externalTrafficPolicy Local with an EndpointSlice) and {nodes} Nodes: steady, during {RELISTS} forced relists, idle CPU; time until it had reconciled every Service",
            pop.load_balancers, pop.local
        ),
        measured_s: Some(m.sync.synced_s),
        bound_s: None,
        bound_how: "no time bound; reference estimate for retained data ~10-15 MB (cloud-api-limits §10 S8)".into(),
        cloud,
        memory_mib: mib(end_hwm_kib.max(m.relists_hwm_kib)),
        memory_method: "VmHWM (kernel peak RSS) of the controller child process (`frontdesk run`) over the whole run, separate from the sandbox and mock cloud".into(),
        ..Report::default()
    };
    report.extra("controller RSS, steady (MiB)", round1(mib(m.steady_kib)));
    report.extra("controller RSS, initial sync peak (MiB)", round1(sync_peak));
    report.extra("reconciles in the initial sync", m.sync.reconciles);
    for (i, r) in m.relists.iter().enumerate() {
        let i = i + 1;
        report.extra(
            &format!("relist {i}: RSS before/peak/after (MiB)"),
            format!(
                "{:.1} / {:.1} / {:.1}",
                mib(r.before_kib),
                mib(r.peak_kib),
                mib(r.after_kib)
            ),
        );
        report.extra(
            &format!("relist {i}: relisted / settled (s)"),
            format!("{:.2} / {:.2}", r.relisted_s, r.settled_s),
        );
        report.extra(
            &format!("relist {i}: 410s Services/Nodes, reconciles"),
            format!("{}/{}, {}", r.gone.0, r.gone.1, r.reconciles),
        );
    }
    report.extra("controller RSS, relist peak (MiB)", round1(relist_peak));
    report.extra(
        "controller idle CPU (% of one core)",
        round2(m.idle.cpu_percent),
    );
    report.extra(
        "idle window: seconds / CPU seconds / reconciles",
        format!(
            "{:.1} / {:.2} / {}",
            m.idle.wall_s, m.idle.cpu_s, m.idle.reconciles
        ),
    );
    report.extra(
        "controller RSS, after idle (MiB)",
        round1(mib(m.idle.rss_kib)),
    );
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
    let relisted = m.relists.iter().all(|r| r.gone.0 > 0 && r.gone.1 > 0);
    report.checks.push(Check::new(
        "S8 every forced relist relisted Services and Nodes",
        "410 answered and a fresh watch, both kinds, each time",
        format!(
            "{} of {RELISTS}",
            m.relists
                .iter()
                .filter(|r| r.gone.0 > 0 && r.gone.1 > 0)
                .count()
        ),
        relisted && m.relists.len() == RELISTS,
    ));
    if let (Some(first), Some(last)) = (m.relists.first(), m.relists.last()) {
        let growth = mib(last.after_kib) - mib(first.after_kib);
        report.checks.push(Check::new(
            "S8 no growth from relist to relist (RSS after the last vs the first)",
            "< +10 %",
            format!("{growth:+.1} MiB"),
            last.after_kib as f64 <= first.after_kib as f64 * 1.1,
        ));
    }
    report.notes.push(format!(
        "population: svc-0..svc-{} LoadBalancer (converged before the controller under test starts, so it trusts them without cloud calls), every 4th externalTrafficPolicy Local with one EndpointSlice of 3 endpoints; the rest ClusterIP without a selector",
        pop.load_balancers.saturating_sub(1)
    ));
    report.notes.push(
        "the controller does not watch EndpointSlices (eTP=Local uses the healthCheckNodePort), so the slices are in the cluster but not in its cache".into(),
    );
    report.notes.push(
        "a relist: the sandbox ends every open watch and answers resumes with an ERROR 410 (Expired) event, as after an etcd compaction; 'relisted' is when both Services and Nodes were watched again from a post-expiry version (counted by the sandbox), 'settled' when the controller had also been quiet for 3 s; kube-runtime re-reconciles every Service after a relist".into(),
    );
    report.notes.push(
        "Kubernetes API calls are not counted here: the controller is a separate process, outside the bench's counting client".into(),
    );
    report
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
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

/// What watching the child's initial sync found.
struct Watched {
    synced_s: f64,
    reconciles: u64,
    peak_rss_kib: u64,
}

async fn watch_child(
    child: &mut Child,
    pid: u32,
    metrics_addr: std::net::SocketAddr,
    n: usize,
    start: Instant,
) -> anyhow::Result<Watched> {
    let mut peak = 0;
    let mut synced_s = None;
    let mut last_count = 0;
    let mut last_change = Instant::now();
    let mut last_scrape = Instant::now();
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive(child)?;
        if let Some((rss, hwm)) = proc_rss(pid) {
            peak = peak.max(rss).max(hwm);
        }
        if last_scrape.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_scrape = Instant::now();
        // The metrics server may not listen yet (the controller lists Nodes first).
        let count = reconciles(metrics_addr).await.unwrap_or(last_count);
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        }
        if synced_s.is_none() && count >= n as u64 {
            synced_s = Some(start.elapsed().as_secs_f64());
            progress(&format!(
                "the controller reconciled every Service after {:.1} s",
                start.elapsed().as_secs_f64()
            ));
        }
        if let Some(synced_s) = synced_s
            && last_change.elapsed() >= QUIET
        {
            return Ok(Watched {
                synced_s,
                reconciles: count,
                peak_rss_kib: peak,
            });
        }
        if start.elapsed() > SYNC_LIMIT {
            bail!(
                "the controller reconciled only {count} of {n} Services in {} s",
                SYNC_LIMIT.as_secs()
            );
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            progress(&format!(
                "{:.0} s: {count} reconciles, controller RSS {} MiB (peak {} MiB)",
                start.elapsed().as_secs_f64(),
                proc_rss(pid).map_or(0, |r| r.0) / 1024,
                peak / 1024
            ));
        }
    }
}

fn alive(child: &mut Child) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait().context("polling the controller child")? {
        bail!("the controller child exited early ({status}); its stderr is above");
    }
    Ok(())
}

/// One forced relist, measured.
struct Relist {
    before_kib: u64,
    /// Highest VmRSS sampled from the expiry until settled.
    peak_kib: u64,
    after_kib: u64,
    /// From the expiry until both Services and Nodes were watched again after a relist.
    relisted_s: f64,
    /// Until the controller had also been quiet for `SETTLE`.
    settled_s: f64,
    reconciles: u64,
    /// 410s the sandbox answered (Services, Nodes).
    gone: (u64, u64),
}

async fn relist(
    child: &mut Child,
    pid: u32,
    metrics_addr: std::net::SocketAddr,
    store: &Store,
) -> anyhow::Result<Relist> {
    let stats = || {
        (
            store.watch_stats("", "services"),
            store.watch_stats("", "nodes"),
        )
    };
    let (svc0, node0) = stats();
    let before_kib = proc_rss(pid).context("reading the child's memory")?.0;
    let rec0 = reconciles(metrics_addr).await?;
    let t0 = Instant::now();
    store.expire_watches();
    let mut peak_kib = before_kib;
    let mut relisted: Option<Duration> = None;
    let mut last_count = rec0;
    let mut last_change = t0;
    let mut last_scrape = t0;
    loop {
        tokio::time::sleep(SAMPLE).await;
        alive(child)?;
        if let Some((rss, _)) = proc_rss(pid) {
            peak_kib = peak_kib.max(rss);
        }
        if relisted.is_none() {
            let (svc, node) = stats();
            if svc.resumed_after_expiry > svc0.resumed_after_expiry
                && node.resumed_after_expiry > node0.resumed_after_expiry
            {
                relisted = Some(t0.elapsed());
            }
        }
        if last_scrape.elapsed() >= Duration::from_millis(250) {
            last_scrape = Instant::now();
            let count = reconciles(metrics_addr).await.unwrap_or(last_count);
            if count != last_count {
                last_count = count;
                last_change = Instant::now();
            }
        }
        if let Some(r) = relisted
            && last_change.elapsed() >= SETTLE
            && t0.elapsed() >= r + SETTLE
        {
            let (svc, node) = stats();
            return Ok(Relist {
                before_kib,
                peak_kib,
                after_kib: proc_rss(pid).map_or(0, |r| r.0),
                relisted_s: r.as_secs_f64(),
                settled_s: (last_change.max(t0 + r) - t0).as_secs_f64(),
                reconciles: last_count - rec0,
                gone: (svc.gone - svc0.gone, node.gone - node0.gone),
            });
        }
        if t0.elapsed() > RELIST_LIMIT {
            let (svc, node) = stats();
            bail!(
                "the relist did not settle within {} s (watch starts after the expiry: Services {:?}, Nodes {:?})",
                RELIST_LIMIT.as_secs(),
                (
                    svc.gone - svc0.gone,
                    svc.resumed_after_expiry - svc0.resumed_after_expiry
                ),
                (
                    node.gone - node0.gone,
                    node.resumed_after_expiry - node0.resumed_after_expiry
                ),
            );
        }
    }
}

/// The idle window's reading.
struct Idle {
    wall_s: f64,
    cpu_s: f64,
    cpu_percent: f64,
    reconciles: u64,
    rss_kib: u64,
}

async fn idle(
    child: &mut Child,
    pid: u32,
    metrics_addr: std::net::SocketAddr,
) -> anyhow::Result<Idle> {
    let hz = clock_ticks_per_second();
    let cpu = |pid: u32| -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .context("reading the child's /proc/<pid>/stat")?;
        cpu_ticks(&stat).context("parsing the child's /proc/<pid>/stat")
    };
    let rec0 = reconciles(metrics_addr).await?;
    let (t0, c0) = (Instant::now(), cpu(pid)?);
    while t0.elapsed() < IDLE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        alive(child)?;
    }
    let (wall, c1) = (t0.elapsed().as_secs_f64(), cpu(pid)?);
    let cpu_s = (c1 - c0) as f64 / hz;
    Ok(Idle {
        wall_s: wall,
        cpu_s,
        cpu_percent: 100.0 * cpu_s / wall,
        reconciles: reconciles(metrics_addr).await? - rec0,
        rss_kib: proc_rss(pid).map_or(0, |r| r.0),
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields count from its last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// USER_HZ from `getconf CLK_TCK` (100 on every Linux the bench runs on, the fallback).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0)
}

fn spawn_controller(
    kubeconfig: &std::path::Path,
    cloud_url: &str,
    metrics_addr: std::net::SocketAddr,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the frontdesk binary")?;
    Command::new(&exe)
        .arg("run")
        .args(["--provider", "mock", "--cloud-url", cloud_url])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--leader-elect", "false"])
        .args(["--metrics-addr", &metrics_addr.to_string()])
        .env("FRONTDESK_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} run", exe.display()))
}

/// (VmRSS, VmHWM) of a process in KiB; `None` once it is gone.
fn proc_rss(pid: u32) -> Option<(u64, u64)> {
    parse_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_rss(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A loopback address nobody listens on now (the child binds it right after).
fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// Sum of `frontdesk_reconciles_total` over every label set, from the child's /metrics.
async fn reconciles(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(sum_counter(&body, "frontdesk_reconciles_total"))
}

fn sum_counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("frontdesk-bench-s8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_counter_family() {
        let text = "# HELP frontdesk_reconciles Reconciles\n\
            frontdesk_reconciles_total{action=\"cleanup\",result=\"ok\"} 9000\n\
            frontdesk_reconciles_total{action=\"apply\",result=\"ok\"} 1000\n\
            frontdesk_reconcile_errors_total{action=\"apply\",result=\"x\"} 7\n";
        assert_eq!(sum_counter(text, "frontdesk_reconciles_total"), 10_000);
        assert_eq!(sum_counter("", "frontdesk_reconciles_total"), 0);
    }

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

    #[test]
    fn reads_cpu_ticks_and_memory() {
        let cases = [
            (
                "4242 (frontdesk) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 12 0 100 0 0",
                Some(325),
            ),
            // A command name with spaces and a ')' must not shift the fields.
            (
                "7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0",
                Some(7),
            ),
            ("7 (short) R 1", None),
            ("garbage", None),
        ];
        for (stat, want) in cases {
            assert_eq!(cpu_ticks(stat), want, "{stat}");
        }
        let status = "Name:\tfrontdesk\nVmHWM:\t  70000 kB\nVmRSS:\t  65000 kB\n";
        assert_eq!(parse_rss(status), Some((65_000, 70_000)));
        assert_eq!(parse_rss("Name:\tx\n"), None);
    }
}
