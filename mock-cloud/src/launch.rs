//! Starts the whole offline world: the sandbox cluster, the cloud fronts that share its
//! instances, and the simulator that keeps Nodes, Pods and EndpointSlices in step.

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::aws::{self, AwsConfig, AwsHandle};
use crate::faults::{Faults, Profile};
use crate::generic::{self, GenericHandle};
use crate::kube::sandbox::{Sandbox, SandboxConfig};
use crate::kube::sim;
use crate::state::Instances;

#[derive(Clone, Debug)]
pub struct MockCloudConfig {
    /// Address of the sandbox Kubernetes API (port 0: a free port).
    pub kube_listen: SocketAddr,
    /// Address of the generic cloud API (port 0: a free port).
    pub cloud_listen: SocketAddr,
    /// Address of the AWS front, ELBv2 + EC2 (port 0: a free port).
    pub aws_listen: SocketAddr,
    /// Account, cluster tags and quotas of the AWS front.
    pub aws: AwsConfig,
    /// Instances (and so Nodes) at start.
    pub nodes: usize,
    /// providerID scheme of the instances (`mock`, later `aws`, `gce`, `azure`).
    pub provider_scheme: String,
    /// Latency and throttling of the cloud API.
    pub profile: Profile,
    pub seed: u64,
    /// Sandbox API requires bearer tokens and enforces RBAC (the kubeconfig carries an admin
    /// token; `sandbox.service_account_token` mints ServiceAccount tokens).
    pub enforce_rbac: bool,
}

impl Default for MockCloudConfig {
    fn default() -> Self {
        Self {
            kube_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cloud_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            aws_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            aws: AwsConfig::default(),
            nodes: 3,
            provider_scheme: "mock".to_string(),
            profile: Profile::None,
            seed: 1,
            enforce_rbac: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("starting the sandbox Kubernetes API: {0}")]
    Sandbox(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("starting the generic cloud API: {0}")]
    Generic(#[from] generic::GenericError),
    #[error("starting the AWS front: {0}")]
    Aws(#[from] aws::AwsFrontError),
}

/// The running fakes. Stop with [`MockCloud::shutdown`].
pub struct MockCloud {
    pub sandbox: Sandbox,
    pub generic: GenericHandle,
    /// The AWS front (ELBv2 + EC2 on one address); shares instances and faults with `generic`.
    pub aws: AwsHandle,
    pub instances: Instances,
    stop: CancellationToken,
    sim: JoinHandle<()>,
}

impl MockCloud {
    pub async fn start(config: MockCloudConfig) -> Result<Self, LaunchError> {
        let instances = Instances::with_count(config.nodes, &config.provider_scheme);
        let faults = Faults::new(config.profile, config.seed);
        let generic =
            generic::serve(config.cloud_listen, instances.clone(), faults.clone()).await?;
        let aws = aws::serve(config.aws_listen, instances.clone(), faults, config.aws).await?;
        let sandbox = Sandbox::start(SandboxConfig {
            listen: config.kube_listen,
            enforce_rbac: config.enforce_rbac,
            ..SandboxConfig::default()
        })
        .await
        .map_err(|e| LaunchError::Sandbox(Box::new(e)))?;
        let stop = CancellationToken::new();
        let sim = tokio::spawn(sim::run(sandbox.store(), instances.clone(), stop.clone()));
        Ok(Self {
            sandbox,
            generic,
            aws,
            instances,
            stop,
            sim,
        })
    }

    /// The sandbox API's URL, e.g. `http://127.0.0.1:34567`.
    pub fn kube_url(&self) -> String {
        self.sandbox.url()
    }

    /// The generic cloud API's URL (what `--provider mock --cloud-url` takes).
    pub fn cloud_url(&self) -> String {
        self.generic.url()
    }

    /// The AWS front's URL: the endpoint for both the ELBv2 and the EC2 SDK client.
    pub fn aws_url(&self) -> String {
        self.aws.url()
    }

    pub fn kubeconfig_yaml(&self) -> String {
        self.sandbox.kubeconfig_yaml()
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.sim.await;
        self.generic.shutdown().await;
        self.aws.shutdown().await;
        self.sandbox.shutdown().await;
    }
}
