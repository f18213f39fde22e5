//! The provider conformance kit: behaviour every [`LoadBalancerProvider`] must show, checked
//! against a real (mock) cloud that a [`CloudInspector`] can look into.
//!
//! A provider's test suite starts its cloud, builds the inspector and calls [`run_all`] (or
//! single checks). Each check uses its own cluster name, cleans up after itself and panics with
//! a message saying what the contract requires when the provider falls short. The checks need a
//! cloud without a provisioning delay and at least three backend nodes valid in that cloud.

use std::time::Duration;

use async_trait::async_trait;

use crate::provider::{
    BackendNode, EnsureOutcome, LoadBalancerProvider, LoadBalancerSpec, ProvisioningRecord,
    ServiceKey,
};

/// One logged cloud API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEntry {
    /// The cloud's operation name, e.g. `CreateLoadBalancer`.
    pub operation: String,
    pub mutating: bool,
    /// What the call was about, as the cloud logs it: resource names, instance ids, addresses.
    /// The kit looks for node identifiers in it (split into tokens, compared exactly).
    pub detail: String,
}

/// A window into the cloud the provider talks to.
#[async_trait]
pub trait CloudInspector: Send + Sync {
    /// Calls logged since the last [`CloudInspector::clear_calls`], oldest first.
    async fn calls(&self) -> Vec<CallEntry>;
    async fn clear_calls(&self);
    /// Remove what the record names behind the provider's back.
    async fn delete_out_of_band(&self, record: &ProvisioningRecord);
    /// The next `count` calls of `operation` fail with a server error.
    async fn fail_next(&self, operation: &str, count: usize);
    /// Load balancers in the cloud tagged for `cluster`.
    async fn resource_count(&self, cluster: &str) -> usize;
}

/// Ensures until the provider says Ready (a cloud with a provisioning delay gets a few polls).
const ENSURE_ATTEMPTS: usize = 10;
const POLL_CAP: Duration = Duration::from_millis(200);

/// A plain TCP Service spec for the kit: port 80 -> NodePort 30080, TCP health check,
/// deterministic name and ownership tags as the controller would build them.
pub fn test_spec(cluster: &str, name: &str, uid: &str, nodes: &[BackendNode]) -> LoadBalancerSpec {
    LoadBalancerSpec::one_tcp_port(cluster, ServiceKey::new("conformance", name), uid, nodes)
}

/// Distinct in the first characters: names keep only a UID prefix (32 characters).
fn uid(n: u32) -> String {
    format!("{n:08x}-c0f0-4c0f-8c0f-c0f0c0f0c0f0")
}

fn record(provider: &dyn LoadBalancerProvider, spec: &LoadBalancerSpec) -> ProvisioningRecord {
    provider
        .record(spec)
        .unwrap_or_else(|e| panic!("record() rejected the kit's plain spec: {e}"))
}

/// Ensure until Ready; panics on an error.
pub async fn ensure_ready(provider: &dyn LoadBalancerProvider, spec: &LoadBalancerSpec) {
    for _ in 0..ENSURE_ATTEMPTS {
        match provider.ensure(spec).await {
            Ok(EnsureOutcome::Ready(status)) => {
                assert!(
                    !status.ingress.is_empty(),
                    "ensure answered Ready without an ingress address"
                );
                return;
            }
            Ok(EnsureOutcome::Provisioning { retry_after, .. }) => {
                tokio::time::sleep(retry_after.min(POLL_CAP)).await;
            }
            Err(e) => panic!("ensure({}) failed: {e:?}", spec.name),
        }
    }
    panic!(
        "ensure({}) still provisioning after {ENSURE_ATTEMPTS} attempts",
        spec.name
    );
}

async fn must_delete(provider: &dyn LoadBalancerProvider, record: &ProvisioningRecord) {
    provider
        .delete(record)
        .await
        .unwrap_or_else(|e| panic!("delete({:?}) failed: {e:?}", record.resources));
}

