//! `frontdesk run`: the controller against a real (or sandbox) cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use frontdesk_core::config::ControllerConfig;
use frontdesk_core::health::{self, Health};
use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::providers::{self, ProviderOptions};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Which cloud to provision load balancers in.
    #[arg(long, env = "FRONTDESK_PROVIDER")]
    pub provider: String,
    /// YAML configuration file (flags override it).
    #[arg(long, env = "FRONTDESK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kubeconfig to use; without it, the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Cloud API endpoint (for `mock`: the mock cloud's URL).
    #[arg(long, env = "FRONTDESK_CLOUD_URL")]
    pub cloud_url: Option<String>,
    /// `aws`: the region (default: the SDK chain, `AWS_REGION`, profile, IMDS).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Claim Services with this loadBalancerClass.
    #[arg(long)]
    pub load_balancer_class: Option<String>,
    /// Also claim LoadBalancer Services without a class.
    #[arg(long)]
    pub claim_unclassed: Option<bool>,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Turn leader election on or off.
    #[arg(long)]
    pub leader_elect: Option<bool>,
    #[arg(long)]
    pub concurrency: Option<u16>,
}

/// The config file, then flags over it, validated once.
pub fn load_config(args: &RunArgs) -> anyhow::Result<ControllerConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            ControllerConfig::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ControllerConfig::default(),
    };
    if let Some(v) = &args.cluster_name {
        config.cluster_name = v.clone();
    }
    if let Some(v) = &args.load_balancer_class {
        config.load_balancer_class = Some(v.clone());
    }
    if let Some(v) = args.claim_unclassed {
        config.claim_unclassed = v;
    }
    if let Some(v) = args.metrics_addr {
        config.metrics_addr = v;
    }
    if let Some(v) = args.leader_elect {
        config.leader_election.enabled = v;
    }
    if let Some(v) = args.concurrency {
        config.concurrency = v;
    }
    config.validate()?;
    Ok(config)
}

pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster().context(
            "no --kubeconfig given and not running in a cluster (KUBERNETES_SERVICE_HOST unset)",
        )?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    if !providers::PROVIDERS.contains(&args.provider.as_str()) {
        bail!(
            "--provider {:?} is not known; choose one of: {}",
            args.provider,
            providers::PROVIDERS.join(", ")
        );
    }
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let metrics = Arc::new(Metrics::new());
    let ctx = ProviderContext::new(
        Arc::new(providers::budget(&args.provider, &config)),
        metrics.clone(),
    );
    let opts = ProviderOptions {
        cloud_url: args.cloud_url.clone(),
        aws_region: args.aws_region.clone(),
        ..ProviderOptions::default()
    };
    let provider = providers::build_with_client(&args.provider, &opts, ctx, client.clone())?;
    let health = Arc::new(Health::default());
    let addr = health::serve(config.metrics_addr, metrics.clone(), health.clone())
        .await
        .with_context(|| format!("binding metricsAddr {}", config.metrics_addr))?;
    tracing::info!(%addr, provider = %args.provider, cluster = %config.cluster_name, "serving /metrics, /healthz, /readyz");
    let shutdown = CancellationToken::new();
    {
        let s = shutdown.clone();
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            tracing::info!("shutting down");
            s.cancel();
        });
    }
    frontdesk_core::controller::run(client, provider, config, metrics, health, shutdown).await?;
    Ok(())
}
