//! `frontdesk bench SCENARIO`: scale benchmarks that print measured numbers.
//!
//! One file per scenario; [`bench`] is the single dispatch point. To add a scenario, add its
//! module, one name to `SCENARIOS` and one arm in `bench`. The S-scenarios follow
//! cloud-api-limits §10: the mock cloud runs the chosen profile's latency, token buckets and
//! quota windows, the controller runs in this process with the mock provider and its
//! client-side budget, and every lower bound is computed from the profile's numbers and the
//! calls the provider made.

mod aws_calls;
mod l2;
mod report;
mod s1;
mod s2;
mod s3;
mod s4;
mod s6;
mod s8;
mod sandbox_api;
mod world;

use anyhow::bail;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenario: s1 (burst create), s2 (node churn), s3 (idle steady state), s4 (restart with
    /// a backlog, then one new Service), s6 (bare-metal: N Services from a /16 pool, then a
    /// restart that must change no address), s8 (memory while watching), sandbox-api, aws-calls (the
    /// AWS provider's calls per lifecycle step), l2-failover (speaker failover in namespaces).
    pub scenario: String,
    /// Services (default per scenario: s1-s4 1000 LoadBalancer Services, s8 and
    /// sandbox-api 10000).
    #[arg(long)]
    pub services: Option<usize>,
    /// Nodes (default per scenario: s1 10, s2-s4 1000, s8 and sandbox-api 5000).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Mock cloud profile: generic, none, aws (s1 only: the AWS provider against the AWS
    /// front with AWS's per-action buckets), gcp (fixed 60 s windows of 1500 mutations and
    /// 1500 reads, operations done after U[2, 6] s) or azure (ARM buckets 200 / 10 per s
    /// writes and 250 / 25 per s reads, Network RP 1000 writes per sliding 5 minutes, one
    /// mutation per load balancer at a time, 20 s operations). gcp and azure run the mock
    /// provider against the generic cloud with those limits, and the controller's client
    /// budget copies them.
    #[arg(long, default_value = "generic")]
    pub profile: String,
    /// s2: milliseconds between the 10 node additions (the reference's 6000 by default;
    /// e.g. 100 puts all 10 into one debounce window).
    #[arg(long, default_value_t = 6000)]
    pub spacing_ms: u64,
    /// s3: how long to watch the idle cluster (seconds).
    #[arg(long, default_value_t = 180)]
    pub duration: u64,
    /// s3: the drift check interval (seconds), compressed from the default 300 so a short
    /// run sees several passes.
    #[arg(long, default_value_t = 60.0)]
    pub drift_interval: f64,
    /// sandbox-api: concurrent client requests.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// l2-failover: failovers measured per kind (SIGKILL, SIGTERM).
    #[arg(long, default_value_t = 3)]
    pub trials: usize,
    /// s1-s4: the controller under test reads this configuration file (YAML, the keys of
    /// docs/configuration.md), e.g. `nodeSyncMaxHoldSeconds: 0` to see s2 without coalescing.
    #[arg(long)]
    pub controller_config: Option<std::path::PathBuf>,
    /// Machine-readable output (one JSON object on stdout).
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    pub fn services_or(&self, default: usize) -> usize {
        self.services.unwrap_or(default)
    }
    pub fn nodes_or(&self, default: usize) -> usize {
        self.nodes.unwrap_or(default)
    }
    /// The controller configuration under test: `--controller-config`, else the defaults.
    pub fn controller_config(&self) -> anyhow::Result<frontdesk_core::config::ControllerConfig> {
        use anyhow::Context as _;
        let Some(path) = &self.controller_config else {
            return Ok(Default::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--controller-config {}", path.display()))?;
        let config = frontdesk_core::config::ControllerConfig::from_yaml(&text)
            .with_context(|| format!("--controller-config {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("--controller-config {}", path.display()))?;
        Ok(config)
    }
}

/// Scenario names, for the error message on a typo.
const SCENARIOS: &[&str] = &[
    "s1",
    "s2",
    "s3",
    "s4",
    "s6",
    "s8",
    "sandbox-api",
    "aws-calls",
    "l2-failover",
];

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let scenario = args.scenario.to_ascii_lowercase();
    if scenario == "sandbox-api" {
        return sandbox_api::run(&args).await;
    }
    if scenario == "aws-calls" {
        return aws_calls::run(&args).await;
    }
    if scenario == "s6" {
        return s6::run(&args).await;
    }
    if scenario == "l2-failover" {
        return l2::run(&args).await;
    }
    let profile = world::BenchProfile::parse(&args.profile)?;
    if profile.is_aws() && scenario != "s1" {
        bail!("--profile aws runs scenario s1 only for now (the others drive the generic cloud)");
    }
    let report = match scenario.as_str() {
        "s1" => s1::run(&args, profile).await?,
        "s2" => s2::run(&args, profile).await?,
        "s3" => s3::run(&args, profile).await?,
        "s4" => s4::run(&args, profile).await?,
        "s8" => s8::run(&args, profile).await?,
        other => bail!(
            "unknown bench scenario {other:?}; known: {}",
            SCENARIOS.join(", ")
        ),
    };
    report.print(args.json)
}
