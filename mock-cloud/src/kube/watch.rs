//! Watch streams: one compact JSON event per line (kube-rs and the Python client read line by
//! line), synthetic `ADDED`s or history replay first, then live changes, bookmarks only when
//! asked for, and a clean end at `timeoutSeconds`, on lag, on server shutdown, or when the
//! store expires every watch (the client's resume then gets 410 Gone and it relists).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::errors::ApiError;
use super::resources::ResourceInfo;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, Store, StoreEvent};
use super::table;

/// How event objects are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    Json,
    /// `as=Table`; `full` = `includeObject=Object`.
    Table {
        full: bool,
    },
}

/// Everything one watch request asked for.
pub struct WatchParams {
    pub info: Arc<ResourceInfo>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `resourceVersion=N` (N > 0); `None` for unset or `0`.
    pub since: Option<u64>,
    /// Send the current state as `ADDED` first.
    pub send_initial: bool,
    /// `sendInitialEvents=true`: mark the end of the initial state with a bookmark.
    pub initial_end_bookmark: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
    pub render: Render,
    pub shutdown: CancellationToken,
}

/// The object as served at `info`'s version: stored objects keep the apiVersion they were
/// written with, which differs for a multi-version CRD read through another version.
pub fn as_served<'a>(obj: &'a Value, info: &ResourceInfo) -> Cow<'a, Value> {
    let want = info.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return Cow::Borrowed(obj);
    }
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".to_string(), Value::String(want));
    }
    Cow::Owned(o)
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    object: &'a Value,
}

fn line(type_: &str, object: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(&Event { type_, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// A stream holding only the `ERROR` event of a failed watch start (upstream answers 200 and
/// reports the 410 inside the stream).
pub fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status())
}

struct Emitter {
    params: WatchParams,
    tx: mpsc::Sender<Bytes>,
    first: bool,
}

impl Emitter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.params.namespace.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                == ns
        });
        ns_ok && self.params.labels.matches(obj) && self.params.fields.matches(obj)
    }

    /// What a filtered watcher sees of a change: an object entering the selection is
    /// `ADDED`, one leaving it `DELETED` (upstream semantics).
    fn transition(&self, ev: &StoreEvent) -> Option<EventType> {
        if ev.group != self.params.info.group || ev.plural != self.params.info.plural {
            return None;
        }
        let now = self.matches(&ev.object);
        match ev.event {
            EventType::Added | EventType::Deleted => now.then_some(ev.event),
            EventType::Modified => {
                let was = ev.old.as_deref().is_none_or(|o| self.matches(o));
                match (was, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }

    async fn send_object(&mut self, t: EventType, obj: &Value) -> bool {
        let info = &self.params.info;
        let bytes = match self.params.render {
            Render::Json => line(t.as_str(), &as_served(obj, info)),
            Render::Table { full } => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let served = as_served(obj, info);
                let t_obj = table::to_table(info, &[served.as_ref()], rv, full, self.first);
                line(t.as_str(), &t_obj)
            }
        };
        self.first = false;
        self.tx.send(bytes).await.is_ok()
    }

    async fn send_bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.params.info.kind, "apiVersion": self.params.info.api_version(), "metadata": metadata});
        self.tx.send(line("BOOKMARK", &obj)).await.is_ok()
    }
}

/// Starts a watch and returns the receiving end of its lines. A failed start (410) yields a
/// single `ERROR` line.
pub fn start(store: &Store, params: WatchParams) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let begin = store.watch_from(
        &params.info.group,
        &params.info.plural,
        params.namespace.as_deref(),
        params.since,
        params.send_initial,
    );
    match begin {
        Err(e) => {
            // Fresh channel with capacity: cannot be full.
            let _ = tx.try_send(error_line(&e));
        }
        Ok(begin) => {
            let emitter = Emitter {
                params,
                tx,
                first: true,
            };
            tokio::spawn(run(emitter, begin));
        }
    }
    rx
}

