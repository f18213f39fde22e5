//! The controller under test as a child process: starting it, and reading its memory and
//! CPU time from /proc and its reconciles from /metrics.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields count from its last ')'.
pub(super) fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// USER_HZ from `getconf CLK_TCK` (100 on every Linux the bench runs on, the fallback).
pub(super) fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0)
}

pub(super) fn spawn_controller(
    kubeconfig: &std::path::Path,
    cloud_url: &str,
    metrics_addr: std::net::SocketAddr,
    config: Option<&std::path::Path>,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the frontdesk binary")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("run");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["--provider", "mock", "--cloud-url", cloud_url])
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
pub(super) fn proc_rss(pid: u32) -> Option<(u64, u64)> {
    parse_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub(super) fn parse_rss(status: &str) -> Option<(u64, u64)> {
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
pub(super) fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// Service reconciles (`frontdesk_reconciles_total` without the drift check's, which runs
/// in the background on its own schedule and would keep a relist from ever looking quiet),
/// from the child's /metrics.
pub(super) async fn reconciles(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    Ok(service_reconciles(&scrape(addr).await?))
}

/// The drift check's reconciles (one per load balancer looked at).
pub(super) async fn drift_checks(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    let text = scrape(addr).await?;
    Ok(sum_counter(&text, RECONCILES) - service_reconciles(&text))
}

pub(super) const RECONCILES: &str = "frontdesk_reconciles_total";

/// Pages of the orphan sweep's cloud listing so far (the mock provider's ListLoadBalancers).
pub(super) async fn sweep_pages(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    const CLOUD_CALLS: &str = "frontdesk_cloud_calls_total";
    let text = scrape(addr).await?;
    let lists = text
        .lines()
        .filter(|l| l.starts_with(CLOUD_CALLS) && l.contains("operation=\"ListLoadBalancers\""))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(sum_counter(&lists, CLOUD_CALLS))
}

pub(super) fn service_reconciles(text: &str) -> u64 {
    let drift = text
        .lines()
        .filter(|l| l.starts_with(RECONCILES) && l.contains("action=\"drift\""))
        .collect::<Vec<_>>()
        .join("\n");
    sum_counter(text, RECONCILES).saturating_sub(sum_counter(&drift, RECONCILES))
}

pub(super) async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(body)
}

pub(super) fn sum_counter(text: &str, name: &str) -> u64 {
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
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> anyhow::Result<Self> {
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
        let with_drift =
            format!("{text}frontdesk_reconciles_total{{action=\"drift\",result=\"ok\"}} 647\n");
        assert_eq!(sum_counter(&with_drift, RECONCILES), 10_647);
        assert_eq!(service_reconciles(&with_drift), 10_000);
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
