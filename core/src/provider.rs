//! The provider contract: what every cloud (or bare-metal) backend implements.
//!
//! The controller builds a cloud-neutral [`LoadBalancerSpec`] from a Service and the eligible
//! nodes, and drives a provider through this trait. Providers classify their failures into
//! [`ProviderError`] at their edge so the controller never has to look at error strings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc as StdArc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Namespace and name of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// One Service port as the load balancer must expose it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    /// `spec.ports[].name` (may be empty for a single-port Service).
    pub name: String,
    pub protocol: Protocol,
    /// The port the load balancer listens on.
    pub port: u16,
    /// The NodePort traffic is sent to on every backend node. `None` when the Service has
    /// `allocateLoadBalancerNodePorts: false` and no explicit nodePort for this port.
    pub node_port: Option<u16>,
}

/// A node that should receive traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackendNode {
    pub name: String,
    /// `spec.providerID`, e.g. `aws:///us-east-1a/i-0abc`.
    pub provider_id: Option<String>,
    /// InternalIP addresses first, then ExternalIP, in the order the node reports them.
    pub addresses: Vec<IpAddr>,
    /// `topology.kubernetes.io/zone`, when labelled.
    pub zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HealthCheck {
    /// TCP connect on each port's NodePort (`externalTrafficPolicy: Cluster`).
    Tcp,
    /// HTTP GET on the `healthCheckNodePort` (`externalTrafficPolicy: Local`), answered by
    /// kube-proxy with 200 only on nodes that have a ready local endpoint.
    Http { port: u16, path: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionAffinity {
    None,
    ClientIp { timeout_seconds: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// Reachable from outside the network (public address).
    External,
    /// Reachable only inside the VPC / network (private address).
    Internal,
}

/// Everything a provider needs to converge one Service's load balancer. Read-only for the
/// provider, cloud-neutral, built purely from the Service and the node set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerSpec {
    /// The `--cluster-name` of this controller; part of every ownership tag.
    pub cluster: String,
    pub service: ServiceKey,
    pub uid: String,
    /// Deterministic cloud name derived from cluster + UID (see `naming`).
    pub name: String,
    pub ports: Vec<PortSpec>,
    /// Eligible backends, sorted by name.
    pub nodes: Vec<BackendNode>,
    pub health_check: HealthCheck,
    /// `spec.loadBalancerSourceRanges` (or the legacy annotation); empty = allow all.
    pub source_ranges: Vec<IpNet>,
    /// `spec.loadBalancerIP` or a provider's address annotation.
    pub requested_ips: Vec<IpAddr>,
    pub ip_families: Vec<IpFamily>,
    pub session_affinity: SessionAffinity,
    pub scheme: Scheme,
    /// Ownership tags every cloud resource of this Service must carry.
    pub tags: BTreeMap<String, String>,
    /// The Service's annotations (minus bulky client bookkeeping such as
    /// `kubectl.kubernetes.io/last-applied-configuration`); each provider parses its own keys
    /// into typed options and answers `InvalidSpec` for a bad value.
    pub annotations: BTreeMap<String, String>,
}

impl LoadBalancerSpec {
    /// The plainest spec, as the controller builds it for a Service with one TCP port
    /// (80 -> NodePort 30080), a TCP health check and no options: for the conformance kit and
    /// the benchmarks.
    pub fn one_tcp_port(
        cluster: &str,
        service: ServiceKey,
        uid: &str,
        nodes: &[BackendNode],
    ) -> LoadBalancerSpec {
        LoadBalancerSpec {
            cluster: cluster.to_string(),
            tags: crate::naming::ownership_tags(cluster, &service, uid),
            service,
            uid: uid.to_string(),
            name: crate::naming::load_balancer_name(uid),
            ports: vec![PortSpec {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: Some(30080),
            }],
            nodes: nodes.to_vec(),
            health_check: HealthCheck::Tcp,
            source_ranges: Vec::new(),
            requested_ips: Vec::new(),
            ip_families: vec![IpFamily::IPv4],
            session_affinity: SessionAffinity::None,
            scheme: Scheme::External,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpMode {
    /// Traffic arrives with the LB address as destination (kube-proxy may short-circuit).
    #[serde(rename = "VIP")]
    Vip,
    /// Traffic arrives from the LB proxy; kube-proxy must not short-circuit.
    #[serde(rename = "Proxy")]
    Proxy,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Ingress {
    pub ip: Option<IpAddr>,
    pub hostname: Option<String>,
    pub ip_mode: Option<IpMode>,
}

/// What the load balancer looks like from outside: goes to `status.loadBalancer.ingress`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    pub ingress: Vec<Ingress>,
}

/// The answer of [`LoadBalancerProvider::ensure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnsureOutcome {
    /// Converged; publish this status.
    Ready(LoadBalancerStatus),
    /// Accepted but not serving yet. Not an error and not a backoff step: the controller
    /// publishes `status` if there is one and asks again after `retry_after`.
    Provisioning {
        status: Option<LoadBalancerStatus>,
        retry_after: Duration,
    },
}

/// One cloud resource a provisioning record names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Provider-defined kind, e.g. `loadbalancer`, `targetgroup`, `securitygroup`.
    pub kind: String,
    /// Deterministic name or cloud id.
    pub id: String,
}

/// Written to the Service (annotation `naming::RECORD_ANNOTATION`) before the cloud resources
/// are created, so deletion always works from what was provisioned, never from what today's
/// annotations would imply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningRecord {
    pub provider: String,
    pub cluster: String,
    pub service: ServiceKey,
    pub uid: String,
    /// Sorted and deduplicated.
    pub resources: Vec<ResourceRef>,
}

impl ProvisioningRecord {
    /// The union of two records for the same Service: used before an ensure that may create new
    /// resources, so a crash half way never leaves an unnamed resource behind.
    pub fn union(&self, other: &ProvisioningRecord) -> ProvisioningRecord {
        let mut resources = self.resources.clone();
        resources.extend(other.resources.iter().cloned());
        resources.sort();
        resources.dedup();
        ProvisioningRecord {
            resources,
            ..other.clone()
        }
    }
}

/// What a provider can do; the controller adapts instead of failing at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Traffic is sent to NodePorts, so a port without one is an impossible spec.
    pub needs_node_ports: bool,
    /// Backends are nodes (node sync matters). False for bare metal, where the node set only
    /// affects announcement.
    pub node_backends: bool,
    pub udp: bool,
    pub sctp: bool,
    /// TCP and UDP on the same port number in one load balancer.
    pub mixed_protocols: bool,
}

/// Failures, classified once at the provider edge.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The thing asked about does not exist (for `delete`, callers treat it as success).
    #[error("not found: {0}")]
    NotFound(String),
    /// The cloud asked us to slow down.
    #[error("throttled by the cloud API: {message}")]
    Throttled {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The user asked for something impossible: Warning Event + failed condition, no hot retry.
    #[error("{field}: {message}")]
    InvalidSpec { field: String, message: String },
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// Someone else holds the name or the resource is busy.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything worth retrying with backoff: timeouts, 5xx, connection errors.
    #[error("{message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The controller withdrew the call after waiting for the budget and before sending it
    /// (see [`withdrawable`]); nothing reached the cloud.
    #[error("call withdrawn before it was sent: newer work supersedes it")]
    Withdrawn,
}

impl ProviderError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError::InvalidSpec {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// Short machine-readable class, used as a metrics label and a condition reason.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::NotFound(_) => "NotFound",
            ProviderError::Throttled { .. } => "Throttled",
            ProviderError::InvalidSpec { .. } => "InvalidSpec",
            ProviderError::QuotaExceeded(_) => "QuotaExceeded",
            ProviderError::Conflict(_) => "Conflict",
            ProviderError::Transient { .. } => "Transient",
            ProviderError::Withdrawn => "Withdrawn",
        }
    }
}

