//! S6 bare-metal allocation at scale: the sandbox API and the controller with the baremetal
//! provider in one process, one /16 IPAddressPool, N LoadBalancer Services created at once.
//! Measured: time until every Service has an address, the controller's Kubernetes API calls by
//! verb and resource, peak RSS. Then the controller is restarted (a new provider, so an empty
//! index) and every address is compared: any changed address fails the run (exit non-zero).
//!
//! There is no cloud here, so no lower bound from a cloud profile; the Services are selector-less
//! (the sandbox's endpoint simulator would otherwise dominate the run).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use frontdesk_core::config::ControllerConfig;
use frontdesk_core::health::Health;
use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_mock_cloud::faults::Profile;
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use frontdesk_provider_baremetal::BareMetalProvider;
use frontdesk_provider_baremetal::crd::{IPAddressPool, IPAddressPoolSpec};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::BenchArgs;
use super::report::{Check, Report, peak_mib, progress};
use super::world::{KubeCount, RequestCounter, client_from, service_manifest};

const POOL: &str = "s6";
const POOL_CIDR: &str = "10.64.0.0/16";
const POOL_SIZE: usize = 1 << 16;
/// Longest wait for all addresses (debug builds at 10,000 are slow).
const ALLOCATION_LIMIT: Duration = Duration::from_secs(900);

/// Requests by "VERB resource" (LIST/GET/WATCH split by whether a name follows the resource).
#[derive(Default)]
struct Calls(Mutex<BTreeMap<String, u64>>);

