//! The ensure flow: read what exists, write only what differs.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types as t;
use frontdesk_core::naming::{TAG_CLUSTER, TAG_SERVICE_UID};
use frontdesk_core::provider::{
    EnsureOutcome, Ingress, LoadBalancerSpec, LoadBalancerStatus, ProviderError,
};

use crate::desired::{self, Desired};
use crate::ec2::{self, Subnet};
use crate::elbv2 as e;
use crate::{AwsProvider, TgState};
use crate::{node_sg, options};

pub fn status_of(lb: &t::LoadBalancer) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: lb
            .dns_name()
            .map(|h| Ingress {
                ip: None,
                hostname: Some(h.to_string()),
                ip_mode: None,
            })
            .into_iter()
            .collect(),
    }
}

fn is_active(lb: &t::LoadBalancer) -> bool {
    lb.state().and_then(|s| s.code()) == Some(&t::LoadBalancerStateEnum::Active)
}

/// What one ensure converged: the desired resources and the backends.
fn desired_fingerprint(spec: &LoadBalancerSpec, d: &Desired) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{d:?}").hash(&mut h);
    desired::instance_ids(&spec.nodes).hash(&mut h);
    h.finish()
}

fn role_tag(d: &Desired) -> &'static str {
    match d.scheme {
        frontdesk_core::provider::Scheme::Internal => "kubernetes.io/role/internal-elb",
        frontdesk_core::provider::Scheme::External => "kubernetes.io/role/elb",
    }
}

/// Upstream's choice: subnets carrying the role tag whose cluster tag is ours (owned|shared)
/// or that carry no cluster tag at all; one per AZ, preferring our cluster tag, then the
/// smaller id; one VPC; sorted by AZ.
pub fn pick_subnets(cands: Vec<Subnet>, cluster: &str) -> Vec<Subnet> {
    let ours = format!("kubernetes.io/cluster/{cluster}");
    let mut by_az: BTreeMap<String, (bool, Subnet)> = BTreeMap::new();
    for s in cands {
        let mine = s
            .tags
            .get(&ours)
            .is_some_and(|v| v == "owned" || v == "shared");
        let foreign = s
            .tags
            .keys()
            .any(|k| k.starts_with("kubernetes.io/cluster/"))
            && !mine;
        if foreign {
            continue;
        }
        let better = match by_az.get(&s.az) {
            None => true,
            Some((m, cur)) => (mine && !m) || (mine == *m && s.id < cur.id),
        };
        if better {
            by_az.insert(s.az.clone(), (mine, s));
        }
    }
    let picked: Vec<Subnet> = by_az.into_values().map(|(_, s)| s).collect();
    let Some(vpc) = picked.first().map(|s| s.vpc.clone()) else {
        return picked;
    };
    picked.into_iter().filter(|s| s.vpc == vpc).collect()
}

impl AwsProvider {
    async fn resolve_subnets(
        &self,
        spec: &LoadBalancerSpec,
        d: &Desired,
    ) -> Result<Vec<Subnet>, ProviderError> {
        if let Some(list) = &d.options.subnets {
            let (ids, names): (Vec<String>, Vec<String>) =
                list.iter().cloned().partition(|s| s.starts_with("subnet-"));
            let mut found = Vec::new();
            if !ids.is_empty() {
                found.extend(
                    ec2::subnets(&self.api, vec![ec2::subnet_filter("subnet-id", &ids)]).await?,
                );
            }
            if !names.is_empty() {
                found.extend(
                    ec2::subnets(&self.api, vec![ec2::subnet_filter("tag:Name", &names)]).await?,
                );
            }
            for want in list {
                if !found
                    .iter()
                    .any(|s| &s.id == want || s.tags.get("Name") == Some(want))
                {
                    return Err(ProviderError::invalid(
                        options::SUBNETS,
                        format!("subnet {want:?} not found (by id or Name tag)"),
                    ));
                }
            }
            found.sort_by(|a, b| a.az.cmp(&b.az).then(a.id.cmp(&b.id)));
            found.dedup_by(|a, b| a.id == b.id);
            return Ok(found);
        }
        let mut filters = vec![ec2::subnet_filter("tag-key", &[role_tag(d).to_string()])];
        if let Some(vpc) = &self.cfg.vpc_id {
            filters.push(ec2::subnet_filter("vpc-id", std::slice::from_ref(vpc)));
        }
        let picked = pick_subnets(ec2::subnets(&self.api, filters).await?, &spec.cluster);
        if picked.is_empty() {
            return Err(ProviderError::invalid(
                options::SUBNETS,
                format!(
                    "no subnet is tagged {} (and kubernetes.io/cluster/{} owned|shared or no \
                     cluster tag); tag subnets or list them in this annotation",
                    role_tag(d),
                    spec.cluster
                ),
            ));
        }
        Ok(picked)
    }

