//! The in-memory object store of the sandbox API server.
//!
//! One `RwLock` guards everything (objects, resource registry, strategies, event history), so a
//! write is atomic with its resourceVersion, its history entry and its broadcast: a watcher that
//! subscribes under the same lock never misses or duplicates an event. Objects are `Arc<Value>`
//! so lists and watch fan-out share them instead of copying.

mod expiry;
mod meta;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::builtin::{self, NamespaceStrategy};
use super::errors::ApiError;
use super::resources::ResourceInfo;
use super::strategy::Strategy;

pub use expiry::WatchStats;
pub use meta::now_rfc3339;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as broadcast to watchers and kept in the history.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub event: EventType,
    pub group: String,
    pub plural: String,
    /// The object after the change (for `Deleted`: its last state, with the deletion's RV).
    pub object: Arc<Value>,
    /// The object before a `Modified` change, so selector-filtered watches can tell an object
    /// that left the selection (upstream sends `DELETED`) from one that changed inside it.
    pub old: Option<Arc<Value>>,
    pub resource_version: u64,
}

impl StoreEvent {
    pub fn namespace(&self) -> &str {
        meta::meta_str(&self.object, "namespace").unwrap_or_default()
    }
}

/// Tuning knobs; the defaults suit the sandbox.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Changes kept per resource type for watch resume (like upstream's per-resource watch
    /// cache, so chatty Node heartbeats cannot expire a Service watcher's RV); older
    /// resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// Broadcast buffer; a watcher this far behind is cut off and re-watches.
    pub broadcast_capacity: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            broadcast_capacity: 16_384,
        }
    }
}

/// Options of one write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every check and hook, commit nothing.
    pub dry_run: bool,
    /// The write targets the `status` subresource.
    pub status: bool,
    /// Record the write in `managedFields` under this manager (not for apply, whose engine
    /// already did).
    pub field_manager: Option<String>,
    /// Keep a `status` given on create (in-process writers like the node simulator; upstream
    /// drops it for kinds with a status subresource).
    pub keep_status: bool,
}

/// Options of one delete (from `DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// The result of a delete call.
#[derive(Clone, Debug)]
pub struct Deleted {
    /// The object's last state (with `deletionTimestamp` when finalizers hold it).
    pub object: Arc<Value>,
    /// `false` while finalizers keep the object.
    pub gone: bool,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    /// The key of the last item when more remain (feeds the `continue` token).
    pub next: Option<ObjKey>,
    pub remaining: usize,
}

/// What a new watch starts from.
pub struct WatchStart {
    /// Current objects to send as synthetic `ADDED` events.
    pub initial: Vec<Arc<Value>>,
    /// History after the requested resourceVersion, oldest first.
    pub replay: Vec<StoreEvent>,
    pub rx: broadcast::Receiver<StoreEvent>,
    /// The resourceVersion the initial state / replay ends at.
    pub start_rv: u64,
    /// Fires when [`Store::expire_watches`] runs: the stream must end.
    pub expired: CancellationToken,
}

/// `(group, plural)`.
pub type ResKey = (String, String);
/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

/// The recent changes of one resource type.
#[derive(Default)]
struct History {
    events: VecDeque<StoreEvent>,
    /// Every event of this type with an RV above this is still in `events`.
    floor: u64,
}

pub(crate) struct State {
    rv: u64,
    tables: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    resources: Vec<Arc<ResourceInfo>>,
    strategies: HashMap<ResKey, Arc<dyn Strategy>>,
    history: HashMap<ResKey, History>,
    history_limit: usize,
    tx: broadcast::Sender<StoreEvent>,
    /// Set by [`Store::expire_watches`]: every resourceVersion below it is gone, for every type.
    compacted: u64,
    /// Cancelled (and replaced) by [`Store::expire_watches`] to end every open watch.
    expiry: CancellationToken,
}

/// The store; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct Store {
    inner: Arc<RwLock<State>>,
    /// Watch starts per resource type (outside the state lock: watch starts only read it).
    stats: Arc<Mutex<HashMap<ResKey, WatchStats>>>,
}

fn key(group: &str, plural: &str) -> ResKey {
    (group.to_string(), plural.to_string())
}