impl Calls {
    fn count<B>(&self, req: &http::Request<B>) {
        let segs: Vec<&str> = req
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        // /api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]] or /apis/G/V[/namespaces/NS]/PLURAL[...]
        let base = if segs.first() == Some(&"api") { 2 } else { 3 };
        let rest: &[&str] = segs.get(base..).unwrap_or(&[]);
        let rest = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
            &rest[2..]
        } else {
            rest
        };
        let resource = match rest {
            [plural, _, sub, ..] => format!("{plural}/{sub}"),
            [plural, ..] => (*plural).to_string(),
            [] => "discovery".to_string(),
        };
        let named = rest.len() > 1;
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let verb = match req.method().as_str() {
            "GET" if watch => "WATCH",
            "GET" if named => "GET",
            "GET" => "LIST",
            other => other,
        };
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(format!("{verb} {resource}")).or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn summary(by: &BTreeMap<String, u64>) -> KubeCount {
    let mut c = KubeCount::default();
    for (k, n) in by {
        if k.starts_with("WATCH ") {
            c.watches += n;
        } else if k.starts_with("GET ") || k.starts_with("LIST ") {
            c.reads += n;
        } else {
            c.writes += n;
        }
    }
    c
}

/// A sandbox client that counts its requests into `calls`.
async fn client(kubeconfig: &str, calls: Option<Arc<Calls>>) -> anyhow::Result<Client> {
    let counter = calls.map(|c| -> RequestCounter { Arc::new(move |req| c.count(req)) });
    client_from(kubeconfig, counter).await
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    calls: Arc<Calls>,
}

impl Running {
    async fn start(kubeconfig: &str) -> anyhow::Result<Self> {
        let calls = Arc::new(Calls::default());
        let client = client(kubeconfig, Some(calls.clone())).await?;
        let mut config = ControllerConfig::default();
        config.leader_election.enabled = false;
        config.metrics_addr = ([127, 0, 0, 1], 0).into();
        // The drift check would re-ensure every Service over its interval and the sweep list
        // every claim: steady background work that is not what S6 measures (stated in the
        // report). The restart check compares addresses instead.
        config.drift_interval_seconds = 0.0;
        config.sweep_interval_seconds = 0.0;
        let metrics = Arc::new(Metrics::new());
        // The Kubernetes API is the only API here; no cloud budget applies.
        let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
        let provider = BareMetalProvider::new(client.clone(), ctx);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let health = Arc::new(Health::default());
        let task = tokio::spawn(async move {
            if let Err(e) =
                frontdesk_core::controller::run(client, provider, config, metrics, health, s).await
            {
                eprintln!("bench: controller stopped: {e}");
            }
        });
        Ok(Self { stop, task, calls })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

fn first_ip(svc: &Value) -> Option<String> {
    svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
}

/// name -> first address of every Service that has one (read from the store: not counted).
fn addresses(cloud: &MockCloud) -> BTreeMap<String, String> {
    let (items, _) = cloud.sandbox.store().list("", "services", Some("default"));
    items
        .iter()
        .filter_map(|s| Some((s["metadata"]["name"].as_str()?.to_string(), first_ip(s)?)))
        .collect()
}

fn claim_count(cloud: &MockCloud) -> usize {
    cloud
        .sandbox
        .store()
        .list("frontdesk.dev", "ipaddressclaims", None)
        .0
        .len()
}

async fn wait_all(cloud: &MockCloud, n: usize, start: Instant) -> anyhow::Result<()> {
    let mut last = Instant::now();
    loop {
        let have = addresses(cloud).len();
        if have >= n {
            return Ok(());
        }
        if start.elapsed() > ALLOCATION_LIMIT {
            bail!(
                "only {have} of {n} Services had an address after {} s",
                ALLOCATION_LIMIT.as_secs()
            );
        }
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            progress(&format!(
                "{have}/{n} Services have an address ({:.0} s)",
                start.elapsed().as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the controller has read at least `gets` Services (each reconcile reads its
/// Service live; a restarted controller that trusts a Service writes nothing) and its writes
/// have not moved for `quiet` (its reads never stop: the pool status pass lists pools and
/// claims every 2 s).
async fn settle(calls: &Calls, gets: u64, quiet: Duration, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit
        && calls.snapshot().get("GET services").copied().unwrap_or(0) < gets
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut last = summary(&calls.snapshot()).writes;
    let mut since = Instant::now();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = summary(&calls.snapshot()).writes;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let n = args.services_or(10_000);
    if n > POOL_SIZE {
        bail!("--services {n}: the /16 pool has {POOL_SIZE} addresses; ask for at most that");
    }
    let nodes = args.nodes_or(3);
    progress(&format!("starting the sandbox API ({nodes} nodes)"));
    let cloud = MockCloud::start(MockCloudConfig {
        nodes,
        profile: Profile::None,
        ..MockCloudConfig::default()
    })
    .await
    .context("starting the sandbox")?;
    let kubeconfig = cloud.kubeconfig_yaml();
    let setup = client(&kubeconfig, None).await?;
    frontdesk_provider_baremetal::install(&setup, false)
        .await
        .context("installing the bare-metal CRDs")?;
    let pools: Api<IPAddressPool> = Api::all(setup.clone());
    let pool = IPAddressPool::new(
        POOL,
        IPAddressPoolSpec {
            addresses: vec![POOL_CIDR.to_string()],
            auto_assign: true,
            ..Default::default()
        },
    );
    pools
        .create(&PostParams::default(), &pool)
        .await
        .context("creating the pool")?;

    let first = Running::start(&kubeconfig).await?;
    // Let the controller list and start watching before the burst.
    settle(
        &first.calls,
        0,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await;
    progress(&format!("creating {n} LoadBalancer Services at once"));
    let start = Instant::now();
    let api: Api<Service> = Api::namespaced(setup.clone(), "default");
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut manifest = service_manifest(i, true);
                // Bare metal needs no NodePorts, and 10,000 Services would exhaust the
                // NodePort range (2,768 ports) long before the /16.
                manifest["spec"]["allocateLoadBalancerNodePorts"] = false.into();
                let svc: Service = serde_json::from_value(manifest)?;
                api.create(&PostParams::default(), &svc)
                    .await
                    .with_context(|| format!("creating Service svc-{i}"))?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        bail!("creating Services failed: {e:#}");
    }
    let created_s = start.elapsed().as_secs_f64();
    wait_all(&cloud, n, start).await?;
    let measured = start.elapsed().as_secs_f64();
    progress(&format!(
        "all {n} Services have an address after {measured:.1} s"
    ));
    let at_done = first.calls.snapshot();
    let before = addresses(&cloud);
    let distinct: std::collections::BTreeSet<&String> = before.values().collect();
    let claims = claim_count(&cloud);
    first.stop().await;

    progress("restarting the controller (new provider, empty index)");
    let restart = Instant::now();
    let second = Running::start(&kubeconfig).await?;
    settle(
        &second.calls,
        n as u64,
        Duration::from_secs(3),
        Duration::from_secs(300),
    )
    .await;
    let restart_s = restart.elapsed().as_secs_f64();
    let after = addresses(&cloud);
    let changed = before
        .iter()
        .filter(|(name, ip)| after.get(*name) != Some(*ip))
        .count();
    let restart_calls = second.calls.snapshot();
    second.stop().await;

    let mut report = Report {
        scenario: "s6".into(),
        profile: "none (no cloud)".into(),
        services: n,
        nodes,
        measured_what: format!(
            "{n} LoadBalancer Services created at once, baremetal provider, one {POOL_CIDR} pool: time until all have an address"
        ),
        measured_s: Some(measured),
        bound_how: "no cloud: no lower bound from a profile".into(),
        kube: summary(&at_done),
        memory_mib: peak_mib(),
        memory_method: "VmHWM of the whole process (sandbox API + controller)".into(),
        ..Report::default()
    };
    report.extra("creating the Services took (s)", created_s);
    report.extra("addresses per second", n as f64 / measured.max(1e-9));
    let per_service = summary(&at_done);
    report.extra(
        "Kubernetes calls per Service (reads+writes)",
        (per_service.reads + per_service.writes) as f64 / n as f64,
    );
    for (k, v) in &at_done {
        report.extra(&format!("  {k}"), *v);
    }
    report.extra("distinct addresses", distinct.len() as u64);
    report.extra("IPAddressClaims", claims as u64);
    report.extra(
        "restart: until every Service was read and writes stopped for 3 s (s)",
        restart_s,
    );
    let restart_sum = summary(&restart_calls);
    report.extra(
        "restart: Kubernetes calls (read/write/watch)",
        format!(
            "{}/{}/{}",
            restart_sum.reads, restart_sum.writes, restart_sum.watches
        ),
    );
    for (k, v) in &restart_calls {
        report.extra(&format!("  restart {k}"), *v);
    }
    report.extra("addresses changed by the restart", changed as u64);
    report.notes.push(
        "drift check and orphan sweep off in both controllers (background work, not allocation)"
            .into(),
    );
    report.notes.push(
        "Services are selector-less: the sandbox's endpoint simulator is O(Services x slices) per change"
            .into(),
    );
    report.checks.push(Check::new(
        "every Service got a distinct address, one claim each",
        &format!("{n} distinct, {n} claims"),
        format!("{} distinct, {claims} claims", distinct.len()),
        distinct.len() == n && claims == n,
    ));
    report.checks.push(Check::new(
        "addresses changed by the controller restart",
        "0",
        changed.to_string(),
        changed == 0,
    ));
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.clone())
        .collect();
    report.print(args.json)?;
    if tokio::time::timeout(Duration::from_secs(10), cloud.shutdown())
        .await
        .is_err()
    {
        progress("the sandbox did not stop within 10 s; leaving it to the process exit");
    }
    if !failed.is_empty() {
        bail!("S6 failed: {}", failed.join("; "));
    }
    Ok(())
}
