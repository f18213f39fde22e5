//! One Service's reconcile: converge its load balancer (apply) or remove it (cleanup).
//!
//! Ordering that makes crashes harmless:
//! 1. the condition goes to Provisioning before anything else changes, so a restart never
//!    trusts a half-applied spec;
//! 2. finalizer, provisioning record and spec fingerprint are written in one patch before the
//!    first cloud call, so nothing the cloud creates is ever unnamed;
//! 3. the address is published only after `ensure` answered Ready (or Provisioning with an
//!    address), and the fingerprint then says which spec it belongs to.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::events::{self, EventType};
use super::state::Applied;
use super::status::{self, DesiredCondition, reason};
use super::{Context, FINGERPRINT_ANNOTATION, ReconcileError, claims, service_key};
use crate::naming::{self, FINALIZER, RECORD_ANNOTATION};
use crate::provider::{EnsureOutcome, ProviderError, ProvisioningRecord};
use crate::ratelimit::{PRIORITY, Priority};
use crate::spec::{SpecInput, build_spec, lb_fingerprint};

/// Entry point called by kube-runtime for every Service change.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let key = service_key(&svc);
    // A Service we do not claim, that carries no finalizer of ours and holds nothing of ours
    // needs no live read: a relist re-triggers every Service of the cluster (10,000 GETs).
    // Our finalizer goes on with the record in one patch, so without it there is nothing to
    // clean up; a cache lagging behind such a patch is followed by that patch's own event.
    if !claims(&svc, &ctx.config)
        && !svc.finalizers().iter().any(|f| f == FINALIZER)
        && ctx.applied.get(&key).is_none()
    {
        ctx.metrics_reconcile("ignore", "ok");
        return Ok(Action::await_change());
    }
    let _guard = ctx.locks.lock(&key).await;
    // Always work on the live object: the cache may lag behind our own last write.
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let live = match api.get_opt(&key.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ctx.applied.remove(&key);
            return Ok(Action::await_change());
        }
        Err(e) => {
            return Err(ReconcileError::Kube {
                step: "read service",
                source: e,
            });
        }
    };
    let result = PRIORITY
        .scope(Priority::User, reconcile_live(&live, &api, &ctx))
        .await;
    match &result {
        Ok(_) => ctx.metrics_reconcile(
            if claims(&live, &ctx.config) {
                "apply"
            } else {
                "cleanup"
            },
            "ok",
        ),
        Err(e) => ctx.metrics_reconcile("apply", e.class()),
    }
    result
}

async fn reconcile_live(
    svc: &Service,
    api: &Api<Service>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let key = service_key(svc);
    let record = naming::read_record(svc)
        .ok()
        .flatten()
        .filter(|r| r.cluster == ctx.config.cluster_name);
    if svc.metadata.deletion_timestamp.is_some() || !claims(svc, &ctx.config) {
        return match record {
            Some(record) => cleanup(svc, api, ctx, record).await,
            None => {
                ctx.applied.remove(&key);
                Ok(Action::await_change())
            }
        };
    }
    apply(svc, api, ctx, record).await
}