tokio::task_local! {
    static CALL_GATE: StdArc<dyn Fn() -> bool + Send + Sync>;
}

/// Run `fut` so that every cloud call it makes through [`ProviderContext::call`] is checked
/// against `open` once the budget admits it: when `open()` is false the call is not sent and
/// fails with [`ProviderError::Withdrawn`]. Providers need not know: they pass the error up.
pub async fn withdrawable<F: std::future::Future>(
    open: StdArc<dyn Fn() -> bool + Send + Sync>,
    fut: F,
) -> F::Output {
    CALL_GATE.scope(open, fut).await
}

/// The one trait every provider implements. All methods must be idempotent and every cloud
/// call inside them bounded by a timeout.
#[async_trait]
pub trait LoadBalancerProvider: Send + Sync {
    /// Stable provider name (`mock`, `aws`, `gcp`, `azure`, `baremetal`).
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// Pure: the resources `ensure(spec)` may create, named deterministically. Also the place to
    /// reject provider annotations with `InvalidSpec` before any cloud call.
    fn record(&self, spec: &LoadBalancerSpec) -> Result<ProvisioningRecord, ProviderError>;

    /// Create or converge the whole load balancer. Reads first; writes only what differs.
    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<EnsureOutcome, ProviderError>;

    /// Only the node set changed: register/deregister the delta, nothing else.
    async fn update_backends(&self, spec: &LoadBalancerSpec) -> Result<(), ProviderError>;