    /// The owned SG (created if missing) with its rules converged; returns its id.
    async fn ensure_sg(
        &self,
        spec: &LoadBalancerSpec,
        d: &Desired,
        name: &str,
        vpc: &str,
    ) -> Result<String, ProviderError> {
        let found = ec2::security_groups(
            &self.api,
            vec![
                ("group-name", vec![name.to_string()]),
                ("vpc-id", vec![vpc.to_string()]),
            ],
        )
        .await?;
        let (id, current) = match found.into_iter().next() {
            Some(g) => {
                if g.uid.as_deref().is_some_and(|u| u != spec.uid) {
                    return Err(ProviderError::Conflict(format!(
                        "security group {name} belongs to Service UID {:?}",
                        g.uid
                    )));
                }
                (g.id, g.rules)
            }
            None => (
                ec2::create_sg(&self.api, name, vpc, &d.tags).await?,
                BTreeSet::new(),
            ),
        };
        let (add, remove) = desired::delta(&current, &d.sg_rules);
        if !add.is_empty() {
            ec2::authorize(&self.api, &id, &add).await?;
        }
        if !remove.is_empty() {
            ec2::revoke(&self.api, &id, &remove).await?;
        }
        Ok(id)
    }

    pub(crate) async fn ensure_inner(
        &self,
        spec: &LoadBalancerSpec,
        d: &Desired,
    ) -> Result<EnsureOutcome, ProviderError> {
        let mut existing = e::find_lb(&self.api, &d.lb_name).await?;
        let fingerprint = desired_fingerprint(spec, d);
        if let Some(lb) = &existing
            && !is_active(lb)
            && self.converged_to(&d.lb_name) == Some(fingerprint)
        {
            // A poll while AWS provisions what the last ensure already converged.
            return Ok(EnsureOutcome::Provisioning {
                status: Some(status_of(lb)),
                retry_after: self.cfg.provisioning_poll,
            });
        }
        let mut tags = std::collections::HashMap::new();
        let mut replaced = false;
        if let Some(lb) = &existing {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            let mut arns = vec![arn.clone()];
            let tgs = e::tgs_of_lb(&self.api, &arn).await?;
            arns.extend(
                tgs.iter()
                    .filter_map(|g| g.target_group_arn().map(String::from)),
            );
            tags = e::tags_of(&self.api, &arns).await?;
            let owner = tags.get(&arn).and_then(|t| t.get(TAG_SERVICE_UID));
            if owner.is_some_and(|o| *o != spec.uid) {
                return Err(ProviderError::Conflict(format!(
                    "load balancer {} belongs to Service UID {owner:?}, not {}",
                    d.lb_name, spec.uid
                )));
            }
            if lb.scheme().map(|s| s.as_str()) != Some(d.scheme_str()) {
                // The scheme is fixed at creation: replace the NLB (target groups survive and
                // are re-attached, so backends stay registered).
                tracing::info!(lb = %d.lb_name, "scheme changed: replacing the load balancer");
                e::delete_lb(&self.api, &arn).await?;
                existing = None;
                replaced = true;
            }
        }
        // The NLB's security group when frontdesk owns it (node group rules name it).
        let mut owned_sg: Option<String> = None;
        let (lb, created) = match existing {
            Some(lb) => (lb, false),
            None => {
                let subnets = self.resolve_subnets(spec, d).await?;
                for (key, n) in [
                    (
                        options::EIP_ALLOCATIONS,
                        d.options.eip_allocations.as_ref().map(Vec::len),
                    ),
                    (
                        options::PRIVATE_IPV4,
                        d.options.private_ipv4.as_ref().map(Vec::len),
                    ),
                ] {
                    if let Some(n) = n
                        && n != subnets.len()
                    {
                        return Err(ProviderError::invalid(
                            key,
                            format!(
                                "has {n} entries for {} subnets; give one per subnet",
                                subnets.len()
                            ),
                        ));
                    }
                }
                let vpc = subnets.first().map(|s| s.vpc.clone()).unwrap_or_default();
                let sgs = match (&d.sg_name, &d.options.security_groups) {
                    (Some(name), _) => vec![self.ensure_sg(spec, d, name, &vpc).await?],
                    (None, Some(byo)) => byo.clone(),
                    (None, None) => Vec::new(),
                };
                owned_sg = d.sg_name.as_ref().and(sgs.first().cloned());
                (e::create_lb(&self.api, d, &subnets, &sgs).await?, true)
            }
        };
        let lb_arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let vpc = lb.vpc_id().unwrap_or_default().to_string();

        if !created {
            let want_sgs: Vec<String> = match (&d.sg_name, &d.options.security_groups) {
                (Some(name), _) => vec![self.ensure_sg(spec, d, name, &vpc).await?],
                (None, Some(byo)) => byo.clone(),
                (None, None) => Vec::new(),
            };
            owned_sg = d.sg_name.as_ref().and(want_sgs.first().cloned());
            let have: BTreeSet<&str> = lb.security_groups().iter().map(String::as_str).collect();
            let want: BTreeSet<&str> = want_sgs.iter().map(String::as_str).collect();
            if have != want && !want.is_empty() {
                e::set_security_groups(&self.api, &lb_arn, &want_sgs).await?;
            }
            let ip_type = d.options.ip_address_type.as_str();
            if lb.ip_address_type().map(|t| t.as_str()) != Some(ip_type) {
                e::set_ip_address_type(&self.api, &lb_arn, ip_type).await?;
            }
            if let Some(have) = tags.get(&lb_arn) {
                let missing = missing_tags(have, &d.tags);
                if !missing.is_empty() {
                    e::add_tags(&self.api, &lb_arn, &missing).await?;
                }
            }
        }
        e::converge_lb_attributes(&self.api, &lb_arn, &d.lb_attributes).await?;

        // Target groups: reuse what is attached, adopt or create the rest.
        let attached = if created {
            Vec::new()
        } else {
            e::tgs_of_lb(&self.api, &lb_arn).await?
        };
        let mut arns = Vec::with_capacity(d.tgs.len());
        let mut fresh = Vec::with_capacity(d.tgs.len());
        for tg in &d.tgs {
            let found = attached
                .iter()
                .find(|g| g.target_group_name() == Some(tg.name.as_str()));
            let (group, is_new) = match found {
                Some(g) => (g.clone(), false),
                None => (e::create_tg(&self.api, tg, &vpc, &d.tags).await?, true),
            };
            let arn = group.target_group_arn().unwrap_or_default().to_string();
            if !is_new {
                if e::health_of(&group) != tg.health {
                    e::modify_tg_health(&self.api, &arn, &tg.health).await?;
                }
                if let Some(have) = tags.get(&arn) {
                    let missing = missing_tags(have, &d.tags);
                    if !missing.is_empty() {
                        e::add_tags(&self.api, &arn, &missing).await?;
                    }
                }
            } else if e::health_of(&group) != tg.health {
                // Adopted from a lost create with other settings.
                e::modify_tg_health(&self.api, &arn, &tg.health).await?;
            }
            e::converge_tg_attributes(&self.api, &arn, &d.tg_attributes).await?;
            arns.push(arn);
            // A target group made in this ensure together with its new LB has no targets; one
            // that survived an LB replacement (or came from an earlier attempt) is read.
            fresh.push(is_new && created && !replaced);
        }

        // Listeners, then the target groups no listener uses any more.
        let current = if created {
            Vec::new()
        } else {
            e::listeners(&self.api, &lb_arn).await?
        };
        let plan = desired::plan_listeners(&current, &d.tgs, &arns);
        for arn in &plan.delete {
            e::delete_listener(&self.api, arn).await?;
        }
        for (arn, i) in &plan.modify {
            e::modify_listener(&self.api, arn, &d.tgs[*i], &arns[*i]).await?;
        }
        for i in &plan.create {
            e::create_listener(&self.api, &lb_arn, &d.tgs[*i], &arns[*i], &d.tags).await?;
        }
        for g in &attached {
            let name = g.target_group_name().unwrap_or_default();
            if !d.tgs.iter().any(|tg| tg.name == name)
                && let Some(arn) = g.target_group_arn()
            {
                e::delete_tg(&self.api, arn).await?;
            }
        }

        // Backends.
        let want = desired::instance_ids(&spec.nodes);
        let mut cache = BTreeMap::new();
        for (i, tg) in d.tgs.iter().enumerate() {
            let current = if fresh[i] {
                BTreeSet::new()
            } else {
                e::targets(&self.api, &arns[i]).await?
            };
            let (add, remove) = desired::delta(&current, &want);
            if !remove.is_empty() {
                e::deregister(&self.api, &arns[i], &remove, tg.node_port).await?;
            }
            if !add.is_empty() {
                e::register(&self.api, &arns[i], &add, tg.node_port).await?;
            }
            cache.insert(
                tg.name.clone(),
                TgState {
                    arn: arns[i].clone(),
                    node_port: tg.node_port,
                    targets: want.clone(),
                },
            );
        }
        self.remember(&d.lb_name, cache);

        // Let the NLB's group into the node groups (NodePorts and health check port).
        if let Some(sg) = &owned_sg {
            let ids: Vec<String> = want.iter().cloned().collect();
            let rules = node_sg::wanted(d, sg);
            node_sg::converge(&self.api, &ids, &spec.cluster, sg, &rules).await?;
        }

        let status = status_of(&lb);
        if is_active(&lb) {
            self.set_converged(&d.lb_name, None);
            Ok(EnsureOutcome::Ready(status))
        } else {
            self.set_converged(&d.lb_name, Some(fingerprint));
            Ok(EnsureOutcome::Provisioning {
                status: Some(status),
                retry_after: self.cfg.provisioning_poll,
            })
        }
    }

