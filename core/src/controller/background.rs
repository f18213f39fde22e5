//! Background work, always at `Priority::Background` so user-visible work goes first:
//! node sync (backend deltas only), the drift check, the orphan sweep, queue metrics.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::coalesce::{Coalescer, Decision, Observation};
use super::events::{self, EventType};
use super::status::{self, DesiredCondition};
use super::{Context, claims};
use crate::metrics::ReconcileLabels;
use crate::provider::{EnsureOutcome, ProviderError, ServiceKey, withdrawable};
use crate::ratelimit::{PRIORITY, Priority};
use crate::spec::{SpecInput, build_spec};

/// How often node sync looks for load balancers still behind the current node set (retries
/// of failed updates), even without a node event.
const NODE_SYNC_RECHECK: Duration = Duration::from_secs(10);
/// How often node events are turned into an eligible set at most.
const NODE_OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// After a pass with failed updates the next one comes after this, doubling per failed pass
/// up to `NODE_SYNC_RECHECK`: one stray 429 must not leave its load balancer behind for 10 s.
const NODE_SYNC_RETRY: Duration = Duration::from_secs(1);
/// Throttled updates are retried inside the pass this often (the budget was already
/// penalised by `Retry-After`, so the retry waits for the cloud's bucket).
const THROTTLED_ATTEMPTS: u32 = 3;

fn count(ctx: &Context, action: &str, result: &str) {
    let labels = ReconcileLabels {
        action: action.to_string(),
        result: result.to_string(),
    };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    if !matches!(result, "ok" | "found" | "deleted" | "withdrawn") {
        ctx.metrics.reconcile_errors.get_or_create(&labels).inc();
    }
}

fn cached_service(ctx: &Context, key: &ServiceKey) -> Option<Arc<Service>> {
    ctx.services
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
}

/// A converged Service as it is now, with the spec for the current backend set.
struct Current {
    svc: Arc<Service>,
    spec: crate::provider::LoadBalancerSpec,
    version: u64,
    nodes: Arc<Vec<crate::provider::BackendNode>>,
}

/// The cached Service behind `applied` (same UID, still claimed) and its spec; `None` when
/// the Service changed hands or its spec no longer builds (the reconcile reports that).
fn current(ctx: &Context, key: &ServiceKey, applied: &super::state::Applied) -> Option<Current> {
    let svc = cached_service(ctx, key)?;
    if svc.uid().as_deref() != Some(applied.uid.as_str()) || !claims(&svc, &ctx.config) {
        return None;
    }
    let (version, nodes) = ctx.backends.current();
    let input = SpecInput {
        cluster: &ctx.config.cluster_name,
        service: &svc,
        nodes: &nodes,
        needs_node_ports: ctx.provider.capabilities().needs_node_ports,
    };
    let spec = build_spec(&input).ok()?;
    Some(Current {
        svc,
        spec,
        version,
        nodes,
    })
}

fn jitter(d: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.8..1.2);
    d.mul_f64(f)
}

