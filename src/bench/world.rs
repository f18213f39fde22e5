//! The benchmark world: the mock cloud (sandbox API + generic cloud) with a profile, and the
//! controller in-process with the mock provider, its client-side budget, and a Kubernetes
//! client that counts its own requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use frontdesk_core::config::{BucketSpec, ControllerConfig, WindowSpec};
use frontdesk_core::health::Health;
use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_mock_cloud::faults::{BUCKET_MUTATE, BUCKET_READ, FaultConfig, Profile};
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::report::progress;
use crate::providers::{self, ProviderOptions};

/// The mock cloud's profile as the bench sees it.
#[derive(Clone, Copy, Debug)]
pub struct BenchProfile {
    pub name: &'static str,
    pub profile: Profile,
}

impl BenchProfile {
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "generic" => Ok(Self {
                name: "generic",
                profile: Profile::Generic,
            }),
            "none" => Ok(Self {
                name: "none",
                profile: Profile::None,
            }),
            "aws" => Ok(Self {
                name: "aws",
                profile: Profile::Aws,
            }),
            // No GCE or Azure front: the mock provider against the generic cloud, with GCE's
            // resp. Azure's quotas, serialisation and operation times (cloud-api-limits §9).
            "gcp" | "gce" => Ok(Self {
                name: "gcp",
                profile: Profile::Gce,
            }),
            "azure" => Ok(Self {
                name: "azure",
                profile: Profile::Azure,
            }),
            other => {
                bail!("--profile {other:?} is not known; choose generic, aws, gcp, azure or none")
            }
        }
    }

    pub fn faults(&self) -> FaultConfig {
        self.profile.config()
    }

    /// The AWS profile runs the AWS provider against the AWS front; the others the mock
    /// provider against the generic cloud.
    pub fn is_aws(&self) -> bool {
        matches!(self.profile, Profile::Aws)
    }

    /// The client-side budget the controller runs with against this profile's cloud: for
    /// GCE and Azure the profile's own buckets and windows under the names the mock provider
    /// charges (a name the profile does not limit gets no client limit either); the provider's
    /// defaults otherwise. Entries the user's configuration sets win.
    fn client_limits(&self, config: &mut ControllerConfig) {
        if !matches!(self.profile, Profile::Gce | Profile::Azure) {
            return;
        }
        let faults = self.faults();
        let huge = BucketSpec {
            capacity: 1e9,
            refill_per_second: 1e9,
        };
        for name in [BUCKET_MUTATE, BUCKET_READ] {
            let bucket = faults.buckets.get(name).map_or(huge, |b| BucketSpec {
                capacity: b.capacity,
                refill_per_second: b.refill_per_sec,
            });
            config
                .cloud_api_buckets
                .entry(name.to_string())
                .or_insert(bucket);
            if let Some(w) = faults.windows.get(name) {
                config
                    .cloud_api_windows
                    .entry(name.to_string())
                    .or_insert(WindowSpec {
                        limit: u32::try_from(w.limit).unwrap_or(u32::MAX),
                        period_seconds: w.period_ms as f64 / 1000.0,
                    });
            }
        }
    }
}

/// Kubernetes API requests the controller made, by kind.
#[derive(Debug, Default)]
pub struct KubeCalls {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    /// Long-lived watch requests (each counted once when opened).
    pub watches: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KubeCount {
    pub reads: u64,
    pub writes: u64,
    pub watches: u64,
}

impl KubeCalls {
    pub fn snapshot(&self) -> KubeCount {
        KubeCount {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            watches: self.watches.load(Ordering::Relaxed),
        }
    }

