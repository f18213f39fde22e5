//! frontdesk-provider-mock: the provider for the mock cloud's generic JSON API.
//!
//! Call budget per Service (what the benchmarks measure): a new Service costs 1 read + 2 writes
//! (GET 404, create with listeners and health check, add backends); a converged ensure 1 read;
//! a node change exactly 1 write per load balancer (the backend set is cached from the last
//! answer, so no read is needed; a stale cache is detected from that answer and corrected).

mod client;
mod desired;
mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use frontdesk_core::naming::{TAG_CLUSTER, TAG_SERVICE, TAG_SERVICE_UID, service_key_from_tag};
use frontdesk_core::provider::{
    Capabilities, EnsureOutcome, Ingress, IpMode, LoadBalancerProvider, LoadBalancerSpec,
    LoadBalancerStatus, ProviderContext, ProviderError, ProvisioningRecord, ResourceRef,
    ServiceKey,
};
use frontdesk_core::ratelimit::BucketConfig;
use reqwest::Method;

use client::{Api, Request};
pub use client::{BUCKET_MUTATE, BUCKET_READ};
use desired::Desired;

pub const PROVIDER_NAME: &str = "mock";
/// The one resource kind this provider creates.
pub const KIND_LOAD_BALANCER: &str = "loadbalancer";
/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon to ask again while a load balancer is still provisioning.
pub const DEFAULT_PROVISIONING_POLL: Duration = Duration::from_secs(5);
/// Small pages: each entry carries the load balancer's whole backend list on the wire.
const LIST_PAGE_SIZE: usize = 100;

const OP_GET: &str = "GetLoadBalancer";
const OP_LIST: &str = "ListLoadBalancers";
const OP_CREATE: &str = "CreateLoadBalancer";
const OP_UPDATE: &str = "UpdateLoadBalancer";
const OP_DELETE: &str = "DeleteLoadBalancer";
const OP_BACKENDS: &str = "UpdateBackends";

