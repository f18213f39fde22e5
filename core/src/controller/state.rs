//! What the controller remembers between reconciles: per-Service applied state, per-Service
//! locks (one owner per load balancer at a time), per-Service backoff, and the backend snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::provider::{BackendNode, ProvisioningRecord, ServiceKey};

/// The last converged state of one Service's load balancer.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub uid: String,
    pub fingerprint: u64,
    /// `Backends::version` the load balancer's backends were last set from.
    pub nodes_version: u64,
    pub record: ProvisioningRecord,
    /// Converged (Ready); false while provisioning or after a failure.
    pub ready: bool,
    /// While the cloud is still provisioning: when to ask again. Wake-ups before then (our
    /// own status patch, a resync) only requeue, so a load balancer that takes minutes to
    /// become active costs one ensure per poll, not one per watch event.
    pub poll_at: Option<tokio::time::Instant>,
}

#[derive(Debug, Default)]
pub struct AppliedMap {
    inner: Mutex<HashMap<ServiceKey, Applied>>,
}

impl AppliedMap {
    pub fn get(&self, key: &ServiceKey) -> Option<Applied> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
    pub fn insert(&self, key: ServiceKey, applied: Applied) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, applied);
    }
    pub fn remove(&self, key: &ServiceKey) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
    /// Mark one entry as needing a full ensure on its next reconcile.
    pub fn invalidate(&self, key: &ServiceKey) {
        if let Some(a) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
        {
            a.ready = false;
        }
    }
    pub fn set_nodes_version(&self, key: &ServiceKey, uid: &str, version: u64) {
        if let Some(a) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
            && a.uid == uid
        {
            a.nodes_version = version;
        }
    }
    pub fn snapshot(&self) -> Vec<(ServiceKey, Applied)> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, a)| (k.clone(), a.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One async mutex per Service: apply, node sync and drift never touch the same load balancer
/// at the same time (upstream's node-sync-vs-update race, kubernetes#121090).
#[derive(Debug, Default)]
pub struct KeyedLocks {
    inner: Mutex<HashMap<ServiceKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &ServiceKey) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            // Drop locks nobody holds or waits for, so the map does not grow without bound.
            if map.len() > 4096 {
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(key.clone()).or_default().clone()
        };
        m.lock_owned().await
    }
}

/// Per-Service exponential backoff with jitter (backon), reset on success.
///
/// Also remembers until when a failed Service must wait and for which spec: our own status
/// patch after a failure wakes the controller at once, and that wake-up must not become an
/// immediate retry. A changed spec (new fingerprint) is retried at once.
#[derive(Debug)]
pub struct Backoffs {
    builder: ExponentialBuilder,
    inner: Mutex<HashMap<ServiceKey, Retry>>,
}

#[derive(Debug)]
struct Retry {
    ladder: ExponentialBackoff,
    not_before: tokio::time::Instant,
    fingerprint: u64,
}

impl Backoffs {
    pub fn new(base: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(base)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            builder,
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the next attempt after one more failure of the spec `fingerprint`.
    pub fn next_delay(&self, key: &ServiceKey, fingerprint: u64) -> Duration {
        self.hold(key, fingerprint, None)
    }

    /// Like `next_delay`, but at least `min` (a cloud's Retry-After).
    pub fn hold(&self, key: &ServiceKey, fingerprint: u64, min: Option<Duration>) -> Duration {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        let r = map.entry(key.clone()).or_insert_with(|| Retry {
            ladder: self.builder.build(),
            not_before: now,
            fingerprint,
        });
        let step = r.ladder.next().unwrap_or(Duration::from_secs(300));
        let delay = min.map_or(step, |m| m.max(step.min(m * 2)));
        r.not_before = now + delay;
        r.fingerprint = fingerprint;
        delay
    }

    /// How much longer a Service that failed with this same spec must wait, if at all.
    pub fn remaining(&self, key: &ServiceKey, fingerprint: u64) -> Option<Duration> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let r = map.get(key)?;
        let now = tokio::time::Instant::now();
        (r.fingerprint == fingerprint && r.not_before > now).then(|| r.not_before - now)
    }

