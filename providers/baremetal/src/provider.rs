//! [`BareMetalProvider`]: the `LoadBalancerProvider` of bare-metal mode.
//!
//! Every address a Service holds is one `IPAddressClaim`. `ensure` first looks for the
//! Service's claims (by its uid label) and keeps them unless the request changed; only then does
//! it choose a new address, reserve it in the in-memory index, and create the claim. The create
//! is the lock: AlreadyExists means someone else (another controller, a previous run) holds it,
//! and the next candidate is tried. Nothing is published before the claim exists.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use frontdesk_core::controller::events::{EventType, Recorder};
use frontdesk_core::provider::{
    Capabilities, EnsureOutcome, HealthCheck, Ingress, IpFamily, IpMode, LoadBalancerProvider,
    LoadBalancerSpec, LoadBalancerStatus, ProviderContext, ProviderError, ProvisioningRecord,
    ResourceRef, ServiceKey,
};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::alloc::{AllocError, Allocator, PoolDef};
use crate::claims::holding_of;
use crate::crd::{CLUSTER_LABEL, IPAddressClaim, IPAddressPool, SERVICE_UID_LABEL_PREFIX};
use crate::ops;
use crate::ranges::family_of;
use crate::request::{FamilyPolicy, ServiceRequest, parse_annotations};

pub const PROVIDER: &str = "baremetal";
/// The record's one resource kind: the claims of a Service, named by its uid.
pub const RECORD_KIND: &str = "ipclaims";
/// How long a pool list is trusted before `ensure` lists again.
const POOLS_TTL: Duration = Duration::from_secs(2);
/// Minimum time between two full claim lists after failed choices (see `resync`).
const CLAIMS_RELOAD: Duration = Duration::from_secs(10);
/// Candidates tried before giving up on one family (each failure is an address someone else
/// claimed between our look and our create).
pub(crate) const MAX_ATTEMPTS: usize = 64;

pub(crate) struct State {
    pub alloc: Allocator,
    pub loaded: bool,
    /// When every claim was last listed (the index rebuilt from the API).
    pub loaded_at: Option<tokio::time::Instant>,
    pub pools_at: Option<tokio::time::Instant>,
    /// Pools known to carry our finalizer.
    pub finalized: HashSet<String>,
    /// Pools with namespace selectors (only then is the Namespace read).
    pub ns_selectors: bool,
}

pub struct BareMetalProvider {
    pub(crate) client: Client,
    pub(crate) ctx: ProviderContext,
    pub(crate) state: Mutex<State>,
    /// One refresh at a time: at start-up every concurrent reconcile found the index unloaded
    /// and each listed every claim (32 full lists instead of one).
    refresh_lock: Mutex<()>,
    recorder: Recorder,
    status_loop: Option<tokio::task::AbortHandle>,
}

impl Drop for BareMetalProvider {
    fn drop(&mut self) {
        if let Some(h) = &self.status_loop {
            h.abort();
        }
    }
}

