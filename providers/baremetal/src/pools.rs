//! Pool upkeep: status counters and conditions, the in-use finalizer, and installing the CRDs
//! plus a default pool (sandbox).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info};

use crate::alloc::{Allocator, PoolCounts, PoolDef};
use crate::claims::holding_of;
use crate::crd::{
    IPAddressClaim, IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, POOL_FINALIZER,
    PoolCondition, crds,
};

/// The sandbox's default pool: documentation ranges (RFC 5737 / RFC 3849).
pub const DEFAULT_POOL: &str = "default";
pub const DEFAULT_POOL_ADDRESSES: &[&str] = &["198.51.100.0/24", "2001:db8:100::/120"];

fn clamp(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// What a pool's status should say, given every pool and every claim (pure).
pub fn desired_status(
    pool: &IPAddressPool,
    all: &[IPAddressPool],
    counts: PoolCounts,
    claimed_in_pool: &[String],
    claimed_outside: &[String],
) -> IPAddressPoolStatus {
    let (def, errors) = PoolDef::from_crd(pool);
    let mut conds = Vec::new();
    let cond = |t: &str, ok: bool, reason: &str, message: String| PoolCondition {
        type_: t.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: String::new(),
    };
    if errors.is_empty() && !def.ranges.is_empty() {
        conds.push(cond("Valid", true, "Valid", String::new()));
    } else if def.ranges.is_empty() && errors.is_empty() {
        conds.push(cond(
            "Valid",
            false,
            "NoAddresses",
            "spec.addresses is empty; list at least one CIDR or range".into(),
        ));
    } else {
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        conds.push(cond(
            "Valid",
            false,
            "InvalidAddresses",
            format!("spec.addresses: {}", msgs.join("; ")),
        ));
    }
    let overlapping: Vec<String> = all
        .iter()
        .filter(|o| o.name_any() != pool.name_any())
        .filter(|o| {
            let (od, _) = PoolDef::from_crd(o);
            def.ranges
                .iter()
                .any(|r| od.ranges.iter().any(|x| r.overlaps(x)))
        })
        .map(|o| o.name_any())
        .collect();
    conds.push(if overlapping.is_empty() {
        cond("Overlapping", false, "NoOverlap", String::new())
    } else {
        cond(
            "Overlapping",
            true,
            "Overlapping",
            format!(
                "addresses overlap with pool(s) {}; an address is still handed out once, but make \
                 the pools disjoint so counts and selectors mean what they say",
                overlapping.join(", ")
            ),
        )
    });
    let deleting = pool.meta().deletion_timestamp.is_some();
    let in_use = if deleting && !claimed_in_pool.is_empty() {
        cond(
            "AddressesInUse",
            true,
            "DeletionBlocked",
            format!(
                "the pool is being deleted but {} address(es) are still claimed ({}); it goes \
                 away once those Services are deleted or moved to another pool",
                claimed_in_pool.len(),
                preview(claimed_in_pool)
            ),
        )
    } else if !claimed_outside.is_empty() {
        cond(
            "AddressesInUse",
            true,
            "RemovedAddressesInUse",
            format!(
                "address(es) {} were removed from spec.addresses but are still claimed; the \
                 Services keep them until released (put them back, or move those Services)",
                preview(claimed_outside)
            ),
        )
    } else {
        cond("AddressesInUse", false, "NoConflict", String::new())
    };
    conds.push(in_use);
    // Keep transition times of conditions whose status did not change.
    let old = pool
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    for c in &mut conds {
        c.last_transition_time = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .map(|o| o.last_transition_time.clone())
            .unwrap_or_else(now);
    }
    IPAddressPoolStatus {
        assigned_ipv4: clamp(counts.assigned_v4),
        assigned_ipv6: clamp(counts.assigned_v6),
        available_ipv4: clamp(counts.available_v4),
        available_ipv6: clamp(counts.available_v6),
        conditions: conds,
    }
}

fn preview(items: &[String]) -> String {
    let mut s: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    let more = items.len().saturating_sub(5);
    let more_text = format!("{more} more");
    if more > 0 {
        s.push(&more_text);
    }
    s.join(", ")
}

/// One pass: recompute every pool's status from the claims, patch what changed, and release
/// the finalizer of deleted pools nobody uses any more.
pub async fn sync_pools(client: &Client) -> Result<(), kube::Error> {
    let pools_api: Api<IPAddressPool> = Api::all(client.clone());
    let claims_api: Api<IPAddressClaim> = Api::all(client.clone());
    let pools = pools_api.list(&ListParams::default()).await?.items;
    let claims = claims_api.list(&ListParams::default()).await?.items;
    let mut alloc = Allocator::default();
    alloc.set_pools(pools.iter().map(|p| PoolDef::from_crd(p).0).collect());
    let mut by_pool: BTreeMap<String, Vec<std::net::IpAddr>> = BTreeMap::new();
    for c in &claims {
        if let Some((ip, h)) = holding_of(c) {
            by_pool.entry(h.pool.clone()).or_default().push(ip);
            alloc.hold(ip, h);
        }
    }
    for pool in &pools {
        let name = pool.name_any();
        let (def, _) = PoolDef::from_crd(pool);
        let mine = by_pool.get(&name).cloned().unwrap_or_default();
        let inside: Vec<String> = mine.iter().map(ToString::to_string).collect();
        let outside: Vec<String> = mine
            .iter()
            .filter(|ip| !def.contains(**ip))
            .map(ToString::to_string)
            .collect();
        let want = desired_status(pool, &pools, alloc.counts(&name), &inside, &outside);
        if pool.status.as_ref() != Some(&want) {
            let patch = json!({"status": want});
            pools_api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        let has_fin = pool.finalizers().iter().any(|f| f == POOL_FINALIZER);
        let deleting = pool.meta().deletion_timestamp.is_some();
        if has_fin && deleting && mine.is_empty() {
            let rest: Vec<String> = pool
                .finalizers()
                .iter()
                .filter(|f| *f != POOL_FINALIZER)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"finalizers": rest,
                                            "resourceVersion": pool.resource_version()}});
            pools_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            info!(pool = %name, "pool released: no address of it is claimed any more");
        } else if !has_fin && !deleting && !mine.is_empty() {
            let mut fins = pool.finalizers().to_vec();
            fins.push(POOL_FINALIZER.to_string());
            let patch = json!({"metadata": {"finalizers": fins,
                                            "resourceVersion": pool.resource_version()}});
            pools_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// Runs [`sync_pools`] forever (aborted with the provider).
pub async fn status_loop(client: Client, every: Duration) {
    loop {
        if let Err(e) = sync_pools(&client).await {
            debug!(error = %e, "pool status sync failed; retrying");
        }
        tokio::time::sleep(every).await;
    }
}

/// Create (or update) the bare-metal CRDs; with `default_pool`, also create the pool
/// [`DEFAULT_POOL`] when no pool exists yet.
pub async fn install(client: &Client, default_pool: bool) -> Result<(), kube::Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        let name = crd.name_any();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let mut next = crd.clone();
                next.metadata.resource_version = api.get(&name).await?.resource_version();
                api.replace(&name, &PostParams::default(), &next).await?;
            }
            Err(e) => return Err(e),
        }
    }
    if default_pool {
        let pools: Api<IPAddressPool> = Api::all(client.clone());
        if pools
            .list(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            let pool = IPAddressPool {
                metadata: ObjectMeta {
                    name: Some(DEFAULT_POOL.to_string()),
                    ..Default::default()
                },
                spec: IPAddressPoolSpec {
                    addresses: DEFAULT_POOL_ADDRESSES
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    auto_assign: true,
                    avoid_buggy_ips: false,
                    service_allocation: None,
                },
                status: None,
            };
            pools.create(&PostParams::default(), &pool).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pool(name: &str, addrs: &[&str]) -> IPAddressPool {
        let mut p = IPAddressPool::new(
            name,
            IPAddressPoolSpec {
                addresses: addrs.iter().map(|s| s.to_string()).collect(),
                auto_assign: true,
                ..Default::default()
            },
        );
        p.metadata.name = Some(name.into());
        p
    }

    fn cond<'a>(s: &'a IPAddressPoolStatus, t: &str) -> &'a PoolCondition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn conditions_table() {
        let a = pool("a", &["192.0.2.0/24"]);
        let b = pool("b", &["192.0.2.128/25"]);
        let bad = pool("bad", &["192.0.2.1/24", "10.0.0.0/30"]);
        let all = vec![a.clone(), b.clone(), bad.clone()];
        let s = desired_status(&a, &all, PoolCounts::default(), &[], &[]);
        assert_eq!(cond(&s, "Valid").status, "True");
        assert_eq!(cond(&s, "Overlapping").status, "True");
        assert!(cond(&s, "Overlapping").message.contains("b"));
        let s = desired_status(&bad, &all, PoolCounts::default(), &[], &[]);
        assert_eq!(cond(&s, "Valid").reason, "InvalidAddresses");
        assert!(cond(&s, "Valid").message.contains("192.0.2.1/24"));
        let s = desired_status(&a, &all, PoolCounts::default(), &[], &["10.9.9.9".into()]);
        assert_eq!(cond(&s, "AddressesInUse").reason, "RemovedAddressesInUse");
        let mut gone = a.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        let s = desired_status(
            &gone,
            &all,
            PoolCounts::default(),
            &["192.0.2.1".into()],
            &[],
        );
        assert_eq!(cond(&s, "AddressesInUse").reason, "DeletionBlocked");
        let counts = PoolCounts {
            assigned_v4: 1,
            available_v4: 255,
            assigned_v6: 0,
            available_v6: u128::MAX,
        };
        let s = desired_status(&a, &all, counts, &[], &[]);
        assert_eq!(
            (s.assigned_ipv4, s.available_ipv4, s.available_ipv6),
            (1, 255, i64::MAX)
        );
    }
}