    /// What exists now for this record, or `None` when the load balancer is gone.
    async fn get(
        &self,
        record: &ProvisioningRecord,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError>;

    /// Remove every resource the record names. "Already gone" is success.
    async fn delete(&self, record: &ProvisioningRecord) -> Result<(), ProviderError>;

    /// Every record this cluster owns in the cloud (from ownership tags), for the orphan sweep.
    async fn list_owned(&self, cluster: &str) -> Result<Vec<ProvisioningRecord>, ProviderError>;
}

/// What the controller hands every provider at construction: the shared cloud API budget and
/// the metrics sink for cloud calls.
#[derive(Clone, Debug)]
pub struct ProviderContext {
    pub budget: std::sync::Arc<crate::ratelimit::ApiBudget>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl ProviderContext {
    pub fn new(
        budget: std::sync::Arc<crate::ratelimit::ApiBudget>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self { budget, metrics }
    }

    /// An unlimited budget and a private metrics registry (tests).
    pub fn for_tests() -> Self {
        Self::new(Default::default(), Default::default())
    }

    /// Wait for the budget, run one cloud call, and count it. `buckets` are the cloud's
    /// throttling buckets this call is charged to.
    pub async fn call<T, F>(
        &self,
        provider: &str,
        operation: &str,
        buckets: &[&str],
        fut: F,
    ) -> Result<T, ProviderError>
    where
        F: std::future::Future<Output = Result<T, ProviderError>>,
    {
        self.budget.acquire(buckets).await;
        // A call can wait for the budget for a while (a pass of node sync queues behind the
        // cloud's write bucket); by then its caller may no longer want it sent.
        if CALL_GATE.try_with(|open| !open()).unwrap_or(false) {
            return Err(ProviderError::Withdrawn);
        }
        let start = tokio::time::Instant::now();
        let result = fut.await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.class(),
        };
        if let Err(ProviderError::Throttled {
            retry_after: Some(after),
            ..
        }) = &result
        {
            for b in buckets {
                self.budget.penalize(b, *after);
            }
        }
        self.metrics
            .record_cloud_call(provider, operation, label, start.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_closed_gate_withdraws_the_call_before_it_is_sent() {
        let ctx = ProviderContext::for_tests();
        let sent = StdArc::new(AtomicUsize::new(0));
        let open = StdArc::new(AtomicBool::new(true));
        let gate = {
            let open = open.clone();
            StdArc::new(move || open.load(Ordering::SeqCst))
                as StdArc<dyn Fn() -> bool + Send + Sync>
        };
        let call = |sent: StdArc<AtomicUsize>| {
            let ctx = &ctx;
            async move {
                ctx.call("test", "Op", &["mutate"], async {
                    sent.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ProviderError>(())
                })
                .await
            }
        };
        withdrawable(gate.clone(), call(sent.clone()))
            .await
            .unwrap();
        open.store(false, Ordering::SeqCst);
        let e = withdrawable(gate, call(sent.clone())).await.unwrap_err();
        assert!(matches!(e, ProviderError::Withdrawn), "{e}");
        assert_eq!(e.class(), "Withdrawn");
        // Outside a gate nothing is withdrawn.
        call(sent.clone()).await.unwrap();
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }
}
