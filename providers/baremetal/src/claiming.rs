//! Choosing an address and claiming it at the API server (the claim is the uniqueness lock).

use std::collections::HashSet;
use std::net::IpAddr;

use frontdesk_core::provider::{IpFamily, ProviderError};
use kube::api::PostParams;
use tracing::{debug, info};

use crate::alloc::{AllocError, Holding, User};
use crate::claims::{claim_object, holding_of};
use crate::ops;
use crate::provider::{BareMetalProvider, MAX_ATTEMPTS, alloc_error};
use crate::request::ServiceRequest;

impl BareMetalProvider {
    /// Choose and claim one address of `family`.
    pub(crate) async fn claim_one(
        &self,
        cluster: &str,
        req: &ServiceRequest,
        family: IpFamily,
        want: Option<IpAddr>,
        prefer_pool: Option<&str>,
    ) -> Result<IpAddr, ProviderError> {
        let mut skip: HashSet<IpAddr> = HashSet::new();
        let mut refreshed = false;
        for _ in 0..MAX_ATTEMPTS {
            let chosen = {
                let mut st = self.state.lock().await;
                match st.alloc.choose(req, family, want, prefer_pool, &skip) {
                    Ok(c) => {
                        // Keep concurrent reconciles off this address until the create is
                        // answered; a reservation is never mistaken for a holding.
                        let reserved = !c.shared && st.alloc.reserve(c.ip);
                        let finalized = st.finalized.contains(&c.pool);
                        Ok((c, finalized, reserved))
                    }
                    Err(e) => Err(e),
                }
            };
            let (choice, finalized, reserved) = match chosen {
                Ok(x) => x,
                // Our view may be stale (a pool just created, a claim released elsewhere):
                // look again once before failing.
                Err(e) if !refreshed && !matches!(e, AllocError::DualStackRequest { .. }) => {
                    refreshed = true;
                    self.resync().await?;
                    continue;
                }
                Err(e) => return Err(alloc_error(e)),
            };
            let outcome = self.try_choice(cluster, req, &choice, finalized).await;
            if reserved {
                self.state.lock().await.alloc.unreserve(choice.ip);
            }
            match outcome? {
                Some(ip) => return Ok(ip),
                None => {
                    skip.insert(choice.ip);
                }
            }
        }
        Err(ProviderError::transient(format!(
            "gave up after {MAX_ATTEMPTS} addresses that were claimed concurrently; will retry"
        )))
    }

    /// Claim (or join) the chosen address. `None`: someone else holds it; try another.
    pub(crate) async fn try_choice(
        &self,
        cluster: &str,
        req: &ServiceRequest,
        choice: &crate::alloc::Choice,
        finalized: bool,
    ) -> Result<Option<IpAddr>, ProviderError> {
        if !finalized {
            ops::add_pool_finalizer(self, &choice.pool).await?;
        }
        if choice.shared {
            return Ok(ops::join_claim(self, choice.ip, req)
                .await?
                .then_some(choice.ip));
        }
        let holding = Holding {
            pool: choice.pool.clone(),
            sharing_key: req.sharing_key.clone(),
            users: vec![User::of(req)],
        };
        let obj = claim_object(cluster, choice.ip, &holding);
        // A 409 on create is AlreadyExists; counted as `Conflict` in the call metrics.
        let res = ops::call(
            &self.ctx,
            "CreateClaim",
            self.claims_api().create(&PostParams::default(), &obj),
        )
        .await;
        match res {
            Ok(created) => {
                let h = holding_of(&created).map_or(holding, |(_, h)| h);
                self.state.lock().await.alloc.hold(choice.ip, h);
                info!(ip = %choice.ip, pool = %choice.pool, service = %req.namespace, name = %req.name, "address claimed");
                Ok(Some(choice.ip))
            }
            Err(ProviderError::Conflict(_)) => {
                debug!(ip = %choice.ip, "address already claimed elsewhere; trying the next");
                // Learn the real holder (it may be shareable, or even us from a past run).
                let name = crate::crd::claim_name(choice.ip);
                match ops::call(&self.ctx, "GetClaim", self.claims_api().get(&name)).await {
                    Ok(c) => {
                        if let Some((ip, h)) = holding_of(&c) {
                            let mine = h.users.iter().any(|u| u.uid == req.uid);
                            self.state.lock().await.alloc.hold(ip, h);
                            if mine {
                                return Ok(Some(ip));
                            }
                        }
                        Ok(None)
                    }
                    // Released between our create and our look: the next round may take it.
                    Err(ProviderError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}
