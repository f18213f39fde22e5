//! The provider against a real generic cloud server on 127.0.0.1.

use std::net::IpAddr;

use async_trait::async_trait;
use frontdesk_core::conformance::{self, CallEntry, CloudInspector};
use frontdesk_core::provider::{BackendNode, PortSpec, Protocol, Scheme as SpecScheme};
use frontdesk_mock_cloud::faults::{BucketSpec, FaultConfig, Faults, Injection, Latency, Profile};
use frontdesk_mock_cloud::generic::{self, GenericCloud, GenericHandle};
use frontdesk_mock_cloud::state::Instances;

use super::*;

struct Inspector(GenericCloud);

#[async_trait]
impl CloudInspector for Inspector {
    async fn calls(&self) -> Vec<CallEntry> {
        let log = self.0.faults().calls(None);
        log.into_iter()
            .map(|c| CallEntry {
                operation: c.operation,
                mutating: c.mutating,
                detail: format!("{} {}", c.target, c.detail),
            })
            .collect()
    }
    async fn clear_calls(&self) {
        self.0.faults().clear_calls();
    }
    async fn delete_out_of_band(&self, record: &ProvisioningRecord) {
        for name in lb_names(record) {
            let _ = self.0.delete(name);
        }
    }
    async fn fail_next(&self, operation: &str, count: usize) {
        self.0.faults().fail_next(operation, count as u64, 500);
    }
    async fn resource_count(&self, cluster: &str) -> usize {
        self.0.count_tagged(TAG_CLUSTER, cluster)
    }
}

async fn setup(nodes: usize) -> (GenericHandle, MockProvider, Vec<BackendNode>) {
    let instances = Instances::with_count(nodes, "mock");
    let backends = instances
        .list()
        .into_iter()
        .map(|i| BackendNode {
            name: i.name,
            provider_id: Some(i.provider_id),
            addresses: vec![IpAddr::V4(i.private_ip)],
            zone: Some(i.zone),
        })
        .collect();
    let handle = generic::serve(
        "127.0.0.1:0".parse().unwrap(),
        instances,
        Faults::new(Profile::None, 1),
    )
    .await
    .unwrap();
    let provider = MockProvider::with_timeout(
        &handle.url(),
        ProviderContext::for_tests(),
        Duration::from_secs(5),
    )
    .unwrap();
    (handle, provider, backends)
}

fn ops(handle: &GenericHandle) -> Vec<String> {
    let calls = handle.faults().calls(None);
    handle.faults().clear_calls();
    calls.into_iter().map(|c| c.operation).collect()
}

fn spec(nodes: &[BackendNode]) -> LoadBalancerSpec {
    conformance::test_spec("c1", "web", "11111111-2222-4333-8444-555555555555", nodes)
}

fn ip_of(outcome: &EnsureOutcome) -> Option<IpAddr> {
    match outcome {
        EnsureOutcome::Ready(s) => s.ingress[0].ip,
        EnsureOutcome::Provisioning { status, .. } => status.as_ref().and_then(|s| s.ingress[0].ip),
    }
}

#[tokio::test]
async fn conformance_kit() {
    let (handle, provider, nodes) = setup(4).await;
    conformance::run_all(&provider, &Inspector(handle.cloud().clone()), nodes).await;
    assert!(handle.cloud().all().is_empty(), "the kit cleans up");
}