async fn apply(
    live: &Service,
    api: &Api<Service>,
    ctx: &Context,
    stored: Option<ProvisioningRecord>,
) -> Result<Action, ReconcileError> {
    let mut cur = live.clone();
    let svc = &mut cur;
    let key = service_key(svc);
    let uid = svc.uid().unwrap_or_default();
    let (nodes_version, nodes) = ctx.backends.current();
    let caps = ctx.provider.capabilities();
    let input = SpecInput {
        cluster: &ctx.config.cluster_name,
        service: svc,
        nodes: &nodes,
        needs_node_ports: caps.needs_node_ports,
    };
    let spec = match build_spec(&input) {
        Ok(spec) => spec,
        Err(errors) => {
            let message = errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return invalid(svc, api, ctx, &message).await;
        }
    };
    let planned = match ctx.provider.record(&spec) {
        Ok(r) => r,
        Err(ProviderError::InvalidSpec { field, message }) => {
            return invalid(svc, api, ctx, &format!("{field}: {message}")).await;
        }
        Err(e) => return Err(ReconcileError::Provider(e)),
    };
    let fingerprint = lb_fingerprint(svc) ^ ctx.provider_salt;

    // A failed spec waits out its backoff even when our own status patch wakes us up.
    if let Some(wait) = ctx.backoffs.remaining(&key, fingerprint) {
        return Ok(Action::requeue(wait));
    }

    // Nothing to do when this exact spec already converged (our own status patches land here),
    // and nothing before the next poll while the cloud is still provisioning it.
    let mut repoll = false;
    if let Some(a) = ctx.applied.get(&key) {
        if a.uid == uid && a.fingerprint == fingerprint {
            if a.ready {
                return Ok(Action::await_change());
            }
            if let Some(at) = a.poll_at {
                let now = tokio::time::Instant::now();
                if at > now {
                    return Ok(Action::requeue(at - now));
                }
                repoll = true;
            }
        }
    } else if trusted_after_restart(svc, fingerprint, stored.as_ref()) {
        debug!(service = %key, "converged before restart; trusting it (drift check verifies)");
        ctx.applied.insert(
            key,
            Applied {
                uid,
                fingerprint,
                nodes_version,
                record: planned,
                ready: true,
                poll_at: None,
            },
        );
        return Ok(Action::await_change());
    }

    // A poll of a load balancer still provisioning for this very spec: condition, finalizer,
    // record and fingerprint were written by the ensure that started it.
    let record = match &stored {
        Some(old) if old.uid == uid => old.union(&planned),
        _ => planned.clone(),
    };
    if !repoll {
        // 1. Say we are working on it.
        let provisioning =
            DesiredCondition::new(false, reason::PROVISIONING, "Ensuring load balancer");
        let keep_ingress = status::current_condition(svc).is_some_and(|c| c.status == "True");
        patch_status(api, svc, None, Some(&provisioning), !keep_ingress).await?;

        // 2. Finalizer + record + fingerprint before the first cloud call.
        patch_metadata(api, svc, Some(&record), Some(fingerprint), true).await?;
        ctx.events
            .publish(
                svc,
                EventType::Normal,
                events::ENSURING,
                "Ensuring load balancer",
            )
            .await;
    }
    if caps.node_backends && nodes.is_empty() {
        ctx.events
            .publish(
                svc,
                EventType::Warning,
                events::UNAVAILABLE,
                "There are no available nodes for LoadBalancer",
            )
            .await;
    }

    // 3. The cloud.
    let outcome = ctx.with_timeout(ctx.provider.ensure(&spec)).await;
    match outcome {
        Ok(EnsureOutcome::Ready(lb)) => {
            let ingress = status::to_ingress(&lb);
            let ready = DesiredCondition::new(
                true,
                reason::READY,
                "Load balancer is provisioned and serving",
            );
            let first_address = status::current_ingress(svc).is_empty() && !ingress.is_empty();
            patch_status(api, svc, Some(&ingress), Some(&ready), false).await?;
            if record != planned {
                // Resources of an older spec are gone now: shrink the record to what exists.
                patch_metadata(api, svc, Some(&planned), Some(fingerprint), true).await?;
            }
            ctx.events
                .publish(
                    svc,
                    EventType::Normal,
                    events::ENSURED,
                    "Ensured load balancer",
                )
                .await;
            if first_address {
                ctx.observe_time_to_address(svc);
            }
            ctx.backoffs.reset(&key);
            info!(service = %key, ingress = ?lb.ingress, "load balancer ensured");
            ctx.applied.insert(
                key,
                Applied {
                    uid,
                    fingerprint,
                    nodes_version,
                    record: planned,
                    ready: true,
                    poll_at: None,
                },
            );
            Ok(Action::await_change())
        }
        Ok(EnsureOutcome::Provisioning {
            status: lb,
            retry_after,
        }) => {
            let poll = retry_after.max(Duration::from_millis(200));
            let ingress = lb.as_ref().map(status::to_ingress);
            let cond = DesiredCondition::new(
                false,
                reason::PROVISIONING,
                format!(
                    "The cloud is still provisioning the load balancer; checking again in {}s",
                    retry_after.as_secs()
                ),
            );
            patch_status(api, svc, ingress.as_deref(), Some(&cond), false).await?;
            ctx.applied.insert(
                key,
                Applied {
                    uid,
                    fingerprint,
                    nodes_version,
                    record: planned,
                    ready: false,
                    poll_at: Some(tokio::time::Instant::now() + poll),
                },
            );
            Ok(Action::requeue(poll))
        }
        Err(e) => {
            ctx.applied.invalidate(&key);
            let message = format!("Error syncing load balancer: {e}");
            ctx.events
                .publish(svc, EventType::Warning, events::SYNC_FAILED, &message)
                .await;
            let cond = DesiredCondition::new(false, e.class(), message.clone());
            patch_status(api, svc, None, Some(&cond), false).await?;
            warn!(service = %key, error = %e, "ensure failed");
            match e {
                // The user must change the Service (or something it depends on: a pool, an
                // address another Service holds); retrying now would fail the same way. The
                // backoff entry matters: without it the wake-up from our own status patch re-ran
                // ensure at once (Provisioning, failed, Provisioning, ... every ~200 ms). With it
                // the same spec is tried again only after its backoff; a new spec at once.
                ProviderError::InvalidSpec { .. } => {
                    ctx.backoffs.next_delay(&key, fingerprint);
                    Ok(Action::await_change())
                }
                ProviderError::Throttled {
                    retry_after: Some(after),
                    ..
                } => Ok(Action::requeue(ctx.backoffs.hold(
                    &key,
                    fingerprint,
                    Some(after),
                ))),
                _ => Ok(Action::requeue(ctx.backoffs.next_delay(&key, fingerprint))),
            }
        }
    }
}