fn mutating(calls: &[CallEntry]) -> Vec<&CallEntry> {
    calls.iter().filter(|c| c.mutating).collect()
}

/// Identifiers a cloud may use for a node: its name, its address(es), and the last segment of
/// its providerID (the instance id).
fn node_identifiers(node: &BackendNode) -> Vec<String> {
    let mut ids = vec![node.name.clone()];
    if let Some(pid) = &node.provider_id {
        ids.push(pid.clone());
        if let Some(last) = pid.rsplit('/').next().filter(|s| !s.is_empty()) {
            ids.push(last.to_string());
        }
    }
    ids.extend(node.addresses.iter().map(ToString::to_string));
    ids
}

/// Whether the call detail names the node. Exact token match, so `node-1` is not found in
/// `node-10`.
pub fn mentions(detail: &str, node: &BackendNode) -> bool {
    let tokens: Vec<&str> = detail
        .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.:".contains(c)))
        .filter(|t| !t.is_empty())
        .collect();
    let ids = node_identifiers(node);
    tokens.iter().any(|t| ids.iter().any(|id| id == t))
        || ids
            .iter()
            .any(|id| id.contains('/') && detail.contains(id.as_str()))
}

fn require_nodes(nodes: &[BackendNode], n: usize) {
    assert!(
        nodes.len() >= n,
        "the conformance kit needs at least {n} backend nodes, got {}",
        nodes.len()
    );
}

/// Ensure twice: one load balancer, and the second (converged) ensure writes nothing.
pub async fn ensure_is_idempotent(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    let cluster = "conformance-idempotent";
    let spec = test_spec(cluster, "web", &uid(1), nodes);
    ensure_ready(provider, &spec).await;
    cloud.clear_calls().await;
    ensure_ready(provider, &spec).await;
    let writes = mutating(&cloud.calls().await)
        .into_iter()
        .map(|c| c.operation.clone())
        .collect::<Vec<_>>();
    assert!(
        writes.is_empty(),
        "a converged ensure must not write, but made {writes:?}"
    );
    assert_eq!(
        cloud.resource_count(cluster).await,
        1,
        "ensure twice must not duplicate the load balancer"
    );
    must_delete(provider, &record(provider, &spec)).await;
    assert_eq!(
        cloud.resource_count(cluster).await,
        0,
        "delete must remove the load balancer"
    );
}

/// A failure on the second write of an ensure leaves a half-built load balancer; the next ensure
/// must finish it, not build a second one.
pub async fn ensure_recovers_from_partial_failure(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    let cluster = "conformance-partial";
    // Learn which write comes second for a new Service, from a probe ensure.
    let probe = test_spec(cluster, "probe", &uid(2), nodes);
    cloud.clear_calls().await;
    ensure_ready(provider, &probe).await;
    let writes: Vec<String> = mutating(&cloud.calls().await)
        .into_iter()
        .map(|c| c.operation.clone())
        .collect();
    must_delete(provider, &record(provider, &probe)).await;
    let target = writes.get(1).or(writes.first()).cloned();
    let target = target.unwrap_or_else(|| panic!("ensure of a new Service made no write at all"));

    let spec = test_spec(cluster, "web", &uid(3), nodes);
    cloud.fail_next(&target, 1).await;
    let first = provider.ensure(&spec).await;
    assert!(
        first.is_err(),
        "ensure must report the failed {target} call, got {first:?}"
    );
    ensure_ready(provider, &spec).await;
    assert_eq!(
        cloud.resource_count(cluster).await,
        1,
        "the retried ensure must reuse the half-built load balancer"
    );
    let rec = record(provider, &spec);
    let status = provider
        .get(&rec)
        .await
        .unwrap_or_else(|e| panic!("get failed: {e:?}"));
    assert!(status.is_some(), "get must see the converged load balancer");
    must_delete(provider, &rec).await;
}