#[tokio::test]
async fn call_budget_per_service() {
    let (handle, provider, nodes) = setup(4).await;
    let mut s = spec(&nodes[..3]);
    let first = provider.ensure(&s).await.unwrap();
    assert_eq!(ip_of(&first), Some("203.0.113.1".parse().unwrap()));
    assert_eq!(
        ops(&handle),
        [OP_GET, OP_CREATE, OP_BACKENDS],
        "new Service: 1 read + 2 writes"
    );
    provider.ensure(&s).await.unwrap();
    assert_eq!(ops(&handle), [OP_GET], "converged: 1 read, 0 writes");
    s.nodes = nodes.clone();
    provider.update_backends(&s).await.unwrap();
    assert_eq!(
        ops(&handle),
        [OP_BACKENDS],
        "node change: exactly 1 write, no read"
    );
    // A fresh provider (restart) has no cache: one read, then the delta.
    let fresh = MockProvider::new(&handle.url(), ProviderContext::for_tests()).unwrap();
    s.nodes = nodes[1..].to_vec();
    fresh.update_backends(&s).await.unwrap();
    assert_eq!(ops(&handle), [OP_GET, OP_BACKENDS]);
    // The first provider's cache is now stale (it still has node 0): the answer to its delta
    // shows that, and one corrective delta follows.
    s.nodes = nodes[..2].to_vec();
    provider.update_backends(&s).await.unwrap();
    assert_eq!(ops(&handle), [OP_BACKENDS, OP_BACKENDS]);
    let want: Vec<String> = s.nodes.iter().filter_map(desired::instance_id).collect();
    assert_eq!(handle.cloud().get(&s.name).unwrap().backends, want);
}

#[tokio::test]
async fn spec_changes_update_in_place_or_replace() {
    let (handle, provider, nodes) = setup(2).await;
    let mut s = spec(&nodes);
    provider.ensure(&s).await.unwrap();
    ops(&handle);
    s.ports.push(PortSpec {
        name: "dns".into(),
        protocol: Protocol::Udp,
        port: 53,
        node_port: Some(30053),
    });
    s.source_ranges = vec!["10.0.0.0/8".parse().unwrap()];
    provider.ensure(&s).await.unwrap();
    assert_eq!(ops(&handle), [OP_GET, OP_UPDATE]);
    assert_eq!(handle.cloud().get(&s.name).unwrap().listeners.len(), 2);

    s.scheme = SpecScheme::Internal;
    let out = provider.ensure(&s).await.unwrap();
    assert_eq!(ip_of(&out), Some("10.200.0.1".parse().unwrap()));
    assert_eq!(ops(&handle), [OP_GET, OP_DELETE, OP_CREATE, OP_BACKENDS]);
    assert_eq!(handle.cloud().all().len(), 1);
}

#[tokio::test]
async fn invalid_specs_make_no_calls() {
    let (handle, provider, nodes) = setup(1).await;
    let mut s = spec(&nodes);
    s.ports[0].protocol = Protocol::Sctp;
    let err = provider.ensure(&s).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidSpec { field, .. } if field == "spec.ports[0].protocol"),
        "{err:?}"
    );
    assert!(provider.record(&s).is_err());
    assert!(ops(&handle).is_empty());
    // The cloud's own validation comes back as InvalidSpec on the Service field.
    let mut s = spec(&nodes);
    s.requested_ips = vec!["8.8.8.8".parse().unwrap()];
    let err = provider.ensure(&s).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidSpec { field, .. } if field == "spec.loadBalancerIP"),
        "{err:?}"
    );
}

#[tokio::test]
async fn requested_address_taken_is_a_conflict() {
    let (_handle, provider, nodes) = setup(1).await;
    let mut a = conformance::test_spec("c1", "a", "uid-a", &nodes);
    a.requested_ips = vec!["203.0.113.9".parse().unwrap()];
    assert_eq!(
        ip_of(&provider.ensure(&a).await.unwrap()),
        Some(a.requested_ips[0])
    );
    let mut b = conformance::test_spec("c1", "b", "uid-b", &nodes);
    b.requested_ips = a.requested_ips.clone();
    assert_eq!(provider.ensure(&b).await.unwrap_err().class(), "Conflict");
}

#[tokio::test]
async fn crash_between_create_and_record_adopts_by_name() {
    let (handle, provider, nodes) = setup(2).await;
    let s = spec(&nodes);
    // The answer to our create was lost: the GET still says 404, the create says 409.
    provider.ensure(&s).await.unwrap();
    handle.faults().fail_next(OP_GET, 1, 404);
    ops(&handle);
    provider.ensure(&s).await.unwrap();
    assert_eq!(ops(&handle), [OP_GET, OP_CREATE, OP_GET]);
    assert_eq!(handle.cloud().all().len(), 1);
    // Same name, another Service UID: never adopted.
    let mut other = s.clone();
    other
        .tags
        .insert(TAG_SERVICE_UID.into(), "someone-else".into());
    assert_eq!(
        provider.ensure(&other).await.unwrap_err().class(),
        "Conflict"
    );
}

