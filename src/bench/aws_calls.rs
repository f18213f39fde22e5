//! `frontdesk bench aws-calls`: the AWS provider's cloud calls per lifecycle step (create, node
//! add, no-op resync, delete), counted from the AWS front's call log, for `--services` Services
//! of one TCP port on `--nodes` instances, next to what the upstream AWS provider spends on the
//! same step (cloud-providers.md §1.2, cloud-api-limits.md S2: every node change is a full
//! `EnsureLoadBalancer`, about 8 ELBv2 + 3-5 EC2 calls for a one-port NLB).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use frontdesk_core::provider::{
    BackendNode, EnsureOutcome, LoadBalancerProvider, LoadBalancerSpec, ProviderContext, ServiceKey,
};
use frontdesk_mock_cloud::aws::AwsConfig as FrontConfig;
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use frontdesk_provider_aws::{AwsConfig, AwsProvider};

use super::BenchArgs;

const CLUSTER: &str = "bench";

/// Upstream's calls per Service for the same step (code-derived estimates, see module docs).
const UPSTREAM_CREATE: &str = "~14 (est.)";
const UPSTREAM_ENSURE: &str = "~12 (est.)";
const UPSTREAM_DELETE: &str = "~8 (est.)";

/// One TCP port (80 -> NodePort 30080), TCP health check, as the controller would build it.
fn spec(name: &str, uid: &str, nodes: &[BackendNode]) -> LoadBalancerSpec {
    LoadBalancerSpec::one_tcp_port(CLUSTER, ServiceKey::new("bench", name), uid, nodes)
}

fn nodes(cloud: &MockCloud) -> Vec<BackendNode> {
    cloud
        .instances
        .list()
        .into_iter()
        .map(|i| BackendNode {
            name: i.name,
            provider_id: Some(i.provider_id),
            addresses: vec![i.private_ip.into()],
            zone: Some(i.zone),
        })
        .collect()
}

/// (reads, writes, per-operation counts) logged since `since`.
fn count(cloud: &MockCloud, since: u64) -> (usize, usize, BTreeMap<String, usize>) {
    let calls = cloud.aws.faults().calls(Some(since));
    let mut ops = BTreeMap::new();
    for c in &calls {
        *ops.entry(c.operation.clone()).or_insert(0) += 1;
    }
    let writes = calls.iter().filter(|c| c.mutating).count();
    (calls.len() - writes, writes, ops)
}

async fn ready(p: &AwsProvider, spec: &LoadBalancerSpec) -> anyhow::Result<()> {
    for _ in 0..20 {
        if let EnsureOutcome::Ready(_) = p.ensure(spec).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("{} never became ready", spec.name)
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let services = args.services_or(10);
    let node_count = args.nodes_or(10);
    let cloud = MockCloud::start(MockCloudConfig {
        provider_scheme: "aws".into(),
        nodes: node_count,
        aws: FrontConfig {
            cluster_names: vec![CLUSTER.into()],
            ..FrontConfig::default()
        },
        ..MockCloudConfig::default()
    })
    .await
    .context("starting the mock cloud")?;
    let provider = AwsProvider::new(
        AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some(cloud.aws.url()),
            static_credentials: Some(("AKIDMOCK".into(), "SECRETMOCK".into())),
            provisioning_poll: Duration::from_millis(20),
            ..AwsConfig::default()
        },
        ProviderContext::for_tests(),
    )?;
    let mut all = nodes(&cloud);
    let extra = cloud.instances.add("aws");
    let mut specs: Vec<LoadBalancerSpec> = (0..services)
        .map(|i| {
            let uid = format!("{i:08x}-be0c-4000-8000-000000000000");
            spec(&format!("svc-{i}"), &uid, &all)
        })
        .collect();

    let mut rows = Vec::new();
    let mut step = |name: &str, upstream: &'static str, since: u64| {
        let (reads, writes, ops) = count(&cloud, since);
        rows.push((name.to_string(), upstream, reads, writes, ops));
    };

    let since = cloud.aws.faults().next_seq().saturating_sub(1);
    for s in &specs {
        ready(&provider, s).await?;
    }
    step("create (ensure until Ready)", UPSTREAM_CREATE, since);

    all.push(BackendNode {
        name: extra.name.clone(),
        provider_id: Some(extra.provider_id.clone()),
        addresses: vec![extra.private_ip.into()],
        zone: Some(extra.zone.clone()),
    });
    let since = cloud.aws.faults().next_seq().saturating_sub(1);
    for s in &mut specs {
        s.nodes = all.clone();
        provider.update_backends(s).await?;
    }
    step("node add (update_backends)", UPSTREAM_ENSURE, since);

    let since = cloud.aws.faults().next_seq().saturating_sub(1);
    for s in &specs {
        ready(&provider, s).await?;
    }
    step("drift check (ensure, no change)", UPSTREAM_ENSURE, since);

    let since = cloud.aws.faults().next_seq().saturating_sub(1);
    for s in &specs {
        provider.delete(&provider.record(s)?).await?;
    }
    step("delete", UPSTREAM_DELETE, since);

    println!(
        "AWS provider calls, {services} Services x 1 TCP port, {} nodes (AWS front call log)",
        all.len()
    );
    println!(
        "{:<30} {:>8} {:>8} {:>12} {:>20}",
        "step", "reads", "writes", "per Service", "upstream per Service"
    );
    for (name, upstream, reads, writes, ops) in &rows {
        let per = (reads + writes) as f64 / services.max(1) as f64;
        println!("{name:<30} {reads:>8} {writes:>8} {per:>12.1} {upstream:>20}");
        let list: Vec<String> = ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("    {}", list.join(" "));
    }
    println!();
    println!(
        "upstream = cloud-provider-aws (NLB), derived from its code (cloud-providers.md §1.2): \
         a node change or resync is a full EnsureLoadBalancer per Service (describe LB, \
         listeners, target groups, target health, attributes, tags, instances, subnets, \
         security groups, then the register call); frontdesk sends the delta from its cache. \
         A no-op resync in the controller costs no cloud call at all (the applied fingerprint \
         is trusted; see bench s3); the drift-check row is the optional periodic verification."
    );
    cloud.shutdown().await;
    Ok(())
}
