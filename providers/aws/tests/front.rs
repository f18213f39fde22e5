//! The AWS provider against the mock cloud's AWS front (same SDK clients, real AWS error
//! semantics): the conformance kit, and injected throttling / failures ending converged with
//! no duplicate resources.

use std::time::Duration;

use async_trait::async_trait;
use frontdesk_core::conformance::{self, CallEntry, CloudInspector, ensure_ready};
use frontdesk_core::naming::TAG_CLUSTER;
use frontdesk_core::provider::{
    BackendNode, EnsureOutcome, LoadBalancerProvider, ProviderContext, ProviderError,
    ProvisioningRecord,
};
use frontdesk_mock_cloud::aws::AwsConfig as FrontConfig;
use frontdesk_mock_cloud::faults::{Injection, Profile};
use frontdesk_mock_cloud::{MockCloud, MockCloudConfig};
use frontdesk_provider_aws::{AwsConfig, AwsProvider};

const CLUSTERS: &[&str] = &[
    "conformance-idempotent",
    "conformance-partial",
    "conformance-delete",
    "conformance-backends",
    "conformance-list-a",
    "conformance-list-b",
    "conformance-orphan",
    "faults",
];

struct Front {
    cloud: MockCloud,
    since: std::sync::atomic::AtomicU64,
}

async fn start(profile: Profile) -> Front {
    let cloud = MockCloud::start(MockCloudConfig {
        provider_scheme: "aws".into(),
        nodes: 3,
        profile,
        aws: FrontConfig {
            cluster_names: CLUSTERS.iter().map(|s| s.to_string()).collect(),
            ..FrontConfig::default()
        },
        ..MockCloudConfig::default()
    })
    .await
    .expect("mock cloud");
    // No provisioning delay: the kit polls only briefly.
    cloud
        .aws
        .faults()
        .set_provisioning(frontdesk_mock_cloud::faults::Latency::Fixed { ms: 0 })
        .ok();
    let since = cloud.aws.faults().next_seq().saturating_sub(1);
    Front {
        cloud,
        since: since.into(),
    }
}

fn provider(front: &Front, ctx: ProviderContext) -> AwsProvider {
    AwsProvider::new(
        AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some(front.cloud.aws.url()),
            static_credentials: Some(("AKIDMOCK".into(), "SECRETMOCK".into())),
            call_timeout: Duration::from_secs(10),
            vpc_id: None,
            provisioning_poll: Duration::from_millis(50),
        },
        ctx,
    )
    .expect("provider")
}

fn nodes(front: &Front) -> Vec<BackendNode> {
    front
        .cloud
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

fn lbs_of(front: &Front, cluster: &str) -> usize {
    let snap = front.cloud.aws.cloud().snapshot();
    snap["load_balancers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|lb| lb["tags"][TAG_CLUSTER].as_str() == Some(cluster))
                .count()
        })
        .unwrap_or(0)
}

#[async_trait]
impl CloudInspector for Front {
    async fn calls(&self) -> Vec<CallEntry> {
        let since = self.since.load(std::sync::atomic::Ordering::SeqCst);
        self.cloud
            .aws
            .faults()
            .calls(Some(since))
            .into_iter()
            .map(|c| CallEntry {
                operation: c.operation,
                mutating: c.mutating,
                // The front logs targets as `id:port`; the kit matches whole tokens, so split them.
                detail: format!("{} {}", c.target, c.detail.replace(':', " ")),
            })
            .collect()
    }

    async fn clear_calls(&self) {
        let next = self.cloud.aws.faults().next_seq().saturating_sub(1);
        self.since.store(next, std::sync::atomic::Ordering::SeqCst);
    }

    async fn delete_out_of_band(&self, record: &ProvisioningRecord) {
        // Through a second provider with its own (empty) cache: the cloud state changes behind
        // the back of the provider under test.
        let other = provider(self, ProviderContext::for_tests());
        other.delete(record).await.expect("out-of-band delete");
    }

    async fn fail_next(&self, operation: &str, count: usize) {
        self.cloud
            .aws
            .faults()
            .fail_next(operation, count as u64, 500);
    }

    async fn resource_count(&self, cluster: &str) -> usize {
        lbs_of(self, cluster)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_the_aws_front() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let front = start(Profile::None).await;
        let p = provider(&front, ProviderContext::for_tests());
        conformance::run_all(&p, &front, nodes(&front)).await;
    })
    .await
    .expect("within 120 s");
}

/// Every write of a create fails once (500 or a throttle), in turn; retrying ensure as the
/// controller would ends converged with exactly one LB, one TG, one SG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_end_converged_without_duplicates() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let front = start(Profile::None).await;
        let p = provider(&front, ProviderContext::for_tests());
        let ns = nodes(&front);
        let ops = [
            ("DescribeLoadBalancers", 503),
            ("CreateSecurityGroup", 500),
            ("AuthorizeSecurityGroupIngress", 500),
            ("CreateLoadBalancer", 429),
            ("CreateTargetGroup", 500),
            ("CreateListener", 500),
            ("RegisterTargets", 500),
        ];
        for (i, (op, status)) in ops.iter().enumerate() {
            let uid = format!("{i:08x}-fa17-4000-8000-000000000000");
            let spec = conformance::test_spec("faults", &format!("svc{i}"), &uid, &ns);
            // 429 answers as AWS throttles (ThrottlingException / RequestLimitExceeded).
            front
                .cloud
                .aws
                .faults()
                .inject(Injection::fail_next(*op, 1, *status))
                .expect("inject");
            let first = p.ensure(&spec).await;
            match (&first, *status) {
                (Err(ProviderError::Throttled { retry_after, .. }), 429 | 503) => {
                    assert!(retry_after.is_some(), "{op}: throttle without retry_after")
                }
                (Err(_), _) => {}
                (Ok(o), _) => panic!("{op}: the injected failure was not reported: {o:?}"),
            }
            ensure_ready(&p, &spec).await;
            let again = p.ensure(&spec).await.expect("converged ensure");
            assert!(matches!(again, EnsureOutcome::Ready(_)));
        }
        let snap = front.cloud.aws.cloud().snapshot();
        let count = |k: &str| snap[k].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(
            lbs_of(&front, "faults"),
            ops.len(),
            "one LB per Service: {snap:#}"
        );
        assert_eq!(
            count("target_groups"),
            ops.len(),
            "no duplicate target groups"
        );
        assert_eq!(count("listeners"), ops.len(), "no duplicate listeners");
        let sgs = snap["security_groups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|g| g["tags"][TAG_CLUSTER].as_str() == Some("faults"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(sgs, ops.len(), "no duplicate security groups");
        for rec in p.list_owned("faults").await.unwrap() {
            p.delete(&rec).await.unwrap();
        }
        assert_eq!(lbs_of(&front, "faults"), 0);
    })
    .await
    .expect("within 120 s");
}
