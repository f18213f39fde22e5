//! Provider selection: the one place that knows every provider crate.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use frontdesk_core::config::ControllerConfig;
use frontdesk_core::provider::{LoadBalancerProvider, ProviderContext};
use frontdesk_core::ratelimit::{ApiBudget, BucketConfig};

/// Providers this build knows.
pub const PROVIDERS: &[&str] = &["mock", "baremetal", "aws"];

/// Everything a provider may need from flags.
#[derive(Clone, Debug, Default)]
pub struct ProviderOptions {
    /// Endpoint of the cloud API (the mock cloud's URL for `mock`).
    pub cloud_url: Option<String>,
    /// `aws`: the region (else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    pub aws_region: Option<String>,
    /// `aws`: sign with fixed dummy credentials instead of the standard chain; only for
    /// endpoints that do not verify signatures (the mock cloud's AWS front, moto).
    pub aws_test_credentials: bool,
    /// `aws`: how soon to look again at an NLB that is still `provisioning` (default 15 s).
    pub aws_provisioning_poll: Option<std::time::Duration>,
}

pub fn build(
    name: &str,
    opts: &ProviderOptions,
    ctx: ProviderContext,
) -> anyhow::Result<Arc<dyn LoadBalancerProvider>> {
    match name {
        "mock" => {
            let Some(url) = opts.cloud_url.as_deref() else {
                bail!(
                    "--cloud-url is required with --provider mock (the URL `frontdesk mock-cloud` prints)"
                );
            };
            let p = frontdesk_provider_mock::MockProvider::new(url, ctx)
                .with_context(|| format!("--cloud-url {url:?}"))?;
            Ok(Arc::new(p))
        }
        "aws" => {
            let cfg = frontdesk_provider_aws::AwsConfig {
                region: opts.aws_region.clone(),
                endpoint_url: opts.cloud_url.clone(),
                static_credentials: opts.aws_test_credentials.then(|| {
                    (
                        "AKIDFRONTDESKTEST".to_string(),
                        "frontdesk-test".to_string(),
                    )
                }),
                ..frontdesk_provider_aws::AwsConfig::default()
            };
            let cfg = frontdesk_provider_aws::AwsConfig {
                provisioning_poll: opts.aws_provisioning_poll.unwrap_or(cfg.provisioning_poll),
                ..cfg
            };
            let p = frontdesk_provider_aws::AwsProvider::new(cfg, ctx)
                .context("building the AWS provider (region, credentials, endpoint)")?;
            Ok(Arc::new(p))
        }
        "baremetal" => bail!(
            "--provider baremetal works through the Kubernetes API (pools and claims are CRDs); \
             it is built with build_with_client"
        ),
        other => bail!(
            "--provider {other:?} is not known; choose one of: {}",
            PROVIDERS.join(", ")
        ),
    }
}

/// Like [`build`], for providers that keep their state in the cluster (`baremetal`).
pub fn build_with_client(
    name: &str,
    opts: &ProviderOptions,
    ctx: ProviderContext,
    client: kube::Client,
) -> anyhow::Result<Arc<dyn LoadBalancerProvider>> {
    match name {
        "baremetal" => Ok(frontdesk_provider_baremetal::BareMetalProvider::new(
            client, ctx,
        )),
        other => build(other, opts, ctx),
    }
}

/// The client-side cloud API budget: the provider's buckets (shaped like the cloud's own),
/// with any `cloudApiBuckets` from the config file over them, and any `cloudApiWindows`.
pub fn budget(name: &str, config: &ControllerConfig) -> ApiBudget {
    let mut buckets: std::collections::BTreeMap<String, BucketConfig> = match name {
        "mock" => frontdesk_provider_mock::budget_buckets()
            .into_iter()
            .map(|(n, b)| (n.to_string(), b))
            .collect(),
        "aws" => frontdesk_provider_aws::budget_buckets()
            .into_iter()
            .map(|(n, b)| (n.to_string(), b))
            .collect(),
        _ => Default::default(),
    };
    for (n, b) in &config.cloud_api_buckets {
        buckets.insert(
            n.clone(),
            BucketConfig::new(b.capacity, b.refill_per_second),
        );
    }
    ApiBudget::new(buckets).with_windows(
        config
            .cloud_api_windows
            .iter()
            .map(|(n, w)| (n.clone(), w.to_window())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn config_windows_reach_the_budget() {
        let config = ControllerConfig::from_yaml(
            "cloudApiWindows:\n  mutate: {limit: 2, periodSeconds: 60}\n",
        )
        .unwrap();
        let budget = budget("mock", &config);
        for _ in 0..2 {
            budget.acquire(&["mutate"]).await;
        }
        let third = tokio::time::timeout(Duration::from_millis(300), budget.acquire(&["mutate"]));
        assert!(third.await.is_err(), "a third write inside the window");
        // Reads are not limited by the write window.
        budget.acquire(&["read"]).await;
    }
}