    pub(crate) async fn update_backends_inner(
        &self,
        spec: &LoadBalancerSpec,
        d: &Desired,
    ) -> Result<(), ProviderError> {
        let want = desired::instance_ids(&spec.nodes);
        let cached = self.cached(&d.lb_name);
        let state = match cached {
            Some(c) if d.tgs.iter().all(|tg| c.contains_key(&tg.name)) => c,
            _ => {
                let lb = e::find_lb(&self.api, &d.lb_name).await?.ok_or_else(|| {
                    ProviderError::NotFound(format!("load balancer {} does not exist", d.lb_name))
                })?;
                let groups =
                    e::tgs_of_lb(&self.api, lb.load_balancer_arn().unwrap_or_default()).await?;
                let mut state = BTreeMap::new();
                for tg in &d.tgs {
                    let g = groups
                        .iter()
                        .find(|g| g.target_group_name() == Some(tg.name.as_str()))
                        .ok_or_else(|| {
                            ProviderError::NotFound(format!(
                                "target group {} does not exist",
                                tg.name
                            ))
                        })?;
                    let arn = g.target_group_arn().unwrap_or_default().to_string();
                    let targets = e::targets(&self.api, &arn).await?;
                    state.insert(
                        tg.name.clone(),
                        TgState {
                            arn,
                            node_port: tg.node_port,
                            targets,
                        },
                    );
                }
                state
            }
        };
        let mut after = BTreeMap::new();
        for tg in &d.tgs {
            let Some(s) = state.get(&tg.name) else {
                continue;
            };
            let (add, remove) = desired::delta(&s.targets, &want);
            if !remove.is_empty() {
                e::deregister(&self.api, &s.arn, &remove, s.node_port).await?;
            }
            if !add.is_empty() {
                e::register(&self.api, &s.arn, &add, s.node_port).await?;
            }
            after.insert(
                tg.name.clone(),
                TgState {
                    targets: want.clone(),
                    ..s.clone()
                },
            );
        }
        self.remember(&d.lb_name, after);
        Ok(())
    }
}