/// Delete twice, and delete after someone removed the load balancer out of band: all succeed.
pub async fn delete_is_idempotent(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    let cluster = "conformance-delete";
    let spec = test_spec(cluster, "web", &uid(4), nodes);
    let rec = record(provider, &spec);
    ensure_ready(provider, &spec).await;
    must_delete(provider, &rec).await;
    must_delete(provider, &rec).await;
    let gone = provider
        .get(&rec)
        .await
        .unwrap_or_else(|e| panic!("get after delete failed: {e:?}"));
    assert!(
        gone.is_none(),
        "get after delete must answer None, got {gone:?}"
    );

    ensure_ready(provider, &spec).await;
    cloud.delete_out_of_band(&rec).await;
    must_delete(provider, &rec).await;
    assert_eq!(cloud.resource_count(cluster).await, 0);
}

/// A node added or removed costs exactly one write per load balancer, naming only that node.
pub async fn update_backends_sends_deltas(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    require_nodes(nodes, 3);
    let cluster = "conformance-backends";
    let (old, new) = nodes.split_at(nodes.len() - 1);
    let new_node = &new[0];
    let mut spec = test_spec(cluster, "web", &uid(5), old);
    ensure_ready(provider, &spec).await;

    let check =
        |calls: Vec<CallEntry>, changed: &BackendNode, unchanged: &[BackendNode], what: &str| {
            let writes = mutating(&calls);
            assert_eq!(
                writes.len(),
                1,
                "{what} must cost exactly one write, got {writes:?}"
            );
            assert!(
                mentions(&writes[0].detail, changed),
                "the write must name the {what} node: {:?}",
                writes[0]
            );
            for n in unchanged {
                assert!(
                    !mentions(&writes[0].detail, n),
                    "the write must not name unchanged node {}: {:?}",
                    n.name,
                    writes[0]
                );
            }
        };

    cloud.clear_calls().await;
    spec.nodes = nodes.to_vec();
    provider
        .update_backends(&spec)
        .await
        .unwrap_or_else(|e| panic!("update_backends (add) failed: {e:?}"));
    check(cloud.calls().await, new_node, old, "added");

    cloud.clear_calls().await;
    let removed = &nodes[0];
    spec.nodes = nodes[1..].to_vec();
    provider
        .update_backends(&spec)
        .await
        .unwrap_or_else(|e| panic!("update_backends (remove) failed: {e:?}"));
    check(cloud.calls().await, removed, &nodes[1..], "removed");

    cloud.clear_calls().await;
    provider
        .update_backends(&spec)
        .await
        .unwrap_or_else(|e| panic!("update_backends (no change) failed: {e:?}"));
    let writes = mutating(&cloud.calls().await).len();
    assert_eq!(writes, 0, "an unchanged node set must not write");

    // The converged ensure agrees with what update_backends left.
    cloud.clear_calls().await;
    ensure_ready(provider, &spec).await;
    assert!(
        mutating(&cloud.calls().await).is_empty(),
        "ensure after update_backends must find nothing to do"
    );
    must_delete(provider, &record(provider, &spec)).await;
}

/// `list_owned` finds what ensure made, with the record delete needs, and only this cluster's.
pub async fn list_owned_finds_only_this_cluster(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    let (mine, theirs) = ("conformance-list-a", "conformance-list-b");
    let spec_a = test_spec(mine, "web", &uid(6), nodes);
    let spec_b = test_spec(theirs, "web", &uid(7), nodes);
    ensure_ready(provider, &spec_a).await;
    ensure_ready(provider, &spec_b).await;
    let listed = provider
        .list_owned(mine)
        .await
        .unwrap_or_else(|e| panic!("list_owned failed: {e:?}"));
    assert_eq!(
        listed.len(),
        1,
        "list_owned({mine}) must find exactly this cluster's one LB: {listed:?}"
    );
    let found = &listed[0];
    let want = record(provider, &spec_a);
    assert_eq!(
        (&found.uid, &found.service, &found.cluster),
        (&want.uid, &want.service, &want.cluster)
    );
    assert_eq!(
        found.resources, want.resources,
        "the listed record must name what delete needs"
    );
    must_delete(provider, found).await;
    assert_eq!(
        cloud.resource_count(mine).await,
        0,
        "deleting the listed record must remove everything"
    );
    assert_eq!(
        cloud.resource_count(theirs).await,
        1,
        "another cluster's LB must be untouched"
    );
    must_delete(provider, &record(provider, &spec_b)).await;
}

