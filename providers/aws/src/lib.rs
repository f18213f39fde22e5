//! frontdesk-provider-aws: one Network Load Balancer per Service (ELBv2, instance targets on the
//! NodePorts), through the real AWS SDK clients.
//!
//! Per Service it owns: the NLB (named like upstream, `a` + 31 hex of the UID), one target group
//! per (port, protocol) — TCP_UDP where a port number carries both — with a listener each, and
//! one security group enforcing `loadBalancerSourceRanges` (unless the user brings their own via
//! `aws-load-balancer-security-groups`). Every name is deterministic, so `record()` names all of
//! them before anything is created and deletion never depends on today's annotations.
//!
//! Calls per step (reads / writes), for a one-port Service:
//! - create: DescribeLoadBalancers, DescribeSubnets, DescribeSecurityGroups (3 reads);
//!   CreateSecurityGroup, AuthorizeSecurityGroupIngress, CreateLoadBalancer, CreateTargetGroup,
//!   CreateListener, RegisterTargets (6 writes); the next ensure (LB provisioning) reads.
//! - converged ensure: DescribeLoadBalancers, DescribeTargetGroups ×2, DescribeTags,
//!   DescribeSecurityGroups, DescribeListeners, DescribeTargetHealth; no write.
//! - node added/removed: exactly one Register/DeregisterTargets per target group, no read (the
//!   target set is cached from the last ensure; any error drops the cache).
//!
//! The SDK clients retry nothing (`RetryConfig::disabled()`): the controller owns retries and
//! backoff and sees every throttling answer through the budget.

mod api;
mod desired;
mod ec2;
mod elbv2;
mod ensure;
mod node_sg;
pub mod options;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use frontdesk_core::naming::{TAG_CLUSTER, TAG_SERVICE, TAG_SERVICE_UID, service_key_from_tag};
use frontdesk_core::provider::{
    Capabilities, EnsureOutcome, LoadBalancerProvider, LoadBalancerSpec, LoadBalancerStatus,
    ProviderContext, ProviderError, ProvisioningRecord, ResourceRef, ServiceKey,
};

pub use api::{AwsConfig, AwsProviderError, buckets_for, budget_buckets};
pub use desired::{Desired, sg_name, tg_name};
pub use ensure::pick_subnets;

pub const PROVIDER_NAME: &str = "aws";
pub const KIND_LOAD_BALANCER: &str = "loadbalancer";
pub const KIND_TARGET_GROUP: &str = "targetgroup";
pub const KIND_SECURITY_GROUP: &str = "securitygroup";

/// What the last ensure / update_backends left in one target group.
#[derive(Clone, Debug)]
pub(crate) struct TgState {
    pub arn: String,
    pub node_port: u16,
    pub targets: BTreeSet<String>,
}

/// The `aws` provider.
#[derive(Debug)]
pub struct AwsProvider {
    api: api::Api,
    cfg: AwsConfig,
    /// LB name -> target group name -> state, from our own last successful writes: lets a node
    /// sync send deltas without reading. Dropped on any error so the next call reads again.
    cache: Mutex<HashMap<String, BTreeMap<String, TgState>>>,
    /// LB name -> fingerprint of the desired state an ensure fully converged while AWS was
    /// still provisioning the NLB: the next polls of that same state only look at the NLB's
    /// state (one DescribeLoadBalancers) instead of describing everything again.
    converged: Mutex<HashMap<String, u64>>,
}