/// After a restart the in-memory state is empty. A Service whose condition says Ready for the
/// very spec we would apply (fingerprint annotation) and that carries our record is trusted
/// without a cloud call; the drift check verifies it at background priority.
fn trusted_after_restart(
    svc: &Service,
    fingerprint: u64,
    record: Option<&ProvisioningRecord>,
) -> bool {
    let uid = svc.uid().unwrap_or_default();
    record.is_some_and(|r| r.uid == uid)
        && svc.finalizers().iter().any(|f| f == FINALIZER)
        && svc.annotations().get(FINGERPRINT_ANNOTATION) == Some(&format!("{fingerprint:016x}"))
        && status::current_condition(svc).is_some_and(|c| c.status == "True")
        && !status::current_ingress(svc).is_empty()
}

async fn invalid(
    svc: &mut Service,
    api: &Api<Service>,
    ctx: &Context,
    message: &str,
) -> Result<Action, ReconcileError> {
    let key = service_key(svc);
    ctx.applied.invalidate(&key);
    let text = format!("Error syncing load balancer: {message}");
    let cond = DesiredCondition::new(false, reason::INVALID, text.clone());
    // Only speak up when the condition changes: a bad spec is reported once, not on every resync.
    let changed = status::status_patch(svc, None, Some(&cond)).is_some();
    if changed {
        ctx.events
            .publish(svc, EventType::Warning, events::SYNC_FAILED, &text)
            .await;
        patch_status(api, svc, None, Some(&cond), false).await?;
    }
    warn!(service = %key, %message, "service spec cannot be provisioned");
    Ok(Action::await_change())
}