#[tokio::test]
async fn throttled_answers_carry_retry_after() {
    let (handle, provider, nodes) = setup(1).await;
    let config = FaultConfig {
        buckets: [(
            "mutate".to_string(),
            BucketSpec {
                capacity: 1.0,
                refill_per_sec: 0.25,
            },
        )]
        .into(),
        ..Default::default()
    };
    handle.faults().set_config(config).unwrap();
    let a = conformance::test_spec("c1", "a", "uid-a", &[]);
    provider.ensure(&a).await.unwrap();
    let b = conformance::test_spec("c1", "b", "uid-b", &nodes);
    match provider.ensure(&b).await.unwrap_err() {
        ProviderError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(4)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        handle.faults().calls(None).last().map(|c| c.status),
        Some(429)
    );
}

#[tokio::test]
async fn server_errors_timeouts_and_refused_connections_are_transient() {
    let (handle, provider, nodes) = setup(1).await;
    let s = spec(&nodes);
    handle.faults().fail_next(OP_GET, 1, 503);
    assert_eq!(provider.ensure(&s).await.unwrap_err().class(), "Transient");
    handle
        .faults()
        .inject(Injection {
            delay_ms: 1500,
            ..Injection::fail_next(OP_GET, 1, 500)
        })
        .unwrap();
    handle.faults().set_latency(Latency::None).unwrap();
    let quick = MockProvider::with_timeout(
        &handle.url(),
        ProviderContext::for_tests(),
        Duration::from_millis(200),
    )
    .unwrap();
    let err = quick.get(&provider.record(&s).unwrap()).await.unwrap_err();
    assert_eq!(err.class(), "Transient", "{err:?}");
    let url = handle.url();
    handle.shutdown().await;
    let gone =
        MockProvider::with_timeout(&url, ProviderContext::for_tests(), Duration::from_secs(1))
            .unwrap();
    assert_eq!(gone.ensure(&s).await.unwrap_err().class(), "Transient");
}

#[tokio::test]
async fn provisioning_then_ready() {
    let (handle, provider, nodes) = setup(1).await;
    handle
        .faults()
        .set_provisioning(Latency::Fixed { ms: 300 })
        .unwrap();
    let provider = provider.with_provisioning_poll(Duration::from_millis(100));
    let s = spec(&nodes);
    match provider.ensure(&s).await.unwrap() {
        EnsureOutcome::Provisioning {
            status: Some(status),
            retry_after,
        } => {
            assert!(
                status.ingress[0].ip.is_some(),
                "address published while provisioning"
            );
            assert_eq!(retry_after, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        provider.ensure(&s).await.unwrap(),
        EnsureOutcome::Ready(_)
    ));
}

#[tokio::test]
async fn list_owned_pages_through_everything() {
    let (handle, provider, _nodes) = setup(0).await;
    // Created in-process: 500 HTTP round trips would only slow the test down.
    for i in 0..(LIST_PAGE_SIZE + 3) {
        let s = conformance::test_spec("big", &format!("svc-{i}"), &format!("uid-{i:04}"), &[]);
        let req = serde_json::json!({
            "name": s.name,
            "tags": s.tags,
            "listeners": [{ "port": 80, "protocol": "TCP", "backend_port": 30080 }],
            "health_check": { "protocol": "TCP", "port": 30080 },
        });
        handle
            .cloud()
            .create(serde_json::from_value(req).unwrap())
            .unwrap();
    }
    ops(&handle);
    let listed = provider.list_owned("big").await.unwrap();
    assert_eq!(listed.len(), LIST_PAGE_SIZE + 3);
    assert_eq!(ops(&handle), [OP_LIST, OP_LIST]);
    assert!(
        listed
            .iter()
            .all(|r| r.service.namespace == "conformance" && r.uid.starts_with("uid-"))
    );
    assert!(provider.list_owned("nobody").await.unwrap().is_empty());
}

#[test]
fn endpoint_validation() {
    let ctx = ProviderContext::for_tests;
    assert!(MockProvider::new("http://127.0.0.1:1", ctx()).is_ok());
    assert!(MockProvider::new("http://127.0.0.1:1/prefix", ctx()).is_ok());
    assert!(MockProvider::new("https://cloud.example", ctx()).is_err());
    assert!(MockProvider::new("not a url", ctx()).is_err());
}

/// Flaws the kit must catch.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    DeleteFailsWhenGone,
    FullRebuildOnNodeSync,
    WritesOnEveryEnsure,
}

