//! Speaker liveness: one `coordination.k8s.io/v1` Lease per node, renewed every ~300 ms.
//!
//! A speaker counts as alive while other speakers keep seeing its Lease change. Expiry is
//! judged on the observer's own monotonic clock (time since the renewal was *seen*), never by
//! comparing `renewTime` with the local wall clock, so node clock skew cannot make a live
//! speaker look dead or a dead one alive. A speaker that cannot renew its own Lease within
//! the expiry stops announcing (fencing): by then the others consider it dead and one of them
//! has taken over. On graceful shutdown the Lease is deleted, so the others re-elect at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Label on every speaker Lease, so speakers watch only these.
pub const SPEAKER_LEASE_LABEL: &str = "frontdesk.dev/speaker";
/// Annotation on a speaker Lease: the interfaces it can answer on now (comma-separated), so
/// the election never picks a node lacking an advertisement's interface.
pub const INTERFACES_ANNOTATION: &str = "frontdesk.dev/interfaces";
/// A renewal older than this (by the Lease's own `renewTime` against our wall clock) is stale
/// when first seen: its speaker is long gone, even allowing for clock skew.
const STALE_AT_FIRST_SIGHT: Duration = Duration::from_secs(10);

pub fn lease_name(node: &str) -> String {
    format!("frontdesk-speaker-{node}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    pub renew: Duration,
    pub expiry: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            renew: Duration::from_millis(300),
            expiry: Duration::from_secs(1),
        }
    }
}

/// What the tracker needs from one observed Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `spec.holderIdentity`: the node; empty or absent once released.
    pub holder: Option<String>,
    /// `spec.renewTime` as sent (changes at every renewal).
    pub renew_time: Option<String>,
    /// How old `renewTime` is by our wall clock (negative skew counts as fresh).
    pub age: Option<Duration>,
    /// The speaker's usable interfaces; `None` when it did not say (counts as any).
    pub interfaces: Option<BTreeSet<String>>,
}

