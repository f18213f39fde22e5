//! Forced watch expiry: what a real API server does to its clients when its watch cache is
//! re-initialised after an etcd compaction (or the server restarts). Every open watch ends,
//! and resuming from any resourceVersion handed out so far gets 410 Gone, so every informer
//! or kube-runtime watcher must relist. Benchmarks use it to measure a controller's memory
//! while it relists; tests use it to prove clients recover.

use tokio_util::sync::CancellationToken;

use super::{Store, key};

/// Watch starts of one resource type, as counted by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Watches that started (synthetic initial state, replay, or live only).
    pub started: u64,
    /// Watch starts answered with 410 Gone (their resourceVersion was too old).
    pub gone: u64,
    /// Watches started from a resourceVersion at or above the last expiry's floor: only a
    /// client that listed (or watched) after the expiry can hold such a version, so after an
    /// expiry this counts completed relists.
    pub resumed_after_expiry: u64,
}

impl Store {
    /// Ends every open watch and makes every resourceVersion handed out so far too old: a
    /// watch resumed from one is answered 410 Gone. The resourceVersion advances by one
    /// without an object change, so a list made afterwards returns a version that is
    /// watchable again (otherwise the relist's own version would be refused forever).
    /// Returns the new floor: the oldest resourceVersion still served.
    pub fn expire_watches(&self) -> u64 {
        let mut st = self.write();
        st.rv += 1;
        let floor = st.rv;
        st.compacted = floor;
        // The compacted history can never be replayed again; drop it.
        for history in st.history.values_mut() {
            history.events.clear();
            history.floor = floor;
        }
        let old = std::mem::replace(&mut st.expiry, CancellationToken::new());
        // Under the write lock: a watch starting concurrently either holds the old token (and
        // ends now) or sees the new floor.
        old.cancel();
        floor
    }

    /// Watch starts of `group/plural` since the store began.
    pub fn watch_stats(&self, group: &str, plural: &str) -> WatchStats {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(group, plural))
            .copied()
            .unwrap_or_default()
    }

    pub(super) fn count_watch(
        &self,
        group: &str,
        plural: &str,
        since: Option<u64>,
        floor: u64,
        ok: bool,
    ) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let s: &mut WatchStats = stats.entry(key(group, plural)).or_default();
        if !ok {
            s.gone += 1;
            return;
        }
        s.started += 1;
        if floor > 0 && since.is_some_and(|rv| rv >= floor) {
            s.resumed_after_expiry += 1;
        }
    }
}

/// Just the store function, without HTTP (the server's test covers the wire; watch.rs's
/// covers open streams).
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cm(name: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn every_old_version_is_gone_and_a_relist_is_watchable() {
        let store = Store::default();
        let (_, rv_before_any) = store.list("", "nodes", None);
        store.create("", "configmaps", cm("a")).unwrap();
        let (_, listed) = store.list("", "configmaps", None);
        let open = store
            .watch_from("", "configmaps", None, Some(listed), false)
            .unwrap();
        assert!(!open.expired.is_cancelled());

        let floor = store.expire_watches();
        assert_eq!(floor, listed + 1);
        assert!(open.expired.is_cancelled(), "open watches must end");
        // Every version handed out before is gone, for types with history and without.
        for (plural, since) in [("configmaps", listed), ("nodes", rv_before_any)] {
            let err = store
                .watch_from("", plural, None, Some(since), false)
                .err()
                .unwrap();
            assert_eq!(
                (err.code, err.reason.as_str()),
                (410, "Expired"),
                "{plural}"
            );
            assert_eq!(
                err.message,
                format!("too old resource version: {since} ({floor})")
            );
        }
        // The relist: its version is the floor, and a watch from it starts and sees changes.
        let (items, relisted) = store.list("", "configmaps", None);
        assert_eq!((items.len(), relisted), (1, floor));
        let resumed = store
            .watch_from("", "configmaps", None, Some(relisted), false)
            .unwrap();
        assert!(resumed.replay.is_empty());
        assert!(!resumed.expired.is_cancelled());
        store.create("", "configmaps", cm("b")).unwrap();
        let w = store
            .watch_from("", "configmaps", None, Some(relisted), false)
            .unwrap();
        assert_eq!(w.replay.len(), 1);

        let s = store.watch_stats("", "configmaps");
        assert_eq!(
            s,
            WatchStats {
                started: 3,
                gone: 1,
                resumed_after_expiry: 2
            }
        );
        assert_eq!(store.watch_stats("", "nodes").gone, 1);
        // A second expiry moves the floor again: the relist's version is gone too.
        let second = store.expire_watches();
        assert!(second > floor);
        assert!(resumed.expired.is_cancelled());
        let err = store
            .watch_from("", "configmaps", None, Some(relisted), false)
            .err()
            .unwrap();
        assert_eq!(err.code, 410);
    }
}