struct Broken(MockProvider, Flaw);

#[async_trait]
impl LoadBalancerProvider for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn record(&self, spec: &LoadBalancerSpec) -> Result<ProvisioningRecord, ProviderError> {
        self.0.record(spec)
    }
    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<EnsureOutcome, ProviderError> {
        if let Flaw::WritesOnEveryEnsure = self.1 {
            let d = Desired::from_spec(spec)?;
            if self.0.get_lb(&spec.name).await?.is_some() {
                self.0.update_lb(&spec.name, &d).await?;
            }
        }
        self.0.ensure(spec).await
    }
    async fn update_backends(&self, spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
        if let Flaw::FullRebuildOnNodeSync = self.1 {
            self.0.delete(&self.0.record(spec)?).await?;
            return self.0.ensure(spec).await.map(|_| ());
        }
        self.0.update_backends(spec).await
    }
    async fn get(
        &self,
        record: &ProvisioningRecord,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        self.0.get(record).await
    }
    async fn delete(&self, record: &ProvisioningRecord) -> Result<(), ProviderError> {
        if let Flaw::DeleteFailsWhenGone = self.1
            && self.0.get(record).await?.is_none()
        {
            return Err(ProviderError::NotFound("gone".into()));
        }
        self.0.delete(record).await
    }
    async fn list_owned(&self, cluster: &str) -> Result<Vec<ProvisioningRecord>, ProviderError> {
        self.0.list_owned(cluster).await
    }
}

#[tokio::test]
async fn kit_catches_broken_providers() {
    for flaw in [
        Flaw::DeleteFailsWhenGone,
        Flaw::FullRebuildOnNodeSync,
        Flaw::WritesOnEveryEnsure,
    ] {
        let (handle, provider, nodes) = setup(3).await;
        let (broken, cloud) = (Broken(provider, flaw), Inspector(handle.cloud().clone()));
        let run = tokio::spawn(async move {
            match flaw {
                Flaw::DeleteFailsWhenGone => {
                    conformance::delete_is_idempotent(&broken, &cloud, &nodes).await
                }
                Flaw::FullRebuildOnNodeSync => {
                    conformance::update_backends_sends_deltas(&broken, &cloud, &nodes).await
                }
                Flaw::WritesOnEveryEnsure => {
                    conformance::ensure_is_idempotent(&broken, &cloud, &nodes).await
                }
            }
        });
        let outcome = run.await;
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "the kit let {flaw:?} pass"
        );
    }
}

#[test]
fn equal_backend_sets_are_stored_once() {
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let mut cache = BackendCache::default();
    cache.insert("a", set(&["i-1", "i-2"]));
    cache.insert("b", set(&["i-1", "i-2"]));
    cache.insert("c", set(&["i-1"]));
    cache.insert("d", set(&["i-1"]));
    let (a, b, c, d) = (
        &cache.by_lb["a"],
        &cache.by_lb["b"],
        &cache.by_lb["c"],
        &cache.by_lb["d"],
    );
    assert!(Arc::ptr_eq(a, b) && Arc::ptr_eq(c, d) && !Arc::ptr_eq(a, c));
    assert_eq!(**a, set(&["i-1", "i-2"]));
}