/// Debounced node sync: recompute the eligible set, then send each load balancer that is
/// behind only its backend delta (`update_backends`), never a full ensure.
///
/// The eligible set is tracked by its own task, so it stays current while a pass runs: a
/// pass through many load balancers is bound by the cloud's write budget and can take most
/// of a minute; load balancers later in the pass then get the newest node set at once
/// instead of an outdated one plus a second pass (S2 with nodes joining every 6 s).
pub(super) async fn node_sync(ctx: Arc<Context>, changed: Arc<Notify>, stop: CancellationToken) {
    let moved = Arc::new(Notify::new());
    let _tracker = super::AbortOnDrop(tokio::spawn(track_eligible(
        ctx.clone(),
        changed,
        moved.clone(),
        stop.clone(),
    )));
    let mut failed_passes: u32 = 0;
    loop {
        let recheck = if failed_passes == 0 {
            NODE_SYNC_RECHECK
        } else {
            NODE_SYNC_RETRY
                .saturating_mul(1 << (failed_passes - 1).min(8))
                .min(NODE_SYNC_RECHECK)
        };
        tokio::select! {
            _ = moved.notified() => {}
            _ = tokio::time::sleep(recheck) => {}
            _ = stop.cancelled() => return,
        }
        let version = ctx.backends.current().0;
        let behind: Vec<ServiceKey> = ctx
            .applied
            .snapshot()
            .into_iter()
            .filter(|(_, a)| a.ready && a.nodes_version != version)
            .map(|(k, _)| k)
            .collect();
        if behind.is_empty() {
            failed_passes = 0;
            continue;
        }
        let started = Instant::now();
        let total = behind.len();
        let limit = Arc::new(Semaphore::new(ctx.config.concurrency as usize));
        let mut set = tokio::task::JoinSet::new();
        for key in behind {
            let (ctx, limit) = (ctx.clone(), limit.clone());
            set.spawn(PRIORITY.scope(Priority::Background, async move {
                let Ok(_permit) = limit.acquire().await else {
                    return true;
                };
                if urgent(&ctx, &key) {
                    return update_one(&ctx, &key).await;
                }
                // Not urgent: wait while a newer node set is held back, and withdraw a call
                // still queued for the budget when one comes up meanwhile (it would carry
                // the outdated set and be repeated).
                let limit = ctx
                    .config
                    .node_sync_max_hold()
                    .saturating_add(NODE_SYNC_RECHECK);
                ctx.backends.wait_unheld(limit).await;
                let backends = ctx.clone();
                let open: Arc<dyn Fn() -> bool + Send + Sync> =
                    Arc::new(move || !backends.backends.is_held());
                withdrawable(open, update_one(&ctx, &key)).await
            }));
        }
        let mut failed = 0usize;
        while let Some(done) = set.join_next().await {
            if !matches!(done, Ok(true)) {
                failed += 1;
            }
        }
        failed_passes = if failed == 0 { 0 } else { failed_passes + 1 };
        debug!(took = ?started.elapsed(), total, failed, "node sync pass done");
    }
}

/// Recompute the eligible node set after each (debounced) burst of node events, and publish
/// it to the pass loop when the coalescing policy says so (removals at once, joins held
/// while they keep coming; see [`super::coalesce`]).
async fn track_eligible(
    ctx: Arc<Context>,
    changed: Arc<Notify>,
    moved: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut coalescer = Coalescer::new(
        ctx.config.node_sync_debounce(),
        ctx.config.node_sync_add_hold(),
        ctx.config.node_sync_max_hold(),
    );
    let mut observed = ctx.backends.current().1;
    let mut wake_at: Option<Instant> = None;
    loop {
        let recheck = wake_at.unwrap_or_else(|| Instant::now() + NODE_SYNC_RECHECK);
        tokio::select! {
            _ = changed.notified() => {
                // Node heartbeats wake this constantly on a big cluster: look at most this
                // often (the coalescer does the debouncing, from when the set last changed).
                tokio::time::sleep(NODE_OBSERVE_EVERY).await;
            }
            _ = tokio::time::sleep_until(recheck) => {}
            _ = stop.cancelled() => {
                ctx.backends.set_held(false);
                return;
            }
        }
        let now_set = eligible_from(&ctx.nodes);
        let pending = *ctx.backends.current().1 != now_set;
        let observation = Observation {
            changed: *observed != now_set,
            pending,
            // Only a pending set can remove anything (this runs every 200 ms on a busy cluster).
            removes: pending && ctx.backends.would_remove(&now_set),
        };
        if observation.changed {
            observed = Arc::new(now_set.clone());
        }
        wake_at = None;
        match coalescer.observe(Instant::now(), observation) {
            Decision::Idle => ctx.backends.set_held(false),
            Decision::HoldUntil(at) => {
                if observation.changed {
                    debug!(
                        eligible = now_set.len(),
                        hold = ?at.saturating_duration_since(Instant::now()),
                        "eligible nodes changed; holding the update (joins keep coming, or a burst is still settling)"
                    );
                }
                ctx.backends.set_held(true);
                wake_at = Some(at);
            }
            Decision::Publish => {
                let (version, _) = ctx.backends.update(now_set);
                ctx.backends.set_held(false);
                info!(
                    version,
                    eligible = ctx.backends.current().1.len(),
                    "eligible node set changed"
                );
                moved.notify_one();
            }
        }
    }
}