    fn count<B>(&self, req: &http::Request<B>) {
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
        let counter = if watch {
            &self.watches
        } else if req.method() == http::Method::GET {
            &self.reads
        } else {
            &self.writes
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl KubeCount {
    pub fn since(&self, before: &KubeCount) -> KubeCount {
        KubeCount {
            reads: self.reads - before.reads,
            writes: self.writes - before.writes,
            watches: self.watches - before.watches,
        }
    }
}

pub struct World {
    pub cloud: MockCloud,
    pub profile: BenchProfile,
    kubeconfig: String,
    /// The bench's own client (creating Services, heartbeats): not counted.
    pub client: Client,
    /// What the controller's client has sent.
    pub kube_calls: Arc<KubeCalls>,
}

/// A controller running in this process.
pub struct RunningController {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningController {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Budget override that lifts every client-side limit (profile `none`, fast setup phases).
fn unlimited_buckets() -> BTreeMap<String, BucketSpec> {
    let huge = BucketSpec {
        capacity: 1e9,
        refill_per_second: 1e9,
    };
    BTreeMap::from([("mutate".to_string(), huge), ("read".to_string(), huge)])
}

impl World {
    pub async fn start(profile: BenchProfile, nodes: usize) -> anyhow::Result<Self> {
        progress(&format!(
            "starting the sandbox API and the mock cloud ({nodes} nodes, profile {})",
            profile.name
        ));
        let cloud = MockCloud::start(MockCloudConfig {
            nodes,
            profile: profile.profile,
            provider_scheme: if profile.is_aws() { "aws" } else { "mock" }.into(),
            ..MockCloudConfig::default()
        })
        .await
        .context("starting the mock cloud")?;
        let kubeconfig = cloud.kubeconfig_yaml();
        let client = client_from(&kubeconfig, None).await?;
        let world = Self {
            cloud,
            profile,
            kubeconfig,
            client,
            kube_calls: Arc::default(),
        };
        world.wait_for_nodes(nodes).await?;
        Ok(world)
    }

    /// Stop the fakes; a shutdown stuck on an open connection must not hold the report back.
    pub async fn shutdown(self) {
        progress("shutting down");
        if tokio::time::timeout(Duration::from_secs(10), self.cloud.shutdown())
            .await
            .is_err()
        {
            progress("the mock cloud did not stop within 10 s; leaving it to the process exit");
        }
    }

    /// The call log and faults of the cloud the controller talks to.
    pub fn faults(&self) -> &frontdesk_mock_cloud::faults::Faults {
        if self.profile.is_aws() {
            self.cloud.aws.faults()
        } else {
            self.cloud.generic.faults()
        }
    }

    /// Wait until the sandbox shows `count` Nodes (the simulator registers one per instance).
    pub async fn wait_for_nodes(&self, count: usize) -> anyhow::Result<()> {
        let store = self.cloud.sandbox.store();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let have = store.list("", "nodes", None).0.len();
            if have >= count {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("only {have} of {count} Nodes registered after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start a controller. `unlimited` lifts the client-side budget (setup phases); otherwise
    /// the budget is the provider's own (`providers::budget("mock", ..)`), except with profile
    /// `none`, whose cloud has no limits, so the client gets none either.
    pub async fn start_controller(
        &self,
        mut config: ControllerConfig,
        unlimited: bool,
    ) -> anyhow::Result<RunningController> {
        // One process, one controller: no lease to wait for (stated in the report).
        config.leader_election.enabled = false;
        config.metrics_addr = ([127, 0, 0, 1], 0).into();
        if unlimited || matches!(self.profile.profile, Profile::None) {
            config.cloud_api_buckets = unlimited_buckets();
            config.cloud_api_windows.clear();
        } else {
            self.profile.client_limits(&mut config);
        }
        let metrics = Arc::new(Metrics::new());
        let (name, opts) = if self.profile.is_aws() {
            // The AWS front's subnets are tagged for the cluster `sandbox`.
            config.cluster_name = "sandbox".into();
            let opts = ProviderOptions {
                cloud_url: Some(self.cloud.aws_url()),
                aws_region: Some("us-east-1".into()),
                aws_test_credentials: true,
                aws_provisioning_poll: None,
            };
            ("aws", opts)
        } else {
            let opts = ProviderOptions {
                cloud_url: Some(self.cloud.cloud_url()),
                ..ProviderOptions::default()
            };
            ("mock", opts)
        };
        let budget = Arc::new(providers::budget(name, &config));
        let provider =
            providers::build(name, &opts, ProviderContext::new(budget, metrics.clone()))?;
        let calls = self.kube_calls.clone();
        let counter: RequestCounter = Arc::new(move |req| calls.count(req));
        let client = client_from(&self.kubeconfig, Some(counter)).await?;
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
        Ok(RunningController { stop, task })
    }

    /// Create Services `svc-{from}..svc-{to-1}` through the API, 32 at a time.
    pub async fn create_services(
        &self,
        range: std::ops::Range<usize>,
        load_balancer: bool,
    ) -> anyhow::Result<()> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(range)
            .map(|i| {
                let api = api.clone();
                async move {
                    let svc: Service = serde_json::from_value(service_manifest(i, load_balancer))?;
                    api.create(&PostParams::default(), &svc)
                        .await
                        .with_context(|| format!("creating Service svc-{i}"))?;
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            bail!("{failed} Service creates failed; first: {e:#}");
        }
        Ok(())
    }

    /// Services of type LoadBalancer in the sandbox, and how many have an address.
    pub fn addressed(&self) -> (usize, usize) {
        let (items, _) = self
            .cloud
            .sandbox
            .store()
            .list("", "services", Some("default"));
        let lb: Vec<&Arc<Value>> = items
            .iter()
            .filter(|s| s["spec"]["type"] == "LoadBalancer")
            .collect();
        let done = lb.iter().filter(|s| has_address(s)).count();
        (lb.len(), done)
    }

    /// LoadBalancer Services without an address, each with its finalizers and conditions
    /// (whether the controller has touched it at all, and what it last reported).
    fn waiting_detail(&self) -> Vec<String> {
        let (items, _) = self
            .cloud
            .sandbox
            .store()
            .list("", "services", Some("default"));
        items
            .iter()
            .filter(|s| s["spec"]["type"] == "LoadBalancer" && !has_address(s))
            .map(|s| {
                format!(
                    "{} finalizers={} conditions={}",
                    s["metadata"]["name"].as_str().unwrap_or("?"),
                    s["metadata"]["finalizers"],
                    s["status"]["conditions"]
                )
            })
            .collect()
    }

    /// Whether one Service has an address.
    pub fn has_address(&self, name: &str) -> bool {
        self.cloud
            .sandbox
            .store()
            .get("", "services", Some("default"), name)
            .is_ok_and(|s| has_address(&s))
    }

    /// Wait until `want` LoadBalancer Services have an address; progress every 5 s.
    pub async fn wait_addressed(&self, want: usize, limit: Duration) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        let mut last_report = start;
        loop {
            let (_, done) = self.addressed();
            if done >= want {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "only {done} of {want} Services had an address after {} s",
                    limit.as_secs()
                );
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = tokio::time::Instant::now();
                progress(&format!(
                    "{done}/{want} Services have an address ({:.0} s)",
                    start.elapsed().as_secs_f64()
                ));
                // The last few: say which and what the controller last wrote on them.
                if want - done <= 5 {
                    for line in self.waiting_detail() {
                        progress(&format!("  still waiting: {line}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Converge `count` LoadBalancer Services with an unthrottled controller and cloud, then
    /// stop that controller and put the cloud back on the profile: the fast way to a cluster
    /// with many converged load balancers (S2, S3, S4 setup; not measured).
    pub async fn converge_backlog(&self, count: usize) -> anyhow::Result<()> {
        progress(&format!(
            "setup: converging {count} LoadBalancer Services with an unthrottled controller"
        ));
        let faults = self.cloud.generic.faults();
        faults.set_profile(Profile::None);
        let setup = self
            .start_controller(ControllerConfig::default(), true)
            .await?;
        self.create_services(0..count, true).await?;
        self.wait_addressed(count, Duration::from_secs(600)).await?;
        setup.stop().await;
        faults
            .set_config(self.profile.faults())
            .context("restoring the profile")?;
        progress("setup done; the controller under test starts from here");
        Ok(())
    }
}

fn has_address(svc: &Value) -> bool {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

pub fn service_manifest(i: usize, load_balancer: bool) -> Value {
    let mut spec =
        json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]});
    if load_balancer {
        spec["type"] = json!("LoadBalancer");
    } else {
        spec["selector"] = json!({"app": format!("a{i}")});
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": "default", "labels": {"bench": "true"}},
        "spec": spec,
    })
}

/// Sees every request a counting client sends.
pub(super) type RequestCounter = Arc<dyn Fn(&http::Request<kube::client::Body>) + Send + Sync>;

/// A Kubernetes client for the sandbox; with `counter`, every request it sends is counted.
pub(super) async fn client_from(
    kubeconfig: &str,
    counter: Option<RequestCounter>,
) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).context("parsing the kubeconfig")?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
    let builder = kube::client::ClientBuilder::try_from(config).context("building a client")?;
    Ok(match counter {
        None => builder.build(),
        Some(count) => builder
            .with_layer(&tower::util::MapRequestLayer::new(
                move |req: http::Request<kube::client::Body>| {
                    count(&req);
                    req
                },
            ))
            .build(),
    })
}