impl Default for Store {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl Store {
    /// A store serving the built-in kinds, with the initial namespaces.
    pub fn new(config: StoreConfig) -> Self {
        let (tx, _) = broadcast::channel(config.broadcast_capacity.max(16));
        let state = State {
            rv: 0,
            tables: HashMap::new(),
            resources: builtin::builtin_resources()
                .into_iter()
                .map(Arc::new)
                .collect(),
            strategies: HashMap::new(),
            history: HashMap::new(),
            history_limit: config.history_limit.max(1),
            tx,
            compacted: 0,
            expiry: CancellationToken::new(),
        };
        let store = Self {
            inner: Arc::new(RwLock::new(state)),
            stats: Arc::default(),
        };
        store.register_strategy("", "namespaces", Arc::new(NamespaceStrategy));
        for ns in builtin::INITIAL_NAMESPACES {
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Err(e) = store.create("", "namespaces", obj) {
                tracing::error!(error = %e, namespace = ns, "seeding namespace failed");
            }
        }
        store
    }

    // A panic while holding the lock cannot leave a half-applied write (commits are single
    // map operations at the end), so a poisoned lock is still consistent: keep serving.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Hooks `strategy` into every write of `group/plural`.
    pub fn register_strategy(&self, group: &str, plural: &str, strategy: Arc<dyn Strategy>) {
        self.write().strategies.insert(key(group, plural), strategy);
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    /// The resource type `group/plural` (its first served version).
    pub fn resource(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.read().info(group, plural).map(|i| (*i).clone())
    }

    /// The resource type served at `group/version/plural`.
    pub fn resource_at(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceInfo>> {
        self.read()
            .resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Every served resource type (one entry per served version).
    pub fn resources(&self) -> Vec<ResourceInfo> {
        self.read()
            .resources
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }

    /// Receives every committed change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.read().tx.subscribe()
    }

    pub fn get(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let st = self.read();
        st.tables
            .get(&key(group, plural))
            .and_then(|t| t.get(&(namespace.unwrap_or_default().to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(plural, group, name))
    }

    /// All objects of `group/plural` (in `namespace`, or everywhere) and the list RV.
    pub fn list(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64) {
        let page = self.list_page(group, plural, namespace, None, None, |_| true);
        (page.items, page.resource_version)
    }

    /// One page of matching objects after `after`, at most `limit` of them.
    pub fn list_page(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
        filter: impl Fn(&Value) -> bool,
    ) -> ListPage {
        let st = self.read();
        let mut page = ListPage {
            items: Vec::new(),
            resource_version: st.rv,
            next: None,
            remaining: 0,
        };
        let Some(table) = st.tables.get(&key(group, plural)) else {
            return page;
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut last: Option<&ObjKey> = None;
        for (k, obj) in range(table, namespace, after) {
            if !filter(obj) {
                continue;
            }
            if page.items.len() == limit {
                page.remaining += 1;
                continue;
            }
            page.items.push(obj.clone());
            last = Some(k);
        }
        if page.remaining > 0 {
            page.next = last.cloned();
        }
        page
    }

    /// Creates an object (namespace from its metadata; `default` when a namespaced object has
    /// none). Keeps a given `status`, unlike HTTP creates.
    pub fn create(&self, group: &str, plural: &str, obj: Value) -> Result<Arc<Value>, ApiError> {
        let opts = WriteOptions {
            keep_status: true,
            ..WriteOptions::default()
        };
        self.create_with(group, plural, None, obj, &opts)
    }

    /// Replaces an object (identity from its metadata; RV-checked when it carries one).
    pub fn update(&self, group: &str, plural: &str, obj: Value) -> Result<Arc<Value>, ApiError> {
        self.replace_with(group, plural, obj, &WriteOptions::default())
    }

    /// Replaces only `status` of an object.
    pub fn update_status(
        &self,
        group: &str,
        plural: &str,
        obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let opts = WriteOptions {
            status: true,
            ..WriteOptions::default()
        };
        self.replace_with(group, plural, obj, &opts)
    }

    /// Deletes an object (or marks it deleting while finalizers hold it).
    pub fn delete(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        self.delete_with(group, plural, namespace, name, &DeleteOptions::default())
            .map(|_| ())
    }

    /// Creates `obj`; `namespace` overrides its metadata when given.
    pub fn create_with(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let mut st = self.write();
        let info = st
            .info(group, plural)
            .ok_or_else(|| unknown_resource(group, plural))?;
        st.create_obj(&info, namespace, obj, opts)
    }

    fn replace_with(
        &self,
        group: &str,
        plural: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = meta::meta_str(&obj, "namespace").map(str::to_string);
        let name = meta::meta_str(&obj, "name").unwrap_or_default().to_string();
        self.modify(group, plural, ns.as_deref(), &name, opts, |cur| match cur {
            Some(_) => Ok(obj),
            None => Err(ApiError::not_found(plural, group, &name)),
        })
        .map(|(o, _)| o)
    }

    /// Read-modify-write under the store lock: `f` sees the current object (`None` when
    /// missing) and returns the desired one; returning an object for a missing one creates it.
    /// Returns the stored object and whether it was created.
    pub fn modify(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        opts: &WriteOptions,
        f: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let mut st = self.write();
        let info = st
            .info(group, plural)
            .ok_or_else(|| unknown_resource(group, plural))?;
        let ns = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        let current = st
            .tables
            .get(&key(group, plural))
            .and_then(|t| t.get(&(ns.to_string(), name.to_string())))
            .cloned();
        let desired = f(current.as_deref())?;
        match current {
            Some(old) => {
                check_identity(&desired, ns, name)?;
                st.update_obj(&info, old, desired, opts).map(|o| (o, false))
            }
            None => {
                let mut desired = desired;
                if let Some(m) = meta::meta_mut(&mut desired) {
                    m.insert("name".to_string(), Value::String(name.to_string()));
                }
                st.create_obj(&info, Some(ns), desired, opts)
                    .map(|o| (o, true))
            }
        }
    }

    pub fn delete_with(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut st = self.write();
        let info = st
            .info(group, plural)
            .ok_or_else(|| unknown_resource(group, plural))?;
        let ns = if info.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        st.delete_obj(&info, ns, name, opts)
    }

    /// Starts a watch: the initial state (when `initial`) or the history after `since`.
    pub fn watch_from(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        since: Option<u64>,
        initial: bool,
    ) -> Result<WatchStart, ApiError> {
        let st = self.read();
        let started = st.watch_start(group, plural, namespace, since, initial);
        self.count_watch(group, plural, since, st.compacted, started.is_ok());
        started
    }
}

impl State {
    fn watch_start(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        since: Option<u64>,
        initial: bool,
    ) -> Result<WatchStart, ApiError> {
        let rx = self.tx.subscribe();
        let mut start = WatchStart {
            initial: Vec::new(),
            replay: Vec::new(),
            rx,
            start_rv: self.rv,
            expired: self.expiry.clone(),
        };
        if initial {
            if let Some(table) = self.tables.get(&key(group, plural)) {
                start.initial = range(table, namespace, None)
                    .map(|(_, o)| o.clone())
                    .collect();
            }
            return Ok(start);
        }
        let Some(since) = since else { return Ok(start) };
        if since < self.compacted {
            return Err(too_old(since, self.compacted));
        }
        let Some(history) = self.history.get(&key(group, plural)) else {
            return Ok(start);
        };
        if since < history.floor {
            return Err(too_old(since, history.floor + 1));
        }
        let from = history
            .events
            .partition_point(|e| e.resource_version <= since);
        start.replay = history
            .events
            .range(from..)
            .filter(|e| namespace.is_none_or(|ns| e.namespace() == ns))
            .cloned()
            .collect();
        Ok(start)
    }
}

/// Upstream's message: the requested RV and the oldest one still served.
fn too_old(since: u64, oldest: u64) -> ApiError {
    ApiError::gone(format!("too old resource version: {since} ({oldest})"))
}

fn unknown_resource(group: &str, plural: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({plural}.{group})"),
    )
}

/// The body names a different object than the URL: upstream answers 400.
fn check_identity(obj: &Value, ns: &str, name: &str) -> Result<(), ApiError> {
    if let Some(n) = meta::meta_str(obj, "name").filter(|n| !n.is_empty() && *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(n) =
        meta::meta_str(obj, "namespace").filter(|n| !n.is_empty() && *n != ns && !ns.is_empty())
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
        )));
    }
    Ok(())
}

/// Objects of `table` in `namespace` (all when `None`), after `after`, in key order.
fn range<'a>(
    table: &'a BTreeMap<ObjKey, Arc<Value>>,
    namespace: Option<&'a str>,
    after: Option<&ObjKey>,
) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
    let lower = match (after, namespace) {
        (Some(a), _) => Bound::Excluded(a.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    table
        .range((lower, Bound::Unbounded))
        .skip_while(move |(k, _)| namespace.is_some_and(|ns| k.0.as_str() < ns))
        .take_while(move |(k, _)| namespace.is_none_or(|ns| k.0 == ns))
}