/// The eligible backends of the cached nodes, without copying every Node first (5,000 Node
/// clones every pass was the biggest transient allocation of an idle controller).
pub(super) fn eligible_from(nodes: &Store<Node>) -> Vec<crate::provider::BackendNode> {
    let mut out: Vec<_> = nodes
        .state()
        .iter()
        .flat_map(|n| crate::nodes::eligible_nodes(std::slice::from_ref(n.as_ref())))
        .collect();
    // The same order and uniqueness `eligible_nodes` gives a whole slice.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// A load balancer that still has a node which was removed (or changed) is updated even
/// while newer joins are held: traffic to a node that is gone is an outage.
fn urgent(ctx: &Context, key: &ServiceKey) -> bool {
    ctx.applied
        .get(key)
        .is_some_and(|a| a.nodes_version < ctx.backends.removal_version())
}

/// Bring one load balancer's backends to the current node set; false when the update failed
/// (the pass loop then comes back sooner).
async fn update_one(ctx: &Context, key: &ServiceKey) -> bool {
    let _guard = ctx.locks.lock(key).await;
    let Some(applied) = ctx.applied.get(key) else {
        return true;
    };
    if !applied.ready || applied.nodes_version == ctx.backends.current().0 {
        return true;
    }
    let Some(Current {
        svc,
        spec,
        version,
        nodes,
    }) = current(ctx, key, &applied)
    else {
        return true;
    };
    let mut attempt = 1;
    let result = loop {
        match ctx.with_timeout(ctx.provider.update_backends(&spec)).await {
            Err(ProviderError::Throttled { .. }) if attempt < THROTTLED_ATTEMPTS => {
                count(ctx, "node_sync", "Throttled");
                attempt += 1;
            }
            other => break other,
        }
    };
    match result {
        // A newer node set came up while this write waited for the budget: it stays behind
        // and the pass after the release brings it the newer set in one write.
        Err(ProviderError::Withdrawn) => {
            count(ctx, "node_sync", "withdrawn");
            true
        }
        Ok(()) => {
            ctx.applied.set_nodes_version(key, &applied.uid, version);
            count(ctx, "node_sync", "ok");
            if nodes.is_empty() {
                ctx.events
                    .publish(
                        &svc,
                        EventType::Warning,
                        events::UNAVAILABLE,
                        "There are no available nodes for LoadBalancer",
                    )
                    .await;
            } else {
                ctx.events
                    .publish(
                        &svc,
                        EventType::Normal,
                        events::UPDATED,
                        "Updated load balancer with new hosts",
                    )
                    .await;
            }
            true
        }
        Err(e) => {
            count(ctx, "node_sync", e.class());
            let names = nodes.iter().map(|n| n.name.clone()).collect();
            let message = format!(
                "Error updating load balancer with new hosts {}, error: {e}",
                events::node_names_for_event(names)
            );
            ctx.events
                .publish(&svc, EventType::Warning, events::UPDATE_FAILED, &message)
                .await;
            warn!(service = %key, error = %e, "backend update failed; retrying on the next pass");
            false
        }
    }
}

/// The drift check: every load balancer is re-ensured (read, compare, repair) once per
/// interval, spread evenly so the cloud sees a steady trickle of reads, never a burst.
pub(super) async fn drift(ctx: Arc<Context>, stop: CancellationToken) {
    let interval = Duration::from_secs_f64(ctx.config.drift_interval_seconds);
    if interval.is_zero() {
        return;
    }
    // The first pass comes soon after start: it verifies what a restart trusted.
    let first = jitter(interval.min(Duration::from_secs(30)));
    tokio::select! { _ = tokio::time::sleep(first) => {}, _ = stop.cancelled() => return }
    loop {
        let pass_start = Instant::now();
        let entries: Vec<ServiceKey> = ctx
            .applied
            .snapshot()
            .into_iter()
            .filter(|(_, a)| a.ready)
            .map(|(k, _)| k)
            .collect();
        let pace = interval / (entries.len().max(1) as u32);
        for key in entries {
            PRIORITY
                .scope(Priority::Background, check_one(&ctx, &key))
                .await;
            tokio::select! { _ = tokio::time::sleep(jitter(pace)) => {}, _ = stop.cancelled() => return }
        }
        let rest = interval.saturating_sub(pass_start.elapsed());
        tokio::select! { _ = tokio::time::sleep(jitter(rest.max(Duration::from_secs(1)))) => {}, _ = stop.cancelled() => return }
    }
}

async fn check_one(ctx: &Context, key: &ServiceKey) {
    let _guard = ctx.locks.lock(key).await;
    let Some(applied) = ctx.applied.get(key) else {
        return;
    };
    if !applied.ready {
        return;
    }
    let Some(Current {
        svc, spec, version, ..
    }) = current(ctx, key, &applied)
    else {
        return;
    };
    match ctx.with_timeout(ctx.provider.ensure(&spec)).await {
        Ok(EnsureOutcome::Ready(lb)) => {
            ctx.applied.set_nodes_version(key, &applied.uid, version);
            count(ctx, "drift", "ok");
            let ingress = status::to_ingress(&lb);
            if let Some(patch) = status::status_patch(&svc, Some(&ingress), None) {
                info!(service = %key, "drift: published address differed from the cloud; fixed");
                let api: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
                if let Err(e) = api
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    warn!(service = %key, error = %e, "drift: status patch failed");
                }
            }
        }
        Ok(EnsureOutcome::Provisioning { .. }) => count(ctx, "drift", "provisioning"),
        Err(e) => {
            count(ctx, "drift", e.class());
            warn!(service = %key, error = %e, "drift check failed; the next reconcile re-ensures");
            // Flip the condition: the Service changes, so the controller re-ensures it with
            // user priority and the usual backoff.
            ctx.applied.invalidate(key);
            let cond = DesiredCondition::new(
                false,
                e.class(),
                format!("Error syncing load balancer: {e}"),
            );
            if let Some(patch) = status::status_patch(&svc, None, Some(&cond)) {
                let api: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
                let _ = api
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }
    }
}

/// The orphan sweep: resources tagged for this cluster whose Service UID no longer exists are
/// deleted once they have been seen orphaned for the grace period (or only reported, in
/// dry-run mode).
pub(super) async fn sweep(ctx: Arc<Context>, stop: CancellationToken) {
    let interval = Duration::from_secs_f64(ctx.config.sweep_interval_seconds);
    if interval.is_zero() {
        return;
    }
    let grace = Duration::from_secs_f64(ctx.config.sweep_grace_seconds);
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    let mut wait = jitter(interval.min(Duration::from_secs(60)));
    loop {
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = stop.cancelled() => return }
        wait = jitter(interval);
        let owned = match PRIORITY
            .scope(
                Priority::Background,
                ctx.with_timeout(ctx.provider.list_owned(&ctx.config.cluster_name)),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                count(&ctx, "sweep", e.class());
                warn!(error = %e, "orphan sweep: listing owned resources failed");
                continue;
            }
        };
        let live: HashSet<String> = ctx
            .services
            .state()
            .iter()
            .filter_map(|s| s.uid())
            .collect();
        let now = Instant::now();
        let mut orphans = HashSet::new();
        for record in owned {
            if live.contains(&record.uid) {
                continue;
            }
            orphans.insert(record.uid.clone());
            let seen = *first_seen.entry(record.uid.clone()).or_insert(now);
            if now.duration_since(seen) < grace {
                continue;
            }
            count(&ctx, "sweep", "found");
            if ctx.config.sweep_dry_run {
                warn!(service = %record.service, uid = %record.uid, "orphan sweep (dry run): would delete");
                continue;
            }
            let r = PRIORITY
                .scope(
                    Priority::Background,
                    ctx.with_timeout(ctx.provider.delete(&record)),
                )
                .await;
            match r {
                Ok(()) => {
                    count(&ctx, "sweep", "deleted");
                    info!(service = %record.service, uid = %record.uid, "orphan sweep: deleted");
                }
                Err(e) => {
                    count(&ctx, "sweep", e.class());
                    warn!(service = %record.service, error = %e, "orphan sweep: delete failed");
                }
            }
        }
        first_seen.retain(|uid, _| orphans.contains(uid));
    }
}

