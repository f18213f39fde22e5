//! Shared test plumbing: start the fakes, get clients, run kubectl, wait for conditions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_core::config::ControllerConfig;
use frontdesk_core::health::{self, Health};
use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::{LoadBalancerProvider, ProviderContext};
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One sandbox world per test: cluster, cloud, a temp dir with its kubeconfig.
pub struct World {
    pub cloud: MockCloud,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
}

impl World {
    pub async fn start(nodes: usize) -> World {
        Self::start_with(MockCloudConfig {
            nodes,
            ..MockCloudConfig::default()
        })
        .await
    }

    pub async fn start_with(config: MockCloudConfig) -> World {
        let cloud = MockCloud::start(config).await.expect("start mock cloud");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, cloud.kubeconfig_yaml()).unwrap();
        let client = client_for(&kubeconfig).await;
        World {
            cloud,
            dir,
            kubeconfig,
            client,
        }
    }

    /// Run `kubectl` against this world; (exit ok, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        kubectl(&self.kubeconfig, self.dir.path(), args, None).await
    }

    /// Run `kubectl` with `input` on stdin (for `apply -f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], input: &str) -> (bool, String, String) {
        kubectl(&self.kubeconfig, self.dir.path(), args, Some(input)).await
    }

    /// Like `kubectl`, but the test fails (with kubectl's output) unless it succeeds.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    pub async fn shutdown(self) {
        self.cloud.shutdown().await;
    }
}

pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The kubectl binary; a missing one fails the test loudly (scripts/test installs it).
pub fn kubectl_bin() -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    let found = std::process::Command::new(&bin)
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "kubectl not found (install it, or run ./scripts/test which does)"
    );
    bin
}

pub async fn kubectl(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    input: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(kubectl_bin());
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        // A private HOME: kubectl's discovery cache must not leak between tests.
        .env("HOME", home)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl took over 60 s")
        .expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Poll `check` until it returns Some, or fail after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A controller running in this process.
pub struct RunningController {
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
    pub metrics: Arc<Metrics>,
    pub metrics_url: String,
}

impl RunningController {
    /// Graceful stop (releases the lease).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// A crash: the task is dropped mid-flight, nothing is released.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// A fast test configuration: short backoff and debounce, drift and sweep off unless asked.
pub fn test_config() -> ControllerConfig {
    let mut c = ControllerConfig {
        cluster_name: "test".to_string(),
        backoff_base_seconds: 0.2,
        backoff_max_seconds: 2.0,
        node_sync_debounce_seconds: 0.2,
        node_sync_add_hold_seconds: 0.3,
        drift_interval_seconds: 0.0,
        sweep_interval_seconds: 0.0,
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        cloud_call_timeout_seconds: 5.0,
        ..ControllerConfig::default()
    };
    c.leader_election.enabled = false;
    c
}

pub fn mock_provider(world: &World, metrics: Arc<Metrics>) -> Arc<dyn LoadBalancerProvider> {
    let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics);
    Arc::new(frontdesk_provider_mock::MockProvider::new(&world.cloud.cloud_url(), ctx).unwrap())
}

pub async fn start_controller(world: &World, config: ControllerConfig) -> RunningController {
    let metrics = Arc::new(Metrics::new());
    let provider = mock_provider(world, metrics.clone());
    start_controller_with(world.client.clone(), provider, config, metrics).await
}

pub async fn start_controller_with(
    client: Client,
    provider: Arc<dyn LoadBalancerProvider>,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
) -> RunningController {
    let health = Arc::new(Health::default());
    let addr = health::serve(config.metrics_addr, metrics.clone(), health.clone())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let m = metrics.clone();
    let task = tokio::spawn(async move {
        if let Err(e) =
            frontdesk_core::controller::run(client, provider, config, m, health, s).await
        {
            eprintln!("controller stopped: {e}");
        }
    });
    RunningController {
        stop,
        task,
        metrics,
        metrics_url: format!("http://{addr}/metrics"),
    }
}

/// The example manifest users apply.
pub fn example_app() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/app.yaml")).unwrap()
}

pub fn example_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/app.yaml").to_string()
}
