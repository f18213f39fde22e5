//! The measured phases on the child: initial sync, one forced relist, the idle window.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use frontdesk_mock_cloud::kube::store::Store;
use tokio::process::Child;

use super::child::{
    clock_ticks_per_second, cpu_ticks, drift_checks, proc_rss, reconciles, sweep_pages,
};
use super::{IDLE, QUIET, RELIST_LIMIT, SAMPLE, SETTLE, SWEEP_LIMIT, SYNC_LIMIT};
use crate::bench::report::progress;

/// What watching the child's initial sync found.
pub(super) struct Watched {
    pub(super) synced_s: f64,
    pub(super) reconciles: u64,
    pub(super) peak_rss_kib: u64,
}

pub(super) async fn watch_child(
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

pub(super) fn alive(child: &mut Child) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait().context("polling the controller child")? {
        bail!("the controller child exited early ({status}); its stderr is above");
    }
    Ok(())
}

/// One forced relist, measured.
pub(super) struct Relist {
    pub(super) before_kib: u64,
    /// Highest VmRSS sampled from the expiry until settled.
    pub(super) peak_kib: u64,
    pub(super) after_kib: u64,
    /// From the expiry until both Services and Nodes were watched again after a relist.
    pub(super) relisted_s: f64,
    /// Until the controller had also been quiet for `SETTLE`.
    pub(super) settled_s: f64,
    pub(super) reconciles: u64,
    /// 410s the sandbox answered (Services, Nodes).
    pub(super) gone: (u64, u64),
}

pub(super) async fn relist(
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
                reconciles: last_count.saturating_sub(rec0),
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
pub(super) struct Idle {
    pub(super) wall_s: f64,
    pub(super) cpu_s: f64,
    pub(super) cpu_percent: f64,
    pub(super) reconciles: u64,
    pub(super) drift_checks: u64,
    pub(super) rss_kib: u64,
}

pub(super) async fn idle(
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
    let drift0 = drift_checks(metrics_addr).await?;
    let (t0, c0) = (Instant::now(), cpu(pid)?);
    while t0.elapsed() < IDLE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        alive(child)?;
    }
    let (wall, c1) = (t0.elapsed().as_secs_f64(), cpu(pid)?);
    let cpu_s = c1.saturating_sub(c0) as f64 / hz;
    Ok(Idle {
        wall_s: wall,
        cpu_s,
        cpu_percent: 100.0 * cpu_s / wall,
        reconciles: reconciles(metrics_addr).await?.saturating_sub(rec0),
        drift_checks: drift_checks(metrics_addr).await?.saturating_sub(drift0),
        rss_kib: proc_rss(pid).map_or(0, |r| r.0),
    })
}

/// The controller's first orphan sweep (about a minute after start, it lists every load
/// balancer of the cluster from the cloud), until its page count has been still for `SETTLE`.
pub(super) struct Sweep {
    pub(super) pages: u64,
    /// From the wait's start until the last page.
    pub(super) done_s: f64,
    pub(super) peak_kib: u64,
    pub(super) after_kib: u64,
}

/// `None` when no sweep came within `SWEEP_LIMIT`.
pub(super) async fn first_sweep(
    child: &mut Child,
    pid: u32,
    metrics_addr: std::net::SocketAddr,
) -> anyhow::Result<Option<Sweep>> {
    let t0 = Instant::now();
    let (mut pages, mut last_change, mut peak_kib) = (0, t0, 0);
    loop {
        tokio::time::sleep(SAMPLE).await;
        alive(child)?;
        if let Some((rss, _)) = proc_rss(pid) {
            peak_kib = peak_kib.max(rss);
        }
        let now = sweep_pages(metrics_addr).await.unwrap_or(pages);
        if now != pages {
            pages = now;
            last_change = Instant::now();
        }
        if pages > 0 && last_change.elapsed() >= SETTLE {
            return Ok(Some(Sweep {
                pages,
                done_s: (last_change - t0).as_secs_f64(),
                peak_kib,
                after_kib: proc_rss(pid).map_or(0, |r| r.0),
            }));
        }
        if t0.elapsed() > SWEEP_LIMIT {
            return Ok(None);
        }
    }
}