async fn run(mut em: Emitter, begin: super::store::WatchStart) {
    let super::store::WatchStart {
        initial,
        replay,
        mut rx,
        start_rv,
        expired,
    } = begin;
    for obj in &initial {
        if em.matches(obj) && !em.send_object(EventType::Added, obj).await {
            return;
        }
    }
    let mut last_rv = start_rv;
    for ev in &replay {
        if let Some(t) = em.transition(ev)
            && !em.send_object(t, &ev.object).await
        {
            return;
        }
        last_rv = last_rv.max(ev.resource_version);
    }
    if em.params.initial_end_bookmark && !em.send_bookmark(start_rv, true).await {
        return;
    }
    let deadline = tokio::time::sleep(em.params.timeout);
    tokio::pin!(deadline);
    let interval = em.params.bookmark_interval.max(Duration::from_millis(10));
    let idle = tokio::time::sleep(interval);
    tokio::pin!(idle);
    let shutdown = em.params.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = expired.cancelled() => return,
            _ = &mut deadline => return,
            _ = em.tx.closed() => return,
            _ = &mut idle, if em.params.bookmarks => {
                if !em.send_bookmark(last_rv, false).await {
                    return;
                }
                idle.as_mut().reset(tokio::time::Instant::now() + interval);
            }
            r = rx.recv() => match r {
                Ok(ev) => {
                    if ev.resource_version <= last_rv {
                        continue;
                    }
                    last_rv = ev.resource_version;
                    if let Some(t) = em.transition(&ev) {
                        if !em.send_object(t, &ev.object).await {
                            return;
                        }
                        idle.as_mut().reset(tokio::time::Instant::now() + interval);
                    }
                }
                // Too far behind (or the store is gone): end the stream; clients re-watch
                // from their last RV, which the history still covers.
                Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(store: &Store, since: Option<u64>, initial: bool, labels: &str) -> WatchParams {
        WatchParams {
            info: Arc::new(store.resource("", "configmaps").unwrap()),
            namespace: Some("default".into()),
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::default(),
            since,
            send_initial: initial,
            initial_end_bookmark: initial,
            bookmarks: false,
            timeout: Duration::from_secs(5),
            bookmark_interval: Duration::from_secs(1),
            render: Render::Json,
            shutdown: CancellationToken::new(),
        }
    }

    async fn next(rx: &mut mpsc::Receiver<Bytes>) -> Value {
        let b = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.last(), Some(&b'\n'));
        assert_eq!(b.iter().filter(|c| **c == b'\n').count(), 1);
        serde_json::from_slice(&b).unwrap()
    }

    fn cm(name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}}})
    }

    #[tokio::test]
    async fn initial_then_live_with_selector_transitions() {
        let store = Store::default();
        store.create("", "configmaps", cm("a", "web")).unwrap();
        store.create("", "configmaps", cm("b", "db")).unwrap();
        let mut rx = start(&store, params(&store, None, true, "app=web"));
        let e = next(&mut rx).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("a"))
        );
        assert_eq!(e["object"]["kind"], "ConfigMap");
        let e = next(&mut rx).await;
        assert_eq!(e["type"], "BOOKMARK");
        assert_eq!(
            e["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        // b joins the selection: ADDED; a leaves it: DELETED.
        let mut b = (*store.get("", "configmaps", Some("default"), "b").unwrap()).clone();
        b["metadata"]["labels"]["app"] = json!("web");
        store.update("", "configmaps", b).unwrap();
        let e = next(&mut rx).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("b"))
        );
        let mut a = (*store.get("", "configmaps", Some("default"), "a").unwrap()).clone();
        a["metadata"]["labels"]["app"] = json!("x");
        store.update("", "configmaps", a).unwrap();
        let e = next(&mut rx).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("DELETED"), Some("a"))
        );
    }

    #[tokio::test]
    async fn replay_from_rv_and_gone() {
        let store = Store::new(super::super::store::StoreConfig {
            history_limit: 5,
            broadcast_capacity: 64,
        });
        let first = store.create("", "configmaps", cm("a", "x")).unwrap();
        let rv: u64 = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        store.create("", "configmaps", cm("b", "x")).unwrap();
        let mut rx = start(&store, params(&store, Some(rv), false, ""));
        let e = next(&mut rx).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("b"))
        );
        for i in 0..10 {
            store
                .create("", "configmaps", cm(&format!("c{i}"), "x"))
                .unwrap();
        }
        let mut rx = start(&store, params(&store, Some(rv), false, ""));
        let e = next(&mut rx).await;
        assert_eq!(e["type"], "ERROR");
        assert_eq!(e["object"]["code"], 410);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn expiry_ends_open_streams_and_old_versions_get_gone() {
        let store = Store::default();
        store.create("", "configmaps", cm("a", "x")).unwrap();
        let listed = store.resource_version();
        let mut open = start(&store, params(&store, Some(listed), false, ""));
        store.create("", "configmaps", cm("b", "x")).unwrap();
        let e = next(&mut open).await;
        assert_eq!(e["object"]["metadata"]["name"], "b");
        let seen = store.resource_version();
        let floor = store.expire_watches();
        let end = tokio::time::timeout(Duration::from_secs(2), open.recv()).await;
        assert!(
            matches!(end, Ok(None)),
            "the open stream must end at the expiry"
        );
        // The client resumes from the last version it saw: 410 inside a stream, then the end.
        let mut resumed = start(&store, params(&store, Some(seen), false, ""));
        let e = next(&mut resumed).await;
        assert_eq!(e["type"], "ERROR");
        assert_eq!(
            (e["object"]["code"].as_i64(), e["object"]["reason"].as_str()),
            (Some(410), Some("Expired"))
        );
        assert!(resumed.recv().await.is_none());
        // After a relist, a watch from the list's version gets the next change.
        let (_, relisted) = store.list("", "configmaps", None);
        assert_eq!(relisted, floor);
        let mut fresh = start(&store, params(&store, Some(relisted), false, ""));
        store.create("", "configmaps", cm("c", "x")).unwrap();
        let e = next(&mut fresh).await;
        assert_eq!(
            (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some("c"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_and_bookmarks() {
        let store = Store::default();
        let mut p = params(&store, Some(store.resource_version()), false, "");
        p.bookmarks = true;
        p.timeout = Duration::from_secs(3);
        let mut rx = start(&store, p);
        let e = next(&mut rx).await;
        assert_eq!(e["type"], "BOOKMARK");
        assert_eq!(e["object"]["kind"], "ConfigMap");
        let mut n = 1;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert!(
            n >= 2,
            "stream ends at timeoutSeconds after bookmarks ({n})"
        );
    }
}