impl Observed {
    pub fn from_lease(lease: &Lease, wall_now: Timestamp) -> Observed {
        let spec = lease.spec.as_ref();
        let renew = spec.and_then(|s| s.renew_time.as_ref());
        Observed {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: renew.map(|t| t.0.to_string()),
            age: renew.map(|t| {
                let span = wall_now.duration_since(t.0);
                Duration::try_from(span).unwrap_or(Duration::ZERO)
            }),
            interfaces: lease.annotations().get(INTERFACES_ANNOTATION).map(|v| {
                v.split(',')
                    .filter(|i| !i.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
        }
    }
}

#[derive(Clone, Debug)]
struct Seen {
    renew_time: Option<String>,
    changed: Instant,
    interfaces: Option<BTreeSet<String>>,
}

/// Which speakers are alive, from the Lease events this speaker has seen (pure).
#[derive(Debug, Default)]
pub struct Tracker {
    /// Lease name → (node, last seen renewal).
    seen: BTreeMap<String, (String, Seen)>,
}

impl Tracker {
    /// A Lease was created or changed. True when that can change the election (a speaker
    /// appeared, came back after expiring, left, or changed interfaces); a routine renewal
    /// is false, so renewals alone never make anyone re-elect.
    pub fn observe(&mut self, lease: &str, o: &Observed, now: Instant, expiry: Duration) -> bool {
        let Some(node) = o.holder.clone() else {
            return self.seen.remove(lease).is_some();
        };
        match self.seen.get_mut(lease) {
            Some((n, seen)) => {
                let mut matters = *n != node || seen.interfaces != o.interfaces;
                *n = node;
                seen.interfaces = o.interfaces.clone();
                if seen.renew_time != o.renew_time {
                    matters |= now.saturating_duration_since(seen.changed) >= expiry;
                    seen.renew_time = o.renew_time.clone();
                    seen.changed = now;
                }
                matters
            }
            None => {
                if o.age.is_some_and(|a| a > STALE_AT_FIRST_SIGHT) || o.renew_time.is_none() {
                    return false;
                }
                let seen = Seen {
                    renew_time: o.renew_time.clone(),
                    changed: now,
                    interfaces: o.interfaces.clone(),
                };
                self.seen.insert(lease.to_string(), (node, seen));
                true
            }
        }
    }

    /// A Lease was deleted; true if it was known.
    pub fn forget(&mut self, lease: &str) -> bool {
        self.seen.remove(lease).is_some()
    }

    /// Nodes whose renewal was seen less than `expiry` ago.
    pub fn alive(&self, now: Instant, expiry: Duration) -> BTreeSet<String> {
        self.seen
            .values()
            .filter(|(_, s)| now.saturating_duration_since(s.changed) < expiry)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The interfaces each speaker last said it can answer on (speakers that did not say
    /// are absent: any interface).
    pub fn interfaces(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.seen
            .values()
            .filter_map(|(n, s)| Some((n.clone(), s.interfaces.clone()?)))
            .collect()
    }

    /// The next moment some alive speaker would expire (to re-elect right then).
    pub fn next_expiry(&self, now: Instant, expiry: Duration) -> Option<Instant> {
        self.seen
            .values()
            .map(|(_, s)| s.changed + expiry)
            .filter(|t| *t > now)
            .min()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("renewing Lease {namespace}/{name}: {source}")]
    Renew {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

fn lease_body(node: &str, timing: LeaseTiming, interfaces: &[String]) -> Lease {
    let secs = timing.expiry.as_secs_f64().ceil().max(1.0) as i32;
    let mut lease: Lease = serde_json::from_value(json!({
        "metadata": {
            "name": lease_name(node),
            "labels": {SPEAKER_LEASE_LABEL: "true"},
            "annotations": {INTERFACES_ANNOTATION: interfaces.join(",")},
        },
        "spec": {"holderIdentity": node, "leaseDurationSeconds": secs},
    }))
    .unwrap_or_default();
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(MicroTime(Timestamp::now()));
    }
    lease
}

/// Renew once: a merge patch of `renewTime` (and holder, so a released Lease is re-taken);
/// created when missing.
pub async fn renew_once(
    api: &Api<Lease>,
    node: &str,
    timing: LeaseTiming,
    interfaces: &[String],
) -> Result<(), LeaseError> {
    let name = lease_name(node);
    let body = lease_body(node, timing, interfaces);
    let err = |source| LeaseError::Renew {
        namespace: api.namespace().unwrap_or_default().to_string(),
        name: name.clone(),
        source,
    };
    let patch = json!({
        "metadata": {"labels": body.labels(), "annotations": body.annotations()},
        "spec": body.spec,
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            match api.create(&PostParams::default(), &body).await {
                Ok(_) => Ok(()),
                // Someone (our previous incarnation's request) created it meanwhile.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(err(e)),
            }
        }
        Err(e) => Err(err(e)),
    }
}

/// Renews until `stop` flips; publishes the time of the last success on `last_ok`. Each
/// request is bounded by the expiry: a renewal that slow is a failed one.
///
/// `links` are the usable interfaces (published on the Lease). While there is none (link
/// down, carrier lost) the Lease is
/// released and not renewed, so the others take over at once instead of leaving the addresses
/// of a node that cannot answer for them unanswered.
pub async fn renew_loop(
    api: Api<Lease>,
    node: String,
    timing: LeaseTiming,
    last_ok: watch::Sender<Option<Instant>>,
    mut links: watch::Receiver<Vec<String>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(timing.renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut held = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = links.changed() => {
                if r.is_err() { break; }
            }
            _ = stop.cancelled() => break,
        }
        let ifaces = links.borrow_and_update().clone();
        if ifaces.is_empty() {
            if held {
                warn!(node = %node, "no usable interface: releasing the speaker Lease");
                last_ok.send_replace(None);
                release(&api, &node).await;
                held = false;
            }
            continue;
        }
        let started = Instant::now();
        match tokio::time::timeout(timing.expiry, renew_once(&api, &node, timing, &ifaces)).await {
            Ok(Ok(())) => {
                if failing {
                    info!(node = %node, "speaker Lease renewed again");
                    failing = false;
                }
                held = true;
                last_ok.send_replace(Some(started));
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "speaker Lease renewal failed");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    warn!(node = %node, "speaker Lease renewal timed out");
                }
                failing = true;
            }
        }
    }
}

/// Graceful release: delete our Lease so the others re-elect without waiting for expiry.
pub async fn release(api: &Api<Lease>, node: &str) {
    let name = lease_name(node);
    match tokio::time::timeout(
        Duration::from_secs(2),
        api.delete(&name, &DeleteParams::default()),
    )
    .await
    {
        Ok(Ok(_)) => info!(lease = %name, "speaker Lease released"),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
            debug!(lease = %name, "no Lease to release")
        }
        Ok(Err(e)) => warn!(lease = %name, error = %e, "could not release the speaker Lease"),
        Err(_) => warn!(lease = %name, "releasing the speaker Lease timed out"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obs(holder: Option<&str>, renew: Option<&str>, age_s: u64) -> Observed {
        Observed {
            holder: holder.map(str::to_string),
            renew_time: renew.map(str::to_string),
            age: Some(Duration::from_secs(age_s)),
            interfaces: None,
        }
    }

    #[test]
    fn tracker_table() {
        let expiry = Duration::from_secs(1);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut tr = Tracker::default();
        // (lease, observation or None = deleted, at ms, alive afterwards, matters to the
        // election)
        type Step = (
            &'static str,
            Option<Observed>,
            u64,
            &'static [&'static str],
            bool,
        );
        let o = |n: Option<&str>, r: &str, age: u64| Some(obs(n, Some(r), age));
        let steps: Vec<Step> = vec![
            ("l1", o(Some("n1"), "r1", 0), 0, &["n1"], true),
            ("l2", o(Some("n2"), "r1", 0), 0, &["n1", "n2"], true),
            // Stale at first sight: ignored.
            ("l3", o(Some("n3"), "r0", 60), 0, &["n1", "n2"], false),
            // n1 renews at 800 ms (routine); n2 does not.
            ("l1", o(Some("n1"), "r2", 0), 800, &["n1", "n2"], false),
            // Same renewTime again (a relist): not a renewal.
            ("l2", o(Some("n2"), "r1", 0), 999, &["n1", "n2"], false),
            ("l2", o(Some("n2"), "r1", 0), 1000, &["n1"], false),
            // n1 released (holder cleared).
            ("l1", o(None, "r3", 0), 1200, &[], true),
            // n2 comes back after expiring (matters), then its Lease is deleted.
            ("l2", o(Some("n2"), "r9", 0), 1300, &["n2"], true),
            ("l2", None, 1400, &[], true),
            ("l2", None, 1500, &[], false),
        ];
        for (lease, ob, at, want, matters) in steps {
            let m = match &ob {
                Some(ob) => tr.observe(lease, ob, ms(at), expiry),
                None => tr.forget(lease),
            };
            let got: Vec<String> = tr.alive(ms(at), expiry).into_iter().collect();
            assert_eq!(got, *want, "{lease} at {at} ms");
            assert_eq!(m, matters, "{lease} at {at} ms: matters");
        }
    }

    #[test]
    fn next_expiry_is_the_earliest_live_deadline() {
        let expiry = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut tr = Tracker::default();
        tr.observe("a", &obs(Some("a"), Some("1"), 0), t0, expiry);
        tr.observe(
            "b",
            &obs(Some("b"), Some("1"), 0),
            t0 + Duration::from_millis(300),
            expiry,
        );
        assert_eq!(tr.next_expiry(t0, expiry), Some(t0 + expiry));
        assert_eq!(
            tr.next_expiry(t0 + expiry, expiry),
            Some(t0 + Duration::from_millis(1300))
        );
        assert_eq!(tr.next_expiry(t0 + Duration::from_secs(5), expiry), None);
    }

    #[test]
    fn lease_body_rounds_the_duration_up_and_is_labelled() {
        let l = lease_body(
            "node-1",
            LeaseTiming {
                renew: Duration::from_millis(300),
                expiry: Duration::from_millis(1500),
            },
            &["eth0".to_string(), "eth1".to_string()],
        );
        assert_eq!(l.annotations()[INTERFACES_ANNOTATION], "eth0,eth1");
        let seen = Observed::from_lease(&l, Timestamp::now());
        assert_eq!(
            seen.interfaces,
            Some(["eth0".to_string(), "eth1".to_string()].into())
        );
        assert_eq!(l.name_any(), "frontdesk-speaker-node-1");
        assert_eq!(l.labels()[SPEAKER_LEASE_LABEL], "true");
        let spec = l.spec.unwrap();
        assert_eq!(spec.lease_duration_seconds, Some(2));
        assert_eq!(spec.holder_identity.as_deref(), Some("node-1"));
        assert!(spec.renew_time.is_some());
    }
}