/// Tags in `want` the resource lacks or has with another value (extra tags are left alone:
/// we cannot tell a user's tag from a removed one of ours).
fn missing_tags(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    want.iter()
        .filter(|(k, v)| have.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Cluster tag value of a tag set.
pub fn cluster_of(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.get(TAG_CLUSTER).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, az: &str, vpc: &str, tags: &[(&str, &str)]) -> Subnet {
        Subnet {
            id: id.into(),
            az: az.into(),
            vpc: vpc.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn subnet_pick_table() {
        let c = "kubernetes.io/cluster/prod";
        let picked = pick_subnets(
            vec![
                subnet("subnet-b", "us-east-1a", "vpc-1", &[]),
                subnet("subnet-a", "us-east-1a", "vpc-1", &[]),
                subnet("subnet-z", "us-east-1b", "vpc-1", &[(c, "owned")]),
                subnet("subnet-c", "us-east-1b", "vpc-1", &[]),
                subnet(
                    "subnet-x",
                    "us-east-1c",
                    "vpc-1",
                    &[("kubernetes.io/cluster/other", "owned")],
                ),
                subnet("subnet-y", "us-east-1d", "vpc-1", &[(c, "shared")]),
                subnet("subnet-q", "us-east-1e", "vpc-2", &[]),
            ],
            "prod",
        );
        let ids: Vec<&str> = picked.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["subnet-a", "subnet-z", "subnet-y"]);
        assert!(pick_subnets(vec![], "prod").is_empty());
    }

    #[test]
    fn missing_tags_only_adds() {
        let have = BTreeMap::from([("a".to_string(), "1".to_string()), ("x".into(), "9".into())]);
        let want = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        assert_eq!(
            missing_tags(&have, &want),
            BTreeMap::from([("b".to_string(), "2".to_string())])
        );
    }
}