async fn cleanup(
    live: &Service,
    api: &Api<Service>,
    ctx: &Context,
    record: ProvisioningRecord,
) -> Result<Action, ReconcileError> {
    let mut cur = live.clone();
    let svc = &mut cur;
    let key = service_key(svc);
    let gone = svc.metadata.deletion_timestamp.is_some();
    if !gone {
        let cond = DesiredCondition::new(false, reason::DELETING, "Deleting load balancer");
        patch_status(api, svc, None, Some(&cond), false).await?;
    }
    ctx.events
        .publish(
            svc,
            EventType::Normal,
            events::DELETING,
            "Deleting load balancer",
        )
        .await;
    match ctx.with_timeout(ctx.provider.delete(&record)).await {
        Ok(()) | Err(ProviderError::NotFound(_)) => {}
        Err(e) => {
            let message = format!("Error deleting load balancer: {e}");
            ctx.events
                .publish(svc, EventType::Warning, events::SYNC_FAILED, &message)
                .await;
            if !gone {
                let cond = DesiredCondition::new(false, e.class(), message);
                patch_status(api, svc, None, Some(&cond), false).await?;
            }
            return Ok(Action::requeue(ctx.backoffs.next_delay(&key, 0)));
        }
    }
    if !gone && let Some(patch) = status::clear_patch(svc) {
        *svc = api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ReconcileError::Kube {
                step: "clear status",
                source: e,
            })?;
    }
    patch_metadata(api, svc, None, None, false).await?;
    ctx.events
        .publish(
            svc,
            EventType::Normal,
            events::DELETED,
            "Deleted load balancer",
        )
        .await;
    ctx.applied.remove(&key);
    ctx.backoffs.reset(&key);
    info!(service = %key, "load balancer deleted");
    Ok(Action::await_change())
}

/// Patch `/status` when something differs. `clear_ingress` drops the published address (a
/// spec change on a load balancer that never became ready must not keep a stale address).
async fn patch_status(
    api: &Api<Service>,
    svc: &mut Service,
    ingress: Option<&[k8s_openapi::api::core::v1::LoadBalancerIngress]>,
    condition: Option<&DesiredCondition>,
    clear_ingress: bool,
) -> Result<(), ReconcileError> {
    let empty = [];
    let ingress = if clear_ingress && ingress.is_none() && !status::current_ingress(svc).is_empty()
    {
        Some(&empty[..])
    } else {
        ingress
    };
    let Some(patch) = status::status_patch(svc, ingress, condition) else {
        return Ok(());
    };
    *svc = api
        .patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| ReconcileError::Kube {
            step: "patch status",
            source: e,
        })?;
    Ok(())
}

/// Set (or with `None`, remove) the finalizer, record and fingerprint in one merge patch that
/// carries the resourceVersion we read: the API server refuses it (409) if anyone changed the
/// object since, so another controller's finalizer is never lost.
async fn patch_metadata(
    api: &Api<Service>,
    svc: &mut Service,
    record: Option<&ProvisioningRecord>,
    fingerprint: Option<u64>,
    finalizer: bool,
) -> Result<(), ReconcileError> {
    let current = svc.finalizers().to_vec();
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if finalizer {
        wanted.push(FINALIZER.to_string());
    }
    let mut metadata = serde_json::Map::new();
    if wanted.len() != current.len() || wanted.iter().zip(&current).any(|(a, b)| a != b) {
        metadata.insert("finalizers".to_string(), json!(wanted));
    }
    let existing = svc.annotations();
    let mut annotations = serde_json::Map::new();
    for (k, v) in [
        (RECORD_ANNOTATION, record.map(naming::encode_record)),
        (
            FINGERPRINT_ANNOTATION,
            fingerprint.map(|f| format!("{f:016x}")),
        ),
    ] {
        if existing.get(k) != v.as_ref() {
            annotations.insert(k.to_string(), v.map(Value::String).unwrap_or(Value::Null));
        }
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".to_string(), Value::Object(annotations));
    }
    if metadata.is_empty() {
        return Ok(());
    }
    metadata.insert("resourceVersion".to_string(), json!(svc.resource_version()));
    let patch = json!({ "metadata": metadata });
    *svc = api
        .patch(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| ReconcileError::Kube {
            step: "patch metadata",
            source: e,
        })?;
    Ok(())
}