pub(super) async fn queue_metrics(ctx: Arc<Context>, stop: CancellationToken) {
    loop {
        ctx.update_queue_metrics();
        tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = stop.cancelled() => return }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Service};
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::eligible_from;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "annotations": {"a": "b"}},
            "spec": {"providerID": format!("mock://{name}"), "podCIDR": "10.0.0.0/24", "taints": taints},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.1"}],
                       "images": [{"names": ["x"], "sizeBytes": 1}]},
        }))
        .unwrap()
    }

    #[test]
    fn eligible_from_the_store_matches_eligible_nodes_of_a_slice() {
        let nodes = vec![
            node(
                "b",
                json!({"topology.kubernetes.io/zone": "z1", "kubernetes.io/os": "linux"}),
                json!([]),
            ),
            node("a", json!({}), json!([])),
            node(
                "c",
                json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"}),
                json!([]),
            ),
            node(
                "d",
                json!({}),
                json!([{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]),
            ),
        ];
        let (store, mut writer) = reflector::store::<Node>();
        for n in &nodes {
            let mut slim = n.clone();
            super::super::slim_node(&mut slim);
            writer.apply_watcher_event(&watcher::Event::Apply(slim));
        }
        let from_store = eligible_from(&store);
        assert_eq!(from_store, crate::nodes::eligible_nodes(&nodes));
        let names: Vec<&str> = from_store.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(from_store[1].zone.as_deref(), Some("z1"));
    }

    #[test]
    fn slim_node_keeps_only_what_eligibility_reads() {
        let mut n = node(
            "a",
            json!({"topology.kubernetes.io/zone": "z1", "kubernetes.io/os": "linux"}),
            json!([{"key": "other", "effect": "NoSchedule"}]),
        );
        super::super::slim_node(&mut n);
        let labels = n.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.len(), 1, "{labels:?}");
        let spec = n.spec.as_ref().unwrap();
        assert!(spec.pod_cidr.is_none() && spec.taints.as_ref().unwrap().is_empty());
        assert_eq!(spec.provider_id.as_deref(), Some("mock://a"));
        let status = n.status.as_ref().unwrap();
        assert!(status.images.is_none() && status.addresses.is_some());
        assert!(n.metadata.annotations.is_none());
    }

    #[test]
    fn slim_service_strips_services_that_are_not_load_balancers() {
        let svc = |type_: &str| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": "s", "namespace": "d", "uid": "u1", "labels": {"a": "b"},
                             "annotations": {"frontdesk.dev/provisioning-record": "{}"}},
                "spec": {"type": type_, "loadBalancerClass": "c", "selector": {"app": "x"},
                         "ports": [{"port": 80}]},
            }))
            .unwrap()
        };
        let mut plain = svc("ClusterIP");
        super::super::slim_service(&mut plain);
        let spec = plain.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.load_balancer_class.as_deref(), Some("c"));
        assert!(spec.ports.is_none() && spec.selector.is_none());
        assert!(plain.metadata.labels.is_none());
        assert_eq!(plain.metadata.uid.as_deref(), Some("u1"));

        let mut lb = svc("LoadBalancer");
        super::super::slim_service(&mut lb);
        assert!(lb.spec.as_ref().unwrap().ports.is_some());
        assert!(lb.metadata.annotations.as_ref().unwrap().len() == 1);
    }
}
