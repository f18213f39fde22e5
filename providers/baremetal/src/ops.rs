//! Claim and pool writes of the provider (each one API call, counted through the context).

use std::future::Future;
use std::net::IpAddr;

use frontdesk_core::provider::{ProviderContext, ProviderError};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::alloc::{Holding, User, share_check};
use crate::claims::{self, claim_user, classify, holding_of};
use crate::crd::{IPAddressClaim, IPAddressPool, POOL_FINALIZER, claim_labels, claim_name};
use crate::provider::{BareMetalProvider, PROVIDER};
use crate::request::ServiceRequest;

/// One API call: budget, metrics, classification.
pub async fn call<T, F>(ctx: &ProviderContext, op: &str, fut: F) -> Result<T, ProviderError>
where
    F: Future<Output = Result<T, kube::Error>>,
{
    ctx.call(PROVIDER, op, &[], async {
        fut.await.map_err(|e| classify(op, e))
    })
    .await
}

/// A pool whose addresses are claimed carries our finalizer, so deleting it waits until the
/// last Service has released its address (the pool's `AddressesInUse` condition says who).
///
/// The patch carries the resourceVersion read, and the pool's status is written every few
/// seconds (and by other replicas): a 409 here is routine, so read again and retry instead of
/// failing the Service's whole allocation.
pub async fn add_pool_finalizer(p: &BareMetalProvider, pool: &str) -> Result<(), ProviderError> {
    let api: Api<IPAddressPool> = Api::all(p.client.clone());
    let mut last = None;
    for _ in 0..8 {
        let obj = call(&p.ctx, "GetPool", api.get(pool)).await?;
        if obj.finalizers().iter().any(|f| f == POOL_FINALIZER) {
            last = None;
            break;
        }
        if obj.meta().deletion_timestamp.is_some() {
            return Err(ProviderError::transient(format!(
                "pool {pool} is being deleted; choosing another"
            )));
        }
        let mut finalizers = obj.finalizers().to_vec();
        finalizers.push(POOL_FINALIZER.to_string());
        let patch = json!({"metadata": {"finalizers": finalizers,
                                        "resourceVersion": obj.resource_version()}});
        match call(
            &p.ctx,
            "PatchPool",
            api.patch(pool, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e @ ProviderError::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    p.state.lock().await.finalized.insert(pool.to_string());
    Ok(())
}

async fn replace_claim(
    p: &BareMetalProvider,
    mut claim: IPAddressClaim,
    users: Vec<User>,
    sharing_key: Option<String>,
) -> Result<Option<Holding>, ProviderError> {
    let cluster = claim
        .labels()
        .get(crate::crd::CLUSTER_LABEL)
        .cloned()
        .unwrap_or_default();
    claim.spec.users = users.iter().map(claim_user).collect();
    claim.spec.sharing_key = sharing_key;
    claim.metadata.labels = Some(claim_labels(&cluster, &claim.spec.pool, &claim.spec.users));
    let name = claim.name_any();
    let res = p
        .ctx
        .call(PROVIDER, "ReplaceClaim", &[], async {
            Ok(p.claims_api()
                .replace(&name, &PostParams::default(), &claim)
                .await)
        })
        .await?;
    match res {
        Ok(c) => Ok(holding_of(&c).map(|(_, h)| h)),
        Err(e) if claims::is_conflict(&e) || claims::is_not_found(&e) => Ok(None),
        Err(e) => Err(classify("replacing IPAddressClaim", e)),
    }
}

async fn get_claim(
    p: &BareMetalProvider,
    ip: IpAddr,
) -> Result<Option<IPAddressClaim>, ProviderError> {
    match call(&p.ctx, "GetClaim", p.claims_api().get(&claim_name(ip))).await {
        Ok(c) => Ok(Some(c)),
        Err(ProviderError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Join a shared address. `Ok(false)`: it changed under us (gone, or no longer compatible).
pub async fn join_claim(
    p: &BareMetalProvider,
    ip: IpAddr,
    req: &ServiceRequest,
) -> Result<bool, ProviderError> {
    for _ in 0..8 {
        let Some(claim) = get_claim(p, ip).await? else {
            p.state.lock().await.alloc.release(ip);
            return Ok(false);
        };
        let Some((_, current)) = holding_of(&claim) else {
            return Ok(false);
        };
        if current.users.iter().any(|u| u.uid == req.uid) {
            p.state.lock().await.alloc.hold(ip, current);
            return Ok(true);
        }
        if share_check(&current, req).is_err() {
            p.state.lock().await.alloc.hold(ip, current);
            return Ok(false);
        }
        let mut users = current.users.clone();
        users.push(User::of(req));
        let key = current.sharing_key.clone();
        if let Some(h) = replace_claim(p, claim, users, key).await? {
            p.state.lock().await.alloc.hold(ip, h);
            return Ok(true);
        }
    }
    Ok(false)
}

/// Keep the claim's record of this Service (ports, backend key, sole user's sharing key) in
/// step with the Service, so sharing decisions see today's ports.
pub async fn refresh_user(
    p: &BareMetalProvider,
    ip: IpAddr,
    req: &ServiceRequest,
) -> Result<(), ProviderError> {
    let me = User::of(req);
    let up_to_date = {
        let st = p.state.lock().await;
        st.alloc.holding(ip).is_some_and(|h| {
            let sole = h.users.iter().all(|u| u.uid == req.uid);
            h.users.contains(&me) && (!sole || h.sharing_key == req.sharing_key)
        })
    };
    if up_to_date {
        return Ok(());
    }
    let Some(claim) = get_claim(p, ip).await? else {
        p.state.lock().await.alloc.release(ip);
        return Err(ProviderError::transient(format!(
            "claim for {ip} disappeared; allocating again"
        )));
    };
    let Some((_, current)) = holding_of(&claim) else {
        return Ok(());
    };
    let sole = current.users.iter().all(|u| u.uid == req.uid);
    let key = if sole {
        req.sharing_key.clone()
    } else {
        current.sharing_key.clone()
    };
    let users: Vec<User> = current
        .users
        .iter()
        .map(|u| {
            if u.uid == req.uid {
                me.clone()
            } else {
                u.clone()
            }
        })
        .collect();
    match replace_claim(p, claim, users, key).await? {
        Some(h) => {
            p.state.lock().await.alloc.hold(ip, h);
            Ok(())
        }
        None => Err(ProviderError::Conflict(format!(
            "claim for {ip} changed concurrently; will retry"
        ))),
    }
}

/// Stop using `ip` for Service `uid`: leave a shared claim, delete a sole one. Idempotent.
pub async fn release(p: &BareMetalProvider, ip: IpAddr, uid: &str) -> Result<(), ProviderError> {
    for _ in 0..8 {
        let Some(claim) = get_claim(p, ip).await? else {
            p.state.lock().await.alloc.release(ip);
            return Ok(());
        };
        let Some((_, current)) = holding_of(&claim) else {
            return Ok(());
        };
        if !current.users.iter().any(|u| u.uid == uid) {
            p.state.lock().await.alloc.hold(ip, current);
            return Ok(());
        }
        let rest: Vec<User> = current
            .users
            .iter()
            .filter(|u| u.uid != uid)
            .cloned()
            .collect();
        if rest.is_empty() {
            // Precondition: delete only the version we looked at, so a Service that joined
            // meanwhile is not dropped.
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: claim.resource_version(),
                    uid: claim.uid(),
                }),
                ..DeleteParams::default()
            };
            let name = claim.name_any();
            let res = p
                .ctx
                .call(PROVIDER, "DeleteClaim", &[], async {
                    Ok(p.claims_api().delete(&name, &dp).await)
                })
                .await?;
            match res {
                Ok(_) => {
                    p.state.lock().await.alloc.release(ip);
                    return Ok(());
                }
                Err(e) if claims::is_not_found(&e) => {
                    p.state.lock().await.alloc.release(ip);
                    return Ok(());
                }
                Err(e) if claims::is_conflict(&e) => continue,
                Err(e) => return Err(classify("deleting IPAddressClaim", e)),
            }
        }
        let key = current.sharing_key.clone();
        if let Some(h) = replace_claim(p, claim, rest, key).await? {
            p.state.lock().await.alloc.hold(ip, h);
            return Ok(());
        }
    }
    Err(ProviderError::Conflict(format!(
        "claim for {ip} kept changing while releasing it; will retry"
    )))
}
