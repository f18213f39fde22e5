//! The controller: kube-runtime wiring for Services, plus node sync, drift check and orphan
//! sweep as background tasks, all gated on holding the leader Lease.

mod background;
pub mod coalesce;
pub mod events;
mod reconcile;
pub mod state;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service, ServiceSpec};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::ControllerConfig;
use crate::health::Health;
use crate::leader::LeaderElector;
use crate::metrics::{Metrics, ReconcileLabels};
use crate::naming::FINALIZER;
use crate::provider::{LoadBalancerProvider, ProviderError, ServiceKey};

use self::state::{AppliedMap, Backends, Backoffs, KeyedLocks};

/// Which spec last converged, so a restart can trust a Ready Service without a cloud call.
pub const FINGERPRINT_ANNOTATION: &str = crate::naming::APPLIED_FINGERPRINT;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{step}: {source}")]
    Kube {
        step: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Internal(String),
}

impl ReconcileError {
    pub fn class(&self) -> &'static str {
        match self {
            ReconcileError::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => "Conflict",
            ReconcileError::Kube { .. } => "KubeApi",
            ReconcileError::Provider(e) => e.class(),
            ReconcileError::Internal(_) => "Internal",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("lost the leader lease; stopping so a standby takes over")]
    LostLease,
    #[error("the {0} watch ended before its cache synced")]
    CacheSync(&'static str),
}

/// Shared by every reconcile and background task.
pub struct Context {
    pub client: Client,
    pub provider: Arc<dyn LoadBalancerProvider>,
    pub config: ControllerConfig,
    pub metrics: Arc<Metrics>,
    pub services: Store<Service>,
    pub nodes: Store<Node>,
    pub applied: AppliedMap,
    pub locks: KeyedLocks,
    pub backoffs: Backoffs,
    pub backends: Backends,
    pub events: events::Recorder,
    /// Mixed into every fingerprint so switching providers re-ensures everything.
    pub provider_salt: u64,
    in_flight: AtomicU64,
}

impl Context {
    fn metrics_reconcile(&self, action: &str, result: &str) {
        let labels = ReconcileLabels {
            action: action.to_string(),
            result: result.to_string(),
        };
        self.metrics.reconciles.get_or_create(&labels).inc();
        if result != "ok" {
            self.metrics.reconcile_errors.get_or_create(&labels).inc();
        }
    }

    /// Bound a whole provider operation (each call inside has its own, shorter timeout).
    async fn with_timeout<T>(
        &self,
        fut: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let limit = self.config.cloud_call_timeout() * 10;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::transient(format!(
                "provider operation did not finish within {}s",
                limit.as_secs()
            ))),
        }
    }

    fn observe_time_to_address(&self, svc: &Service) {
        let Some(created) = svc.metadata.creation_timestamp.as_ref() else {
            return;
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        if let Ok(span) = now.since(created.0)
            && let Ok(d) = span.total(k8s_openapi::jiff::Unit::Second)
        {
            self.metrics.create_to_address.observe(d.max(0.0));
        }
    }

    fn update_queue_metrics(&self) {
        let depth = self.in_flight.load(Ordering::Relaxed) as i64 + self.backoffs.len() as i64;
        self.metrics.queue_depth.set(depth);
        self.metrics.managed_services.set(self.applied.len() as i64);
    }
}

pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.namespace().unwrap_or_else(|| "default".to_string()),
        svc.name_any(),
    )
}

/// The claim rule: `type: LoadBalancer`, and either our class or (if we take them) no class.
pub fn claims(svc: &Service, config: &ControllerConfig) -> bool {
    crate::spec::ClaimPolicy {
        class: config.load_balancer_class.clone(),
        claim_unclassed: config.claim_unclassed,
    }
    .claims(svc)
}

/// Strip what the controller never reads from cached Services (managedFields, the
/// last-applied annotation), so 10,000 Services stay cheap to hold. A Service that is not of
/// type LoadBalancer keeps only its identity, type and class: the cache only has to say that
/// it exists (sweep) and that it is not ours (claims); every reconcile reads the live object.
fn slim_service(svc: &mut Service) {
    svc.metadata.managed_fields = None;
    if let Some(a) = svc.metadata.annotations.as_mut() {
        a.remove(crate::annotations::LAST_APPLIED);
    }
    let spec = svc.spec.get_or_insert_with(Default::default);
    if spec.type_.as_deref() != Some("LoadBalancer") {
        *spec = ServiceSpec {
            type_: spec.type_.take(),
            load_balancer_class: spec.load_balancer_class.take(),
            ..ServiceSpec::default()
        };
        svc.metadata.labels = None;
        svc.metadata.annotations = None;
        svc.status = None;
    }
}

/// Nodes are the biggest objects in a cluster; keep only what eligibility and backends need.
fn slim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    // Labels: only the exclude label and the zone labels are ever read (crate::nodes).
    if let Some(labels) = node.metadata.labels.as_mut() {
        labels.retain(|k, _| {
            k == crate::nodes::EXCLUDE_BALANCER_LABEL
                || k == crate::nodes::ZONE_LABEL
                || k == crate::nodes::LEGACY_ZONE_LABEL
        });
    }
    if let Some(spec) = node.spec.as_mut() {
        spec.pod_cidr = None;
        spec.pod_cidrs = None;
        spec.config_source = None;
        spec.external_id = None;
        // Only the autoscaler's removal taint matters for eligibility.
        if let Some(taints) = spec.taints.as_mut() {
            taints.retain(|t| t.key == crate::nodes::TAINT_TO_BE_DELETED);
        }
    }
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.conditions = None;
        status.capacity = None;
        status.allocatable = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
        status.daemon_endpoints = None;
        status.node_info = None;
        status.config = None;
    }
}