/// A Service deleted and recreated under the same name has a new UID, so it gets a new load
/// balancer; the old one is discoverable as an orphan and deletable from its listed record.
pub async fn recreated_service_leaves_discoverable_orphan(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: &[BackendNode],
) {
    let cluster = "conformance-orphan";
    let old = test_spec(cluster, "web", &uid(8), nodes);
    let new = test_spec(cluster, "web", &uid(9), nodes);
    assert_ne!(old.name, new.name, "names must derive from the UID");
    ensure_ready(provider, &old).await;
    ensure_ready(provider, &new).await;
    assert_eq!(
        cloud.resource_count(cluster).await,
        2,
        "a new UID must get its own load balancer"
    );
    let listed = provider
        .list_owned(cluster)
        .await
        .unwrap_or_else(|e| panic!("list_owned failed: {e:?}"));
    let orphan = listed.iter().find(|r| r.uid == old.uid);
    let orphan = orphan.unwrap_or_else(|| panic!("the old UID's LB must be listed: {listed:?}"));
    assert_eq!(
        orphan.service, old.service,
        "the orphan's record must name its Service"
    );
    must_delete(provider, orphan).await;
    assert_eq!(cloud.resource_count(cluster).await, 1);
    let status = provider
        .get(&record(provider, &new))
        .await
        .unwrap_or_else(|e| panic!("get failed: {e:?}"));
    assert!(
        status.is_some(),
        "deleting the orphan must not touch the live LB"
    );
    must_delete(provider, &record(provider, &new)).await;
}

/// Every check, one after another.
pub async fn run_all(
    provider: &dyn LoadBalancerProvider,
    cloud: &dyn CloudInspector,
    nodes: Vec<BackendNode>,
) {
    ensure_is_idempotent(provider, cloud, &nodes).await;
    ensure_recovers_from_partial_failure(provider, cloud, &nodes).await;
    delete_is_idempotent(provider, cloud, &nodes).await;
    update_backends_sends_deltas(provider, cloud, &nodes).await;
    list_owned_finds_only_this_cluster(provider, cloud, &nodes).await;
    recreated_service_leaves_discoverable_orphan(provider, cloud, &nodes).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pid: &str) -> BackendNode {
        BackendNode {
            name: name.into(),
            provider_id: Some(pid.into()),
            addresses: vec!["10.0.0.11".parse().unwrap()],
            zone: None,
        }
    }

    #[test]
    fn mentions_matches_whole_tokens() {
        let n1 = node("node-1", "mock:///zone-a/i-0000000000000001");
        let n10 = node("node-10", "mock:///zone-a/i-0000000000000010");
        let table = [
            ("add=i-0000000000000001 remove=", &n1, true),
            ("add=i-0000000000000010 remove=", &n1, false),
            ("add=i-0000000000000010 remove=", &n10, true),
            ("targets: node-10", &n1, false),
            ("Targets.member.1.Id=10.0.0.11", &n1, true),
            (
                "instances=projects/p/zones/zone-a/instances/i-0000000000000001",
                &n1,
                true,
            ),
            ("", &n1, false),
        ];
        for (detail, node, want) in table {
            assert_eq!(mentions(detail, node), want, "{detail:?} {}", node.name);
        }
    }

    #[test]
    fn test_spec_is_deterministic() {
        let a = test_spec("c", "web", "uid-1", &[]);
        assert_eq!(a, test_spec("c", "web", "uid-1", &[]));
        assert_eq!(a.tags[crate::naming::TAG_CLUSTER], "c");
        assert_ne!(a.name, test_spec("c", "web", "uid-2", &[]).name);
    }
}