    pub fn reset(&self, key: &ServiceKey) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Services currently waiting on a retry.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The eligible backend set node sync has published (see [`super::coalesce`]); versioned so
/// each load balancer knows whether it is up to date.
#[derive(Debug)]
pub struct Backends {
    inner: RwLock<Published>,
    /// True while a newer set is being held back: node sync pauses writes that would only
    /// carry the outdated set.
    held: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Published {
    version: u64,
    nodes: Arc<Vec<BackendNode>>,
    /// The newest version that took a node away (or changed one): a load balancer older
    /// than this still sends traffic to it, so its update is never paused.
    removal_version: u64,
}

impl Default for Backends {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Published::default()),
            held: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Backends {
    pub fn current(&self) -> (u64, Arc<Vec<BackendNode>>) {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (g.version, g.nodes.clone())
    }

    /// Replace the set if it differs; returns the (possibly new) version.
    pub fn update(&self, nodes: Vec<BackendNode>) -> (u64, bool) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if *g.nodes == nodes && g.version > 0 {
            return (g.version, false);
        }
        let removes = removes_any(&g.nodes, &nodes);
        g.version += 1;
        if removes {
            g.removal_version = g.version;
        }
        g.nodes = Arc::new(nodes);
        (g.version, true)
    }

    /// Whether `nodes` lacks a published node, or has one with different addresses.
    pub fn would_remove(&self, nodes: &[BackendNode]) -> bool {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        removes_any(&g.nodes, nodes)
    }

    pub fn removal_version(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .removal_version
    }

    pub fn set_held(&self, held: bool) {
        self.held
            .send_if_modified(|h| std::mem::replace(h, held) != held);
    }

    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Wait until no newer set is held back, at most `limit` (a hold never outlasts the
    /// configured maximum, so this only bounds a stopped tracker).
    pub async fn wait_unheld(&self, limit: std::time::Duration) {
        let mut rx = self.held.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|held| !*held)).await;
    }
}

/// Whether `new` lacks a node of `old` (by name, or the same name with other addresses,
/// provider id or zone). Both are sorted by name.
fn removes_any(old: &[BackendNode], new: &[BackendNode]) -> bool {
    old.iter().any(|o| {
        new.binary_search_by(|n| n.name.cmp(&o.name))
            .map_or(true, |i| new[i] != *o)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_resets() {
        let b = Backoffs::new(Duration::from_secs(5), Duration::from_secs(300));
        let k = ServiceKey::new("default", "web");
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay(&k, 1)).collect();
        // Jitter adds up to one more delay unit, never less than the ladder.
        assert!(
            d[0] >= Duration::from_secs(5) && d[0] <= Duration::from_secs(10),
            "{d:?}"
        );
        assert!(d[3] >= Duration::from_secs(40), "{d:?}");
        assert!(d[9] <= Duration::from_secs(600), "{d:?}");
        assert!(b.remaining(&k, 1).is_some());
        assert!(
            b.remaining(&k, 2).is_none(),
            "a changed spec is not held back"
        );
        b.reset(&k);
        assert!(b.remaining(&k, 1).is_none());
        assert!(b.next_delay(&k, 1) <= Duration::from_secs(10));
        let held = b.hold(&k, 1, Some(Duration::from_secs(30)));
        assert!(held >= Duration::from_secs(30), "{held:?}");
    }

    #[test]
    fn backends_version_only_moves_on_change() {
        let b = Backends::default();
        let n = BackendNode {
            name: "a".into(),
            provider_id: None,
            addresses: vec![],
            zone: None,
        };
        let (v1, changed) = b.update(vec![n.clone()]);
        assert!(changed);
        let (v2, changed) = b.update(vec![n]);
        assert!(!changed);
        assert_eq!(v1, v2);
        assert_eq!(b.removal_version(), 0);
        let (v3, changed) = b.update(vec![]);
        assert!(changed && v3 > v2);
        assert_eq!(b.removal_version(), v3);
    }

    #[test]
    fn removal_means_gone_or_changed() {
        let node = |name: &str, ip: &str| BackendNode {
            name: name.into(),
            provider_id: None,
            addresses: vec![ip.parse().unwrap()],
            zone: None,
        };
        let b = Backends::default();
        b.update(vec![node("a", "10.0.0.1"), node("b", "10.0.0.2")]);
        let added = [
            node("a", "10.0.0.1"),
            node("b", "10.0.0.2"),
            node("c", "10.0.0.3"),
        ];
        assert!(!b.would_remove(&added));
        assert!(b.would_remove(&[node("a", "10.0.0.1")]));
        assert!(b.would_remove(&[node("a", "10.0.0.1"), node("b", "10.0.0.9")]));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_unheld_returns_on_release_or_limit() {
        let b = std::sync::Arc::new(Backends::default());
        b.wait_unheld(Duration::from_secs(1)).await;
        b.set_held(true);
        let started = tokio::time::Instant::now();
        b.wait_unheld(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let b2 = b.clone();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            b2.set_held(false);
        });
        let started = tokio::time::Instant::now();
        b.wait_unheld(Duration::from_secs(60)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        release.await.unwrap();
    }
}