fn error_policy(svc: Arc<Service>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = service_key(&svc);
    ctx.metrics_reconcile("apply", err.class());
    match err {
        // Someone wrote the Service between our read and our write: just look again.
        ReconcileError::Kube {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 || s.code == 404 => Action::requeue(Duration::from_millis(200)),
        _ => {
            warn!(service = %key, error = %err, "reconcile failed");
            Action::requeue(ctx.backoffs.next_delay(&key, 0))
        }
    }
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "frontdesk".to_string());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Aborts a spawned task when dropped, so tasks never outlive the controller that started them.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run the controller until `shutdown` fires (Ok) or the lease is lost (Err).
pub async fn run(
    client: Client,
    provider: Arc<dyn LoadBalancerProvider>,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let id = identity();
    // A standby is healthy and ready: it serves /metrics and waits for the lease.
    health.set_ready(true);
    let elector = config.leader_election.enabled.then(|| {
        let le = &config.leader_election;
        LeaderElector::new(
            client.clone(),
            &le.lease_namespace,
            &le.lease_name,
            &id,
            Duration::from_secs_f64(le.lease_duration_seconds),
            Duration::from_secs_f64(le.renew_interval_seconds),
        )
    });
    let (lead_tx, mut lead_rx) = tokio::sync::watch::channel(true);
    let mut _renewal = None;
    if let Some(elector) = &elector {
        tokio::select! {
            _ = elector.acquire() => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        let e = elector.clone();
        // Tied to this future: if the controller is dropped, renewals stop with it.
        _renewal = Some(AbortOnDrop(tokio::spawn(
            async move { e.hold(lead_tx).await },
        )));
    }
    metrics.leader.set(1);
    let result = lead(
        client,
        provider,
        config,
        metrics.clone(),
        shutdown.clone(),
        &mut lead_rx,
        &id,
    )
    .await;
    metrics.leader.set(0);
    if let Some(elector) = &elector {
        elector.release().await;
    }
    result
}

async fn lead(
    client: Client,
    provider: Arc<dyn LoadBalancerProvider>,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    lead_rx: &mut tokio::sync::watch::Receiver<bool>,
    id: &str,
) -> Result<(), ControllerError> {
    let stop = shutdown.child_token();

    // Nodes: a slimmed reflector; every change wakes node sync.
    let (nodes, node_writer) = reflector::store::<Node>();
    let node_changed = Arc::new(tokio::sync::Notify::new());
    let node_stream = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()).modify(slim_node),
    )
    .default_backoff()
    .touched_objects();
    let _node_watch = {
        let notify = node_changed.clone();
        let stop = stop.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut stream = std::pin::pin!(node_stream.take_until(stop.cancelled_owned()));
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(_) => notify.notify_one(),
                    Err(e) => warn!(error = %e, "node watch error"),
                }
            }
        }))
    };

    let (services, svc_writer) = reflector::store::<Service>();
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(slim_service),
    )
    .default_backoff()
    .touched_objects();

    tokio::select! {
        r = nodes.wait_until_ready() => r.map_err(|_| ControllerError::CacheSync("node"))?,
        _ = stop.cancelled() => return Ok(()),
    }
    let backends = Backends::default();
    backends.update(background::eligible_from(&nodes));

    let provider_salt = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        provider.name().hash(&mut h);
        h.finish()
    };
    let ctx = Arc::new(Context {
        events: events::Recorder::new(client.clone(), id),
        client,
        provider,
        backoffs: Backoffs::new(config.backoff_base(), config.backoff_max()),
        config: config.clone(),
        metrics,
        services: services.clone(),
        nodes,
        applied: AppliedMap::default(),
        locks: KeyedLocks::default(),
        backends,
        provider_salt,
        in_flight: AtomicU64::new(0),
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(background::node_sync(
        ctx.clone(),
        node_changed,
        stop.clone(),
    ));
    tasks.spawn(background::drift(ctx.clone(), stop.clone()));
    tasks.spawn(background::sweep(ctx.clone(), stop.clone()));
    tasks.spawn(background::queue_metrics(ctx.clone(), stop.clone()));

    let controller_ctx = ctx.clone();
    let stop_for_controller = stop.clone();
    let controller = Controller::for_stream(svc_stream, services)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(async move { stop_for_controller.cancelled().await })
        .run(
            |svc, ctx: Arc<Context>| async move {
                ctx.in_flight.fetch_add(1, Ordering::Relaxed);
                let r = reconcile::reconcile(svc, ctx.clone()).await;
                ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
                r
            },
            error_policy,
            controller_ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        });
    info!(finalizer = FINALIZER, cluster = %config.cluster_name, "controller started");

    let outcome = tokio::select! {
        _ = controller => Ok(()),
        changed = lead_rx.wait_for(|leading| !leading) => {
            if changed.is_ok() { Err(ControllerError::LostLease) } else { Ok(()) }
        }
    };
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    if let Err(e) = &outcome {
        error!(error = %e, "controller stopping");
    }
    outcome
}
