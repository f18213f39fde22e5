//! S8 footprint: the controller watching 10,000 Services and 5,000 Nodes.
//!
//! Method: the sandbox is populated first (Services created through the API, Nodes by the
//! simulator). The controller then runs as a child process (`frontdesk run --provider mock`,
//! this same binary) against the sandbox and the mock cloud, so its resident set is its own:
//! VmHWM (the kernel's peak) and VmRSS of the child, sampled every 100 ms from /proc. The
//! in-process sandbox cannot inflate or hide the figure. The child's reconciles are read from
//! its /metrics; the run ends when it has reconciled every Service and then been quiet for 5 s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::BenchArgs;
use super::report::{Check, CloudCalls, Report, progress};
use super::world::{BenchProfile, World, service_manifest};

/// How long the controller may take to look at every Service.
const SYNC_LIMIT: Duration = Duration::from_secs(300);
/// Quiet time after the last reconcile before the steady reading.
const QUIET: Duration = Duration::from_secs(5);

pub async fn run(args: &BenchArgs, profile: BenchProfile) -> anyhow::Result<Report> {
    let n = args.services_or(10_000);
    let nodes = args.nodes_or(5_000);
    let world = World::start(profile, nodes).await?;
    progress(&format!("populating {n} ClusterIP Services (no selector)"));
    create_plain_services(&world, n).await?;
    let faults = world.cloud.generic.faults().clone();
    let seq = faults.next_seq() - 1;

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
    let outcome = watch_child(&mut child, pid, metrics_addr, n, start).await;
    // Read the kernel's peak before the child goes away.
    let (steady_kib, hwm_kib) = proc_rss(pid).unwrap_or((0, 0));
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let watched = outcome?;
    let cloud = CloudCalls::from_log(&faults.calls(Some(seq)));

    let mib = |kib: u64| kib as f64 / 1024.0;
    let peak = mib(hwm_kib.max(watched.peak_rss_kib));
    let mut report = Report {
        scenario: "s8".into(),
        profile: profile.name.into(),
        services: n,
        nodes,
        measured_what: format!(
            "controller memory while watching {n} Services and {nodes} Nodes; time until it had reconciled every Service"
        ),
        measured_s: Some(watched.synced_s),
        bound_s: None,
        bound_how: "no time bound; reference estimate for retained data ~10-15 MB (cloud-api-limits §10 S8)".into(),
        cloud,
        memory_mib: peak,
        memory_method: "VmHWM (kernel peak RSS) of the controller child process (`frontdesk run`), separate from the sandbox and mock cloud".into(),
        ..Report::default()
    };
    report.extra("controller RSS, steady (MiB)", mib(steady_kib));
    report.extra("controller RSS, peak (MiB)", peak);
    report.extra("reconciles by the controller", watched.reconciles);
    report.checks.push(Check::new(
        "S8 controller memory",
        "< 150 MiB",
        format!("{peak:.1} MiB"),
        peak < 150.0,
    ));
    report.notes.push(
        "all Services are ClusterIP without a selector (none provisions a load balancer, the sandbox keeps no EndpointSlices for them), so the figure is the watch/cache footprint".into(),
    );
    report.notes.push(
        "Kubernetes API calls are not counted here: the controller is a separate process, outside the bench's counting client".into(),
    );
    world.shutdown().await;
    Ok(report)
}

/// `n` ClusterIP Services without a selector, 32 creates in flight. Without a selector the
/// sandbox's EndpointSlice simulator leaves them alone: with one, each of its passes walks
/// every Service of the namespace synchronously, and its own slice writes start the next
/// pass, so at 10,000 Services it holds a worker thread for good (the stall seen before;
/// the controller never watches EndpointSlices, so they do not belong in this figure).
async fn create_plain_services(world: &World, n: usize) -> anyhow::Result<()> {
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let failed: Vec<anyhow::Error> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut manifest = service_manifest(i, false);
                if let Some(spec) = manifest["spec"].as_object_mut() {
                    spec.remove("selector");
                }
                let svc: Service = serde_json::from_value(manifest)?;
                api.create(&PostParams::default(), &svc)
                    .await
                    .with_context(|| format!("creating Service svc-{i}"))?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .filter_map(|r: anyhow::Result<()>| async move { r.err() })
        .collect()
        .await;
    if let Some(first) = failed.first() {
        bail!("{} Service creates failed; first: {first:#}", failed.len());
    }
    Ok(())
}

/// What watching the child found.
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
        if let Some(status) = child.try_wait().context("polling the controller child")? {
            bail!("the controller child exited early ({status}); its stderr is above");
        }
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
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
}