/// The client-side budget matching the generic cloud's P-generic buckets (cloud-api-limits §9).
pub fn budget_buckets() -> [(&'static str, BucketConfig); 2] {
    [
        (BUCKET_MUTATE, BucketConfig::new(20.0, 20.0)),
        (BUCKET_READ, BucketConfig::new(100.0, 100.0)),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum MockProviderError {
    #[error("invalid mock cloud endpoint {url:?}: {reason}")]
    InvalidEndpoint { url: String, reason: String },
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Backend ids per load balancer. Load balancers of one cluster mostly have the same
/// backends (every eligible node), so equal sets are stored once: 2,000 load balancers on
/// 5,000 nodes would otherwise keep ten million strings.
#[derive(Debug, Default)]
struct BackendCache {
    by_lb: HashMap<String, Arc<BTreeSet<String>>>,
    /// The set stored last, shared by the next load balancer with the same backends.
    last: Option<Arc<BTreeSet<String>>>,
}

impl BackendCache {
    fn insert(&mut self, name: &str, set: BTreeSet<String>) {
        let shared = match &self.last {
            Some(last) if **last == set => last.clone(),
            _ => {
                let new = Arc::new(set);
                self.last = Some(new.clone());
                new
            }
        };
        self.by_lb.insert(name.to_string(), shared);
    }
}

/// The `mock` provider.
#[derive(Debug)]
pub struct MockProvider {
    api: Api,
    provisioning_poll: Duration,
    /// Backend instance ids per load balancer name, from the cloud's last answer: lets a node
    /// sync skip the read. Dropped on any error, so the next call reads again.
    backends: Mutex<BackendCache>,
}

impl MockProvider {
    /// `endpoint_url` is the generic cloud's base URL, e.g. `http://127.0.0.1:8081`.
    pub fn new(endpoint_url: &str, ctx: ProviderContext) -> Result<Self, MockProviderError> {
        Self::with_timeout(endpoint_url, ctx, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(
        endpoint_url: &str,
        ctx: ProviderContext,
        timeout: Duration,
    ) -> Result<Self, MockProviderError> {
        let invalid = |reason: &str| MockProviderError::InvalidEndpoint {
            url: endpoint_url.into(),
            reason: reason.into(),
        };
        let mut base = reqwest::Url::parse(endpoint_url).map_err(|e| invalid(&e.to_string()))?;
        if base.scheme() != "http" {
            return Err(invalid("only http:// is supported"));
        }
        // `join` replaces the last path segment unless the base ends in '/'.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let api = Api::new(base, timeout, ctx).map_err(MockProviderError::Client)?;
        Ok(Self {
            api,
            provisioning_poll: DEFAULT_PROVISIONING_POLL,
            backends: Mutex::new(BackendCache::default()),
        })
    }

    pub fn with_provisioning_poll(mut self, poll: Duration) -> Self {
        self.provisioning_poll = poll;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BackendCache> {
        self.backends.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, lb: &wire::LoadBalancer) {
        let set: BTreeSet<String> = lb.backends.iter().cloned().collect();
        self.cache().insert(&lb.name, set);
    }

    fn forget(&self, name: &str) {
        self.cache().by_lb.remove(name);
    }

    async fn get_lb(&self, name: &str) -> Result<Option<wire::LoadBalancer>, ProviderError> {
        let path = lb_path(name);
        let req = Request::<()> {
            operation: OP_GET,
            mutating: false,
            method: Method::GET,
            path: &path,
            query: &[],
            body: None,
        };
        match self.api.send(req).await {
            Ok(lb) => Ok(lb),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_lb(
        &self,
        name: &str,
        d: &Desired,
    ) -> Result<wire::LoadBalancer, ProviderError> {
        let body = wire::CreateRequest {
            name,
            scheme: d.scheme,
            address: d.address.map(|a| a.to_string()),
            tags: &d.tags,
            listeners: &d.listeners,
            health_check: &d.health_check,
            source_ranges: &d.source_ranges,
            session_affinity: d.session_affinity,
        };
        let req = Request {
            operation: OP_CREATE,
            mutating: true,
            method: Method::POST,
            path: "v1/loadbalancers",
            query: &[],
            body: Some(&body),
        };
        match self.api.send(req).await {
            Ok(Some(lb)) => Ok(lb),
            Ok(None) => Err(ProviderError::transient(format!(
                "{OP_CREATE}: empty answer"
            ))),
            // Someone (our own earlier attempt whose answer was lost) created it meanwhile:
            // adopt it by name instead of failing or duplicating.
            Err(ProviderError::Conflict(msg)) => match self.get_lb(name).await? {
                Some(lb) => Ok(lb),
                None => Err(ProviderError::Conflict(msg)),
            },
            Err(e) => Err(e),
        }
    }

    async fn update_lb(
        &self,
        name: &str,
        d: &Desired,
    ) -> Result<wire::LoadBalancer, ProviderError> {
        let path = lb_path(name);
        let body = wire::UpdateRequest {
            listeners: &d.listeners,
            health_check: &d.health_check,
            source_ranges: &d.source_ranges,
            session_affinity: d.session_affinity,
            tags: &d.tags,
        };
        let req = Request {
            operation: OP_UPDATE,
            mutating: true,
            method: Method::PUT,
            path: &path,
            query: &[],
            body: Some(&body),
        };
        self.api
            .send(req)
            .await?
            .ok_or_else(|| ProviderError::transient(format!("{OP_UPDATE}: empty answer")))
    }

    async fn change_backends(
        &self,
        name: &str,
        delta: &wire::BackendsRequest,
    ) -> Result<wire::LoadBalancer, ProviderError> {
        let path = format!("{}/backends", lb_path(name));
        let req = Request {
            operation: OP_BACKENDS,
            mutating: true,
            method: Method::POST,
            path: &path,
            query: &[],
            body: Some(delta),
        };
        self.api
            .send(req)
            .await?
            .ok_or_else(|| ProviderError::transient(format!("{OP_BACKENDS}: empty answer")))
    }

    async fn delete_lb(&self, name: &str) -> Result<(), ProviderError> {
        self.forget(name);
        let path = lb_path(name);
        let req = Request::<()> {
            operation: OP_DELETE,
            mutating: true,
            method: Method::DELETE,
            path: &path,
            query: &[],
            body: None,
        };
        match self.api.send::<(), serde_json::Value>(req).await {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Converge backends from `current`; returns the cloud's final view.
    async fn converge_backends(
        &self,
        lb: wire::LoadBalancer,
        current: &BTreeSet<String>,
        desired: &BTreeSet<String>,
    ) -> Result<wire::LoadBalancer, ProviderError> {
        let delta = desired::delta(current, desired);
        if delta.add.is_empty() && delta.remove.is_empty() {
            return Ok(lb);
        }
        self.change_backends(&lb.name, &delta).await
    }

    async fn ensure_inner(
        &self,
        spec: &LoadBalancerSpec,
        d: &Desired,
    ) -> Result<EnsureOutcome, ProviderError> {
        let mut lb = match self.get_lb(&spec.name).await? {
            Some(lb) => lb,
            None => self.create_lb(&spec.name, d).await?,
        };
        check_owner(&lb, spec)?;
        if d.needs_replace(&lb) {
            tracing::info!(lb = %spec.name, "scheme or requested address changed: replacing the load balancer");
            self.delete_lb(&spec.name).await?;
            lb = self.create_lb(&spec.name, d).await?;
        }
        if d.config_differs(&lb) {
            tracing::info!(lb = %spec.name, "updating listeners / health check / source ranges");
            lb = self.update_lb(&spec.name, d).await?;
        }
        let current: BTreeSet<String> = lb.backends.iter().cloned().collect();
        let lb = self.converge_backends(lb, &current, &d.backends).await?;
        self.remember(&lb);
        let status = status_of(&lb);
        if lb.state == "active" {
            Ok(EnsureOutcome::Ready(status))
        } else {
            Ok(EnsureOutcome::Provisioning {
                status: Some(status),
                retry_after: self.provisioning_poll,
            })
        }
    }

    async fn update_backends_inner(&self, spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
        let desired = desired::backends(&spec.nodes);
        let cached = self.cache().by_lb.get(&spec.name).cloned();
        let (lb, current) = match cached {
            Some(current) => (None, current),
            None => {
                let lb = self.get_lb(&spec.name).await?.ok_or_else(|| {
                    ProviderError::NotFound(format!("load balancer {} does not exist", spec.name))
                })?;
                let current = Arc::new(lb.backends.iter().cloned().collect());
                (Some(lb), current)
            }
        };
        let delta = desired::delta(&current, &desired);
        if delta.add.is_empty() && delta.remove.is_empty() {
            if let Some(lb) = lb {
                self.remember(&lb);
            }
            return Ok(());
        }
        let mut after = self.change_backends(&spec.name, &delta).await?;
        let now: BTreeSet<String> = after.backends.iter().cloned().collect();
        if now != desired {
            // The cache was stale (someone else changed the backends): one corrective delta.
            tracing::debug!(lb = %spec.name, "backend cache was stale; correcting");
            after = self
                .change_backends(&spec.name, &desired::delta(&now, &desired))
                .await?;
        }
        self.remember(&after);
        Ok(())
    }
}

fn lb_path(name: &str) -> String {
    // Names are [a-z0-9-] (validated by the cloud), so no escaping is needed; anything else
    // would be rejected with a 400 there.
    format!("v1/loadbalancers/{name}")
}

/// A load balancer under our deterministic name but tagged for another Service UID is not ours:
/// never adopt or modify it.
fn check_owner(lb: &wire::LoadBalancer, spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
    let theirs = lb.tags.get(TAG_SERVICE_UID);
    let ours = spec.tags.get(TAG_SERVICE_UID);
    match (theirs, ours) {
        (Some(t), Some(o)) if t != o => Err(ProviderError::Conflict(format!(
            "load balancer {} belongs to Service UID {t}, not {o}",
            lb.name
        ))),
        _ => Ok(()),
    }
}

fn status_of(lb: &wire::LoadBalancer) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: vec![Ingress {
            ip: Some(lb.address),
            hostname: None,
            ip_mode: Some(IpMode::Vip),
        }],
    }
}

fn lb_names(record: &ProvisioningRecord) -> impl Iterator<Item = &str> {
    record
        .resources
        .iter()
        .filter(|r| r.kind == KIND_LOAD_BALANCER)
        .map(|r| r.id.as_str())
}

fn record_of(lb: &wire::LoadBalancerSummary, cluster: &str) -> ProvisioningRecord {
    let service = lb
        .tags
        .get(TAG_SERVICE)
        .and_then(|v| service_key_from_tag(v))
        .unwrap_or_else(|| ServiceKey::new("", ""));
    ProvisioningRecord {
        provider: PROVIDER_NAME.to_string(),
        cluster: cluster.to_string(),
        service,
        uid: lb.tags.get(TAG_SERVICE_UID).cloned().unwrap_or_default(),
        resources: vec![ResourceRef {
            kind: KIND_LOAD_BALANCER.to_string(),
            id: lb.name.clone(),
        }],
    }
}

#[async_trait]
impl LoadBalancerProvider for MockProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_node_ports: true,
            node_backends: true,
            udp: true,
            sctp: false,
            mixed_protocols: true,
        }
    }

    fn record(&self, spec: &LoadBalancerSpec) -> Result<ProvisioningRecord, ProviderError> {
        Desired::from_spec(spec)?;
        Ok(ProvisioningRecord {
            provider: PROVIDER_NAME.to_string(),
            cluster: spec.cluster.clone(),
            service: spec.service.clone(),
            uid: spec.uid.clone(),
            resources: vec![ResourceRef {
                kind: KIND_LOAD_BALANCER.to_string(),
                id: spec.name.clone(),
            }],
        })
    }

    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<EnsureOutcome, ProviderError> {
        let desired = Desired::from_spec(spec)?;
        let result = self.ensure_inner(spec, &desired).await;
        if result.is_err() {
            self.forget(&spec.name);
        }
        result
    }

    async fn update_backends(&self, spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
        let result = self.update_backends_inner(spec).await;
        if result.is_err() {
            self.forget(&spec.name);
        }
        result
    }

    async fn get(
        &self,
        record: &ProvisioningRecord,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        for name in lb_names(record) {
            if let Some(lb) = self.get_lb(name).await? {
                return Ok(Some(status_of(&lb)));
            }
        }
        Ok(None)
    }

    async fn delete(&self, record: &ProvisioningRecord) -> Result<(), ProviderError> {
        for name in lb_names(record) {
            self.delete_lb(name).await?;
        }
        Ok(())
    }

    async fn list_owned(&self, cluster: &str) -> Result<Vec<ProvisioningRecord>, ProviderError> {
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("tag", format!("{TAG_CLUSTER}={cluster}")),
                ("page_size", LIST_PAGE_SIZE.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let req = Request::<()> {
                operation: OP_LIST,
                mutating: false,
                method: Method::GET,
                path: "v1/loadbalancers",
                query: &query,
                body: None,
            };
            let page: wire::ListResponse = self
                .api
                .send(req)
                .await?
                .ok_or_else(|| ProviderError::transient(format!("{OP_LIST}: empty answer")))?;
            records.extend(page.loadbalancers.iter().map(|lb| record_of(lb, cluster)));
            match page.next_page_token {
                Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests;
