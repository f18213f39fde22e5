//! `frontdesk mock-cloud` (the fakes only) and `frontdesk sandbox` (fakes + controller).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use frontdesk_core::config::ControllerConfig;
use frontdesk_core::health::{self, Health};
use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_mock_cloud::faults::Profile;
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use tokio_util::sync::CancellationToken;

use crate::providers::{self, ProviderOptions};

#[derive(Args, Debug, Clone)]
pub struct MockCloudArgs {
    /// Where to write the sandbox's kubeconfig.
    #[arg(long, default_value = "frontdesk-sandbox.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Simulated nodes (cloud instances).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=5000))]
    pub nodes: u16,
    /// Address of the sandbox Kubernetes API (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Address of the mock cloud's API (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub cloud_listen: SocketAddr,
    /// Cloud API latency and throttling: `none`, `generic` (50 ms, 20 writes/s) or `aws`
    /// (AWS's per-action buckets, NLBs `active` after 1-3 minutes as on AWS).
    #[arg(long, default_value = "none", value_parser = ["none", "generic", "aws"])]
    pub profile: String,
}

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub cloud: MockCloudArgs,
    /// Provider the in-process controller uses.
    #[arg(long, default_value = "mock", value_parser = ["mock", "baremetal", "aws"])]
    pub provider: String,
    /// Controller configuration file (as for `frontdesk run`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the controller's /metrics, /healthz, /readyz listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics_addr: SocketAddr,
}

fn profile(name: &str) -> Profile {
    match name {
        "generic" => Profile::Generic,
        "aws" => Profile::Aws,
        _ => Profile::None,
    }
}

async fn start_fakes(args: &MockCloudArgs) -> anyhow::Result<MockCloud> {
    start_fakes_for(args, "mock").await
}

/// `provider_scheme`: the providerID scheme of the instances (`aws` for `--provider aws`).
async fn start_fakes_for(args: &MockCloudArgs, provider_scheme: &str) -> anyhow::Result<MockCloud> {
    let config = MockCloudConfig {
        provider_scheme: provider_scheme.to_string(),
        kube_listen: args.listen,
        cloud_listen: args.cloud_listen,
        nodes: args.nodes.into(),
        profile: profile(&args.profile),
        ..MockCloudConfig::default()
    };
    let cloud = MockCloud::start(config).await?;
    write_kubeconfig(&args.kubeconfig, &cloud.kubeconfig_yaml())?;
    Ok(cloud)
}

fn write_kubeconfig(path: &Path, yaml: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, yaml).with_context(|| format!("writing kubeconfig {}", path.display()))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub async fn mock_cloud(args: MockCloudArgs) -> anyhow::Result<()> {
    let cloud = start_fakes(&args).await?;
    let kc = absolute(&args.kubeconfig);
    println!("sandbox Kubernetes API: {}", cloud.kube_url());
    println!("mock cloud API:         {}", cloud.cloud_url());
    println!("AWS front (ELBv2, EC2): {}", cloud.aws_url());
    println!("kubeconfig:             {}", kc.display());
    println!();
    println!("Run the controller against it:");
    println!(
        "  frontdesk run --provider mock --cloud-url {} --kubeconfig {}",
        cloud.cloud_url(),
        kc.display()
    );
    println!("Stop with Ctrl-C.");
    crate::shutdown_signal().await;
    cloud.shutdown().await;
    Ok(())
}

pub async fn sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            ControllerConfig::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ControllerConfig::default(),
    };
    config.metrics_addr = args.metrics_addr;
    config.cluster_name = "sandbox".to_string();
    // One process, one controller: nothing to elect.
    config.leader_election.enabled = false;
    config.validate()?;

    let scheme = if args.provider == "aws" {
        "aws"
    } else {
        "mock"
    };
    let cloud = start_fakes_for(&args.cloud, scheme).await?;
    let kc = absolute(&args.cloud.kubeconfig);
    let client = crate::run::kube_client(Some(&kc)).await?;
    if args.provider == "baremetal" {
        // Pools and claims are CRDs: install them and a default pool (documentation ranges).
        frontdesk_provider_baremetal::install(&client, true)
            .await
            .context("installing the bare-metal CRDs and the default IPAddressPool")?;
    }
    let metrics = Arc::new(Metrics::new());
    let ctx = ProviderContext::new(
        Arc::new(providers::budget(&args.provider, &config)),
        metrics.clone(),
    );
    let provider = providers::build_with_client(
        &args.provider,
        &if args.provider == "aws" {
            // The AWS front: fixed region, dummy credentials (it does not verify signatures).
            ProviderOptions {
                cloud_url: Some(cloud.aws_url()),
                aws_region: Some("us-east-1".into()),
                aws_test_credentials: true,
                // The front makes NLBs `active` at once unless `--profile aws` adds AWS's
                // provisioning time; either way a short poll keeps the sandbox snappy.
                aws_provisioning_poll: Some(std::time::Duration::from_secs(2)),
            }
        } else {
            ProviderOptions {
                cloud_url: Some(cloud.cloud_url()),
                ..ProviderOptions::default()
            }
        },
        ctx,
        client.clone(),
    )?;
    let health = Arc::new(Health::default());
    let metrics_at = health::serve(config.metrics_addr, metrics.clone(), health.clone()).await?;

    println!(
        "frontdesk sandbox is up: a {}-node cluster, a mock cloud and the controller.",
        args.cloud.nodes
    );
    println!("  kubeconfig: {}", kc.display());
    println!("  metrics:    http://{metrics_at}/metrics");
    println!();
    println!("  export KUBECONFIG={}", kc.display());
    println!("  kubectl apply -f examples/app.yaml");
    println!("  kubectl get svc my-app-service -w");
    println!();
    println!("Stop with Ctrl-C.");

    let shutdown = CancellationToken::new();
    {
        let s = shutdown.clone();
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            s.cancel();
        });
    }
    let result =
        frontdesk_core::controller::run(client, provider, config, metrics, health, shutdown).await;
    cloud.shutdown().await;
    result?;
    Ok(())
}
