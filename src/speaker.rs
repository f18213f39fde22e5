//! `frontdesk speaker`: the bare-metal announcer, one per node (DaemonSet with hostNetwork and
//! CAP_NET_RAW). All logic lives in `frontdesk_provider_baremetal::speaker`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use frontdesk_provider_baremetal::speaker::{self, InterfaceFilter, LeaseTiming, SpeakerConfig};

#[derive(Args, Debug, Clone)]
pub struct SpeakerArgs {
    /// This node's name (the chart passes spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Kubeconfig file; in-cluster config without it.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the speakers' Leases (the chart passes the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Answer only on these interfaces (comma-separated); default: every interface except
    /// loopback and container/virtual ones (docker*, veth*, cali*, ...).
    #[arg(long, value_delimiter = ',')]
    pub interfaces: Vec<String>,
    /// Where /metrics, /healthz and /readyz listen; none without it.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// How often this speaker renews its Lease, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub lease_renew_ms: u64,
    /// After how long without a renewal a speaker counts as dead, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub lease_expiry_ms: u64,
}

pub async fn speaker(args: SpeakerArgs) -> anyhow::Result<()> {
    let mut config = SpeakerConfig::new(&args.node_name, &args.namespace);
    config.timing = LeaseTiming {
        renew: Duration::from_millis(args.lease_renew_ms),
        expiry: Duration::from_millis(args.lease_expiry_ms),
    };
    config.interfaces = InterfaceFilter {
        only: args.interfaces.clone(),
    };
    config.metrics_listen = args.metrics_listen;
    config.validate()?;
    let client = crate::run::kube_client(args.kubeconfig.as_ref()).await?;
    speaker::run(client, config, crate::shutdown_signal()).await?;
    Ok(())
}
