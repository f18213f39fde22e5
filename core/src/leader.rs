//! Leader election on a `coordination.k8s.io/v1` Lease: one active replica.
//!
//! The holder renews every `renew_interval`; a candidate takes the lease over only once
//! `renewTime + leaseDurationSeconds` has passed, or at once when the holder released it on a
//! clean shutdown (empty `holderIdentity`). All writes carry the resourceVersion they read, so
//! two candidates racing for an expired lease cannot both win: the API server answers one of
//! them 409.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading lease {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing lease {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Clone, Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    lease_duration: Duration,
    renew_interval: Duration,
}

/// Outcome of one acquire-or-renew attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Leader,
    Follower,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
        renew_interval: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration,
            renew_interval,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn read_err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Read {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn write_err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Write {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One attempt to become (or stay) the leader.
    pub async fn try_acquire(&self) -> Result<Attempt, LeaderError> {
        let now = Timestamp::now();
        let duration_secs = self.lease_duration.as_secs().max(1) as i32;
        let existing = match self.api.get_opt(&self.name).await {
            Ok(lease) => lease,
            Err(e) => return Err(self.read_err(e)),
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower),
                Err(e) => Err(self.write_err(e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.identity;
        if !mine && !holder.is_empty() {
            let valid_for = spec.lease_duration_seconds.unwrap_or(duration_secs).max(1);
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let expires = renewed.saturating_add(SignedDuration::from_secs(valid_for.into()));
            if let Ok(expires) = expires
                && expires > now
            {
                return Ok(Attempt::Follower);
            }
            info!(previous = %holder, "lease expired; taking over");
        }
        if !mine {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(MicroTime(now));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(MicroTime(now));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leader),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower),
            Err(e) => Err(self.write_err(e)),
        }
    }

    /// Wait until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire().await {
                Ok(Attempt::Leader) => {
                    info!(identity = %self.identity, lease = %self.name, "became leader");
                    return;
                }
                Ok(Attempt::Follower) => {
                    if !logged {
                        info!(identity = %self.identity, "another replica leads; standing by");
                        logged = true;
                    }
                }
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.renew_interval).await;
        }
    }

    /// Renew until the lease is lost (or cannot be renewed before it would expire); then the
    /// sender flips to false. The caller stops acting at once.
    pub async fn hold(&self, leading: watch::Sender<bool>) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_interval).await;
            match self.try_acquire().await {
                Ok(Attempt::Leader) => {
                    debug!("lease renewed");
                    last_ok = tokio::time::Instant::now();
                }
                Ok(Attempt::Follower) => {
                    warn!("lost the lease to another replica");
                    let _ = leading.send(false);
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "lease renewal failed");
                    // Give up a little before the lease could expire, so two leaders never
                    // overlap even when our clock runs slow.
                    if last_ok.elapsed() + self.renew_interval >= self.lease_duration {
                        let _ = leading.send(false);
                        return;
                    }
                }
            }
        }
    }

    /// Clean shutdown: hand the lease back so a standby takes over without waiting for expiry.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = Some(String::new());
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!("released the lease"),
            Err(e) => warn!(error = %e, "could not release the lease; standby waits for expiry"),
        }
    }
}