impl AwsProvider {
    /// Builds the SDK clients (standard credential chain unless `cfg` overrides it). Makes no
    /// call: credentials are resolved lazily on the first request.
    pub fn new(cfg: AwsConfig, ctx: ProviderContext) -> Result<Self, AwsProviderError> {
        let api = api::Api::new(&cfg, ctx)?;
        Ok(Self {
            api,
            cfg,
            cache: Mutex::new(HashMap::new()),
            converged: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, TgState>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn remember(&self, lb: &str, state: BTreeMap<String, TgState>) {
        self.lock().insert(lb.to_string(), state);
    }

    pub(crate) fn cached(&self, lb: &str) -> Option<BTreeMap<String, TgState>> {
        self.lock().get(lb).cloned()
    }

    fn forget(&self, lb: &str) {
        self.lock().remove(lb);
        self.set_converged(lb, None);
    }

    /// Remember (or with `None` drop) the desired-state fingerprint `lb` converged to.
    pub(crate) fn set_converged(&self, lb: &str, fingerprint: Option<u64>) {
        let mut m = self.converged.lock().unwrap_or_else(|e| e.into_inner());
        match fingerprint {
            Some(f) => m.insert(lb.to_string(), f),
            None => m.remove(lb),
        };
    }

    pub(crate) fn converged_to(&self, lb: &str) -> Option<u64> {
        let m = self.converged.lock().unwrap_or_else(|e| e.into_inner());
        m.get(lb).copied()
    }

    fn record_for(spec: &LoadBalancerSpec, d: &Desired) -> ProvisioningRecord {
        let mut resources = vec![ResourceRef {
            kind: KIND_LOAD_BALANCER.into(),
            id: d.lb_name.clone(),
        }];
        resources.extend(d.tgs.iter().map(|tg| ResourceRef {
            kind: KIND_TARGET_GROUP.into(),
            id: tg.name.clone(),
        }));
        if let Some(sg) = &d.sg_name {
            resources.push(ResourceRef {
                kind: KIND_SECURITY_GROUP.into(),
                id: sg.clone(),
            });
        }
        resources.sort();
        resources.dedup();
        ProvisioningRecord {
            provider: PROVIDER_NAME.into(),
            cluster: spec.cluster.clone(),
            service: spec.service.clone(),
            uid: spec.uid.clone(),
            resources,
        }
    }

    async fn delete_inner(&self, record: &ProvisioningRecord) -> Result<(), ProviderError> {
        let named = |kind: &str| -> Vec<String> {
            record
                .resources
                .iter()
                .filter(|r| r.kind == kind)
                .map(|r| r.id.clone())
                .collect()
        };
        let mut tg_arns: BTreeSet<String> = BTreeSet::new();
        for name in named(KIND_LOAD_BALANCER) {
            self.forget(&name);
            if let Some(lb) = elbv2::find_lb(&self.api, &name).await? {
                let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
                // Attached target groups go too, even ones an older record does not name.
                for g in elbv2::tgs_of_lb(&self.api, &arn).await? {
                    tg_arns.extend(g.target_group_arn().map(String::from));
                }
                // Listeners are deleted with the load balancer.
                elbv2::delete_lb(&self.api, &arn).await?;
            }
        }
        for name in named(KIND_TARGET_GROUP) {
            if let Some(g) = elbv2::find_tg(&self.api, &name).await? {
                tg_arns.extend(g.target_group_arn().map(String::from));
            }
        }
        for arn in &tg_arns {
            // ResourceInUse right after the LB delete is Transient: the controller retries.
            elbv2::delete_tg(&self.api, arn).await?;
        }
        let sgs = named(KIND_SECURITY_GROUP);
        if !sgs.is_empty() {
            let found = ec2::security_groups(
                &self.api,
                vec![
                    ("group-name", sgs),
                    (&format!("tag:{TAG_SERVICE_UID}"), vec![record.uid.clone()]),
                ],
            )
            .await?;
            for g in found {
                // AWS refuses to delete a group that a node group's rule still names.
                node_sg::release(&self.api, &g.id).await?;
                // DependencyViolation while the NLB's interfaces go away: Transient, retried.
                ec2::delete_sg(&self.api, &g.id).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LoadBalancerProvider for AwsProvider {
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
        let d = Desired::from_spec(spec)?;
        Ok(Self::record_for(spec, &d))
    }

    async fn ensure(&self, spec: &LoadBalancerSpec) -> Result<EnsureOutcome, ProviderError> {
        let d = Desired::from_spec(spec)?;
        let result = Box::pin(self.ensure_inner(spec, &d)).await;
        if result.is_err() {
            self.forget(&d.lb_name);
        }
        result
    }

    async fn update_backends(&self, spec: &LoadBalancerSpec) -> Result<(), ProviderError> {
        let d = Desired::from_spec(spec)?;
        let result = Box::pin(self.update_backends_inner(spec, &d)).await;
        if result.is_err() {
            self.forget(&d.lb_name);
        }
        result
    }

    async fn get(
        &self,
        record: &ProvisioningRecord,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        for r in record
            .resources
            .iter()
            .filter(|r| r.kind == KIND_LOAD_BALANCER)
        {
            if let Some(lb) = elbv2::find_lb(&self.api, &r.id).await? {
                return Ok(Some(ensure::status_of(&lb)));
            }
        }
        Ok(None)
    }

    async fn delete(&self, record: &ProvisioningRecord) -> Result<(), ProviderError> {
        Box::pin(self.delete_inner(record)).await
    }

    async fn list_owned(&self, cluster: &str) -> Result<Vec<ProvisioningRecord>, ProviderError> {
        let lbs = elbv2::all_lbs(&self.api).await?;
        let arns: Vec<String> = lbs
            .iter()
            .filter_map(|lb| lb.load_balancer_arn().map(String::from))
            .collect();
        let tags = elbv2::tags_of(&self.api, &arns).await?;
        let sgs = ec2::security_groups(
            &self.api,
            vec![(&format!("tag:{TAG_CLUSTER}"), vec![cluster.to_string()])],
        )
        .await?;
        let mut records = Vec::new();
        for lb in &lbs {
            let arn = lb.load_balancer_arn().unwrap_or_default();
            let Some(t) = tags.get(arn) else { continue };
            if ensure::cluster_of(t) != Some(cluster) {
                continue;
            }
            let uid = t.get(TAG_SERVICE_UID).cloned().unwrap_or_default();
            let service = t
                .get(TAG_SERVICE)
                .and_then(|v| service_key_from_tag(v))
                .unwrap_or_else(|| ServiceKey::new("", ""));
            let name = lb.load_balancer_name().unwrap_or_default().to_string();
            let mut resources = vec![ResourceRef {
                kind: KIND_LOAD_BALANCER.into(),
                id: name,
            }];
            for g in elbv2::tgs_of_lb(&self.api, arn).await? {
                resources.extend(g.target_group_name().map(|n| ResourceRef {
                    kind: KIND_TARGET_GROUP.into(),
                    id: n.to_string(),
                }));
            }
            resources.extend(
                sgs.iter()
                    .filter(|g| g.uid.as_deref() == Some(uid.as_str()))
                    .map(|g| ResourceRef {
                        kind: KIND_SECURITY_GROUP.into(),
                        id: g.name.clone(),
                    }),
            );
            resources.sort();
            resources.dedup();
            records.push(ProvisioningRecord {
                provider: PROVIDER_NAME.into(),
                cluster: cluster.to_string(),
                service,
                uid,
                resources,
            });
        }
        Ok(records)
    }
}