impl BareMetalProvider {
    /// A provider using `client` for pools and claims. Starts the pool status loop (counts,
    /// conditions, finalizer) when called inside a tokio runtime.
    pub fn new(client: Client, ctx: ProviderContext) -> Arc<Self> {
        let status_loop = tokio::runtime::Handle::try_current().ok().map(|h| {
            h.spawn(crate::pools::status_loop(
                client.clone(),
                Duration::from_secs(2),
            ))
            .abort_handle()
        });
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), "frontdesk-baremetal"),
            client,
            ctx,
            refresh_lock: Mutex::new(()),
            state: Mutex::new(State {
                alloc: Allocator::default(),
                loaded: false,
                loaded_at: None,
                pools_at: None,
                finalized: HashSet::new(),
                ns_selectors: false,
            }),
            status_loop,
        })
    }

    pub(crate) fn claims_api(&self) -> Api<IPAddressClaim> {
        Api::all(self.client.clone())
    }

    /// Load pools (when stale or `force`) and, the first time, every claim.
    async fn refresh(&self, force: bool) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let _one = self.refresh_lock.lock().await;
        let stale = {
            let st = self.state.lock().await;
            // A forced refresh that waited for one which started after it asked is done.
            let fresh = st.pools_at.is_some_and(|t| t >= started);
            (force && !fresh) || !st.loaded || st.pools_at.is_none_or(|t| t.elapsed() > POOLS_TTL)
        };
        if !stale {
            return Ok(());
        }
        let pools_api: Api<IPAddressPool> = Api::all(self.client.clone());
        let pools = ops::call(
            &self.ctx,
            "ListPools",
            pools_api.list(&ListParams::default()),
        )
        .await?;
        let loaded = self.state.lock().await.loaded;
        let claims = if loaded {
            None
        } else {
            let lp = ListParams::default();
            Some(ops::call(&self.ctx, "ListClaims", self.claims_api().list(&lp)).await?)
        };
        let mut st = self.state.lock().await;
        let defs: Vec<PoolDef> = pools.items.iter().map(|p| PoolDef::from_crd(p).0).collect();
        st.ns_selectors = defs.iter().any(|d| {
            d.allocation
                .as_ref()
                .is_some_and(|a| !a.namespace_selectors.is_empty())
        });
        st.finalized = pools
            .items
            .iter()
            .filter(|p| {
                p.finalizers()
                    .iter()
                    .any(|f| f == crate::crd::POOL_FINALIZER)
            })
            .map(|p| p.name_any())
            .collect();
        st.alloc.set_pools(defs);
        if let Some(claims) = claims {
            for c in &claims.items {
                if let Some((ip, h)) = holding_of(c) {
                    st.alloc.hold(ip, h);
                }
            }
            st.loaded = true;
            st.loaded_at = Some(tokio::time::Instant::now());
            info!(
                claims = st.alloc.used_count(),
                "bare-metal allocator loaded"
            );
        }
        st.pools_at = Some(tokio::time::Instant::now());
        Ok(())
    }

    /// What the allocator needs about the Service: its fields the spec does not carry.
    async fn request(
        &self,
        spec: &LoadBalancerSpec,
    ) -> Result<(ServiceRequest, Service, Vec<String>), ProviderError> {
        let ann = parse_annotations(&spec.annotations)
            .map_err(|e| ProviderError::invalid("metadata.annotations", e.to_string()))?;
        let api: Api<Service> = Api::namespaced(self.client.clone(), &spec.service.namespace);
        let svc = ops::call(&self.ctx, "GetService", api.get(&spec.service.name)).await?;
        if svc.uid().as_deref() != Some(spec.uid.as_str()) {
            return Err(ProviderError::transient(format!(
                "Service {} was replaced (uid changed); will retry with the new one",
                spec.service
            )));
        }
        let sspec = svc.spec.clone().unwrap_or_default();
        let mut requested = spec.requested_ips.clone();
        for ip in &ann.ips {
            if !requested.contains(ip) {
                requested.push(*ip);
            }
        }
        if requested
            .iter()
            .map(|i| family_of(*i))
            .collect::<HashSet<_>>()
            .len()
            < requested.len()
        {
            return Err(ProviderError::invalid(
                "metadata.annotations",
                format!(
                    "requested addresses {requested:?} name two addresses of one family; request \
                     at most one IPv4 and one IPv6 address"
                ),
            ));
        }
        let backend_key = match &spec.health_check {
            HealthCheck::Http { .. } => {
                let sel: BTreeMap<String, String> = sspec.selector.clone().unwrap_or_default();
                let parts: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
                // Never empty for Local, so Local never shares with Cluster.
                format!("local:{}", parts.join(","))
            }
            HealthCheck::Tcp => String::new(),
        };
        let needs_ns = self.state.lock().await.ns_selectors;
        let namespace_labels = if needs_ns {
            let ns_api: Api<Namespace> = Api::all(self.client.clone());
            ops::call(
                &self.ctx,
                "GetNamespace",
                ns_api.get(&spec.service.namespace),
            )
            .await?
            .labels()
            .clone()
        } else {
            BTreeMap::new()
        };
        let req = ServiceRequest {
            uid: spec.uid.clone(),
            namespace: spec.service.namespace.clone(),
            name: spec.service.name.clone(),
            labels: svc.labels().clone(),
            namespace_labels,
            families: spec.ip_families.clone(),
            policy: FamilyPolicy::parse(sspec.ip_family_policy.as_deref()),
            requested_ips: requested,
            pool: ann.pool,
            sharing_key: ann.sharing_key,
            ports: spec.ports.iter().map(|p| (p.protocol, p.port)).collect(),
            backend_key,
        };
        Ok((req, svc, ann.warnings))
    }

    /// The addresses this Service holds now: what the index knows, plus any address the
    /// Service publishes that the index does not (a claim another replica made): that claim
    /// is read by name, one GET, and believed only if it names this Service.
    ///
    /// No list here: the index holds every claim that existed when it was loaded and every
    /// claim this process made since, and a claim someone else made shows up as AlreadyExists
    /// on create. A labelled list per Service (as before) made each allocation scan every claim
    /// on the API server: O(N) per Service, O(N^2) for a burst.
    async fn held(&self, uid: &str, svc: &Service) -> Result<Vec<IpAddr>, ProviderError> {
        let published: Vec<IpAddr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|i| {
                i.iter()
                    .filter_map(|x| x.ip.as_deref()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let unknown: Vec<IpAddr> = {
            let st = self.state.lock().await;
            published
                .into_iter()
                .filter(|ip| {
                    st.alloc
                        .holding(*ip)
                        .is_none_or(|h| !h.users.iter().any(|u| u.uid == uid))
                })
                .collect()
        };
        for ip in unknown {
            let name = crate::crd::claim_name(ip);
            match ops::call(&self.ctx, "GetClaim", self.claims_api().get(&name)).await {
                Ok(c) => {
                    if let Some((ip, h)) = holding_of(&c) {
                        self.state.lock().await.alloc.hold(ip, h);
                    }
                }
                Err(ProviderError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.state.lock().await.alloc.held_by(uid))
    }

    /// Look again after a failed choice: the pools always, the claims (drop the index and
    /// list them all) at most every `CLAIMS_RELOAD`, so a burst of Services failing on an
    /// exhausted pool does not turn into one full claim list per Service and retry.
    pub(crate) async fn resync(&self) -> Result<(), ProviderError> {
        {
            let mut st = self.state.lock().await;
            if st.loaded_at.is_none_or(|t| t.elapsed() > CLAIMS_RELOAD) {
                st.alloc = Allocator::default();
                st.loaded = false;
            }
        }
        self.refresh(true).await
    }

    async fn event(&self, svc: &Service, kind: EventType, reason: &str, message: &str) {
        self.recorder.publish(svc, kind, reason, message).await;
    }

    async fn claims_of(&self, uid: &str) -> Result<Vec<IPAddressClaim>, ProviderError> {
        let lp = ListParams::default().labels(&format!("{SERVICE_UID_LABEL_PREFIX}{uid}"));
        Ok(
            ops::call(&self.ctx, "ListClaims", self.claims_api().list(&lp))
                .await?
                .items,
        )
    }
}

/// User errors become `InvalidSpec` (Warning Event + failed condition, no hot retry);
/// exhaustion is `QuotaExceeded`, retried with backoff since addresses free up.
pub(crate) fn alloc_error(e: AllocError) -> ProviderError {
    match e {
        AllocError::Exhausted { .. } => ProviderError::QuotaExceeded(e.to_string()),
        other => ProviderError::invalid("status.loadBalancer.ingress", other.to_string()),
    }
}

fn record_for(cluster: &str, service: ServiceKey, uid: &str) -> ProvisioningRecord {
    ProvisioningRecord {
        provider: PROVIDER.to_string(),
        cluster: cluster.to_string(),
        service,
        uid: uid.to_string(),
        resources: vec![ResourceRef {
            kind: RECORD_KIND.to_string(),
            id: uid.to_string(),
        }],
    }
}

fn status_of(mut ips: Vec<IpAddr>, families: &[IpFamily]) -> LoadBalancerStatus {
    ips.sort_by_key(|ip| {
        (
            families
                .iter()
                .position(|f| *f == family_of(*ip))
                .unwrap_or(9),
            *ip,
        )
    });
    LoadBalancerStatus {
        ingress: ips
            .into_iter()
            .map(|ip| Ingress {
                ip: Some(ip),
                hostname: None,
                ip_mode: Some(IpMode::Vip),
            })
            .collect(),
    }
}

#[async_trait]
impl LoadBalancerProvider for BareMetalProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            needs_node_ports: false,
            node_backends: false,
            udp: true,
            sctp: true,
            mixed_protocols: true,
        }
    }

    fn record(&self, spec: &LoadBalancerSpec) -> Result<ProvisioningRecord, ProviderError> {
        parse_annotations(&spec.annotations)
            .map_err(|e| ProviderError::invalid("metadata.annotations", e.to_string()))?;
        Ok(record_for(&spec.cluster, spec.service.clone(), &spec.uid))
    }

    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<EnsureOutcome, ProviderError> {
        self.refresh(false).await?;
        let (req, svc, warnings) = self.request(spec).await?;
        for w in &warnings {
            self.event(&svc, EventType::Warning, "DeprecatedAnnotation", w)
                .await;
        }
        let held = self.held(&spec.uid, &svc).await?;
        let plan = match Allocator::plan(&req) {
            Ok(p) => p,
            Err(e) => {
                self.event(&svc, EventType::Warning, "AllocationFailed", &e.to_string())
                    .await;
                return Err(alloc_error(e));
            }
        };
        let keep: Vec<IpAddr> = {
            let st = self.state.lock().await;
            held.iter()
                .copied()
                .filter(|ip| st.alloc.keeps(&req, *ip))
                .collect()
        };
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut first_pool: Option<String> = None;
        for (i, (family, want)) in plan.iter().enumerate() {
            if let Some(ip) = keep.iter().find(|ip| family_of(**ip) == *family) {
                ips.push(*ip);
                ops::refresh_user(self, *ip, &req).await?;
            } else {
                match self
                    .claim_one(&spec.cluster, &req, *family, *want, first_pool.as_deref())
                    .await
                {
                    Ok(ip) => {
                        let msg = if i == 0 {
                            format!("Assigned IP [\"{ip}\"]")
                        } else {
                            format!("Assigned additional IP [\"{ip}\"]")
                        };
                        self.event(&svc, EventType::Normal, "IPAllocated", &msg)
                            .await;
                        ips.push(ip);
                    }
                    Err(e) if i > 0 && req.policy == FamilyPolicy::PreferDualStack => {
                        let msg = format!("no {family:?} address for PreferDualStack: {e}");
                        warn!(service = %spec.service, "{msg}");
                        self.event(&svc, EventType::Normal, "AdditionalAssignFailed", &msg)
                            .await;
                    }
                    Err(e) => {
                        self.event(&svc, EventType::Warning, "AllocationFailed", &e.to_string())
                            .await;
                        return Err(e);
                    }
                }
            }
            if first_pool.is_none() {
                let st = self.state.lock().await;
                first_pool = ips
                    .last()
                    .and_then(|ip| st.alloc.holding(*ip))
                    .map(|h| h.pool.clone());
            }
        }
        // Make before break: release what is no longer wanted only after the new is claimed.
        // That includes a second address of one family (two replicas that both allocated during
        // a split brain): every replica keeps the lowest, so they converge on the same one.
        let drop: Vec<IpAddr> = held.into_iter().filter(|ip| !ips.contains(ip)).collect();
        for ip in drop {
            ops::release(self, ip, &req.uid).await?;
            self.event(
                &svc,
                EventType::Normal,
                "ClearAssignment",
                &format!("released {ip}"),
            )
            .await;
        }
        Ok(EnsureOutcome::Ready(status_of(ips, &req.families)))
    }

    async fn update_backends(&self, _spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
        // Backends are not nodes on bare metal; the speaker follows endpoints itself.
        Ok(())
    }

    async fn get(
        &self,
        record: &ProvisioningRecord,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        let ips: Vec<IpAddr> = self
            .claims_of(&record.uid)
            .await?
            .iter()
            .filter_map(holding_of)
            .map(|(ip, _)| ip)
            .collect();
        if ips.is_empty() {
            return Ok(None);
        }
        Ok(Some(status_of(ips, &[IpFamily::IPv4, IpFamily::IPv6])))
    }

    async fn delete(&self, record: &ProvisioningRecord) -> Result<(), ProviderError> {
        for c in self.claims_of(&record.uid).await? {
            if let Some((ip, _)) = holding_of(&c) {
                ops::release(self, ip, &record.uid).await?;
            }
        }
        Ok(())
    }

    async fn list_owned(&self, cluster: &str) -> Result<Vec<ProvisioningRecord>, ProviderError> {
        let lp = ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}"));
        let list = ops::call(&self.ctx, "ListClaims", self.claims_api().list(&lp)).await?;
        let mut by_uid: BTreeMap<String, ProvisioningRecord> = BTreeMap::new();
        for c in &list.items {
            for u in &c.spec.users {
                by_uid.entry(u.uid.clone()).or_insert_with(|| {
                    record_for(cluster, ServiceKey::new(&u.namespace, &u.name), &u.uid)
                });
            }
        }
        Ok(by_uid.into_values().collect())
    }
}
