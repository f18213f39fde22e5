//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A reduced structured-merge-diff: field sets are real `FieldsV1` trees and ownership moves
//! like upstream (updaters take what they change, appliers own exactly what they apply,
//! conflicts with other owners unless forced, fields an applier stops applying are removed
//! unless someone else owns them). Simplifications, all deliberate:
//! - one API version per kind, so there is no version conversion of field sets;
//! - schema knowledge comes from [`crate::kube::patch::schema`]; custom resources get
//!   granular maps and atomic lists whatever their CRD says;
//! - no union normalisation, no cap on the number of update entries;
//! - for custom resources with a status subresource the caller strips `status` from the
//!   applied configuration of main-resource applies (for built-in kinds this module does it).
//!
//! Ownership is read from the object's own `managedFields`, so entries rewritten by a client
//! (kubectl's client-side to server-side apply upgrade) are honoured by the next apply.

mod fieldset;
mod walk;

use serde_json::{Map, Value, json};

use super::schema::{self, Field, ListKind, Ty};
use super::{Conflict, PatchError};
use fieldset::{PathDisplay, Set};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// One managedFields entry, decoded.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: Option<Value>,
    set: Set,
    /// The entry as stored, written back untouched while its set and time do not change.
    raw: Option<Value>,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, subresource: Option<&str>) -> Self {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            subresource: subresource.unwrap_or_default().to_string(),
            time: None,
            set: Set::default(),
            raw: None,
        }
    }

    /// Upstream's manager identity: appliers are one entry whatever version they used.
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == APPLY || self.api_version == other.api_version)
    }

    fn decode(raw: &Value) -> Entry {
        let s = |k: &str| {
            raw.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            subresource: s("subresource"),
            time: raw.get("time").cloned(),
            set: raw
                .get("fieldsV1")
                .map(Set::from_fields_v1)
                .unwrap_or_default(),
            raw: Some(raw.clone()),
        }
    }

    fn encode(&self) -> Value {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), t.clone());
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn set_fields(&mut self, set: Set) {
        if set != self.set {
            self.set = set;
            self.raw = None;
        }
    }

    fn set_time(&mut self, now: &str) {
        self.time = Some(json!(now));
        self.raw = None;
    }

    /// How upstream names this manager in conflict messages.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

fn raw_entries(obj: Option<&Value>) -> Option<&Vec<Value>> {
    obj?.pointer("/metadata/managedFields")?.as_array()
}

/// Writes the entries back; when none changed the stored array is kept as it was.
fn store_entries(obj: &mut Value, entries: &[Entry], original: Option<&Vec<Value>>) {
    let untouched = entries.iter().all(|e| e.raw.is_some())
        && original.is_some_and(|o| {
            o.len() == entries.len()
                && entries
                    .iter()
                    .zip(o)
                    .all(|(e, r)| e.raw.as_ref() == Some(r))
        });
    let value = if untouched {
        original.cloned().unwrap_or_default()
    } else {
        let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
        // Upstream's order: operation, time, manager, apiVersion, subresource.
        sorted.sort_by_key(|e| {
            let time = e
                .time
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (
                e.operation.clone(),
                time,
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone(),
            )
        });
        sorted.into_iter().map(Entry::encode).collect()
    };
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if value.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(value));
        }
    }
}

fn root_type(api_version: &str, obj: &Value, other: Option<&Value>) -> Ty {
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = obj
        .get("kind")
        .or_else(|| other.and_then(|o| o.get("kind")))
        .and_then(Value::as_str)
        .unwrap_or_default();
    schema::root(group, kind)
}

/// Built-in objects go through Go types, where empty maps and lists vanish.
fn omits_empty(root: Ty) -> bool {
    root != Ty::Generic { builtin: false }
}

/// Non-apply write (operation "Update"): update metadata.managedFields so `manager` owns the
/// fields it changed; leave managedFields byte-identical when nothing changed (no-op writes
/// must not change the object).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let root = root_type(api_version, new, old);
    // Like upstream's decodeLiveOrNew: subresource writes cannot set managedFields; a main
    // write that carries entries sets them (`[{}]` clears them); otherwise the live ones stay.
    let incoming = raw_entries(Some(new)).cloned();
    let source: Option<Vec<Value>> = match (&incoming, subresource) {
        (Some(list), None) if list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty) => {
            Some(Vec::new())
        }
        (Some(list), None) if !list.is_empty() => Some(list.clone()),
        _ => raw_entries(old).cloned(),
    };
    let mut entries: Vec<Entry> = source.iter().flatten().map(Entry::decode).collect();

    let old_body = old.map(walk::strip).unwrap_or_else(|| json!({}));
    let new_body = walk::strip(new);
    let cmp = walk::compare(&old_body, &new_body, root);
    let taken = cmp.changed();

    let me = Entry::new(manager, UPDATE, api_version, subresource);
    for e in entries.iter_mut() {
        // Updates never conflict: they take changed fields from everyone, and removed
        // fields leave every set.
        let mut set = e.set.difference(&cmp.removed);
        if !e.same_manager(&me) {
            set = set.difference(&taken);
        }
        e.set_fields(set);
    }
    if !taken.is_empty() {
        match entries.iter_mut().find(|e| e.same_manager(&me)) {
            Some(e) => {
                let set = e.set.union(&taken);
                e.set_fields(set);
                e.set_time(now);
            }
            None => {
                let mut e = me;
                e.set = taken;
                e.set_time(now);
                entries.push(e);
            }
        }
    }
    entries.retain(|e| !e.set.is_empty());
    store_entries(new, &entries, source.as_ref());
}

/// Server-side apply (operation "Apply"): merge `applied` (full intent, JSON) into `live`
/// (None = create) with field ownership; fields previously applied by this manager but absent
/// from `applied` are removed (unless co-owned); conflicts with other managers unless force
/// (force transfers ownership). Returns the new object with managedFields updated.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) -> Result<Value, PatchError> {
    let Value::Object(applied_map) = applied else {
        return Err(PatchError::BadRequest(
            "the body of an apply patch must be an object".to_string(),
        ));
    };
    // Upstream refuses an apply configuration that tries to set ownership itself.
    if raw_entries(Some(applied)).is_some_and(|e| !e.is_empty()) {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".to_string(),
        ));
    }
    let root = root_type(api_version, applied, live);
    let intent = effective_intent(applied_map, root, subresource);
    let original = raw_entries(live).cloned();
    let mut entries: Vec<Entry> = original.iter().flatten().map(Entry::decode).collect();

    let live_body = live.map(walk::strip).unwrap_or_else(|| json!({}));
    let root_field = Field {
        ty: root,
        list: ListKind::Atomic,
        atomic: false,
        always_present: true,
    };
    let intent = walk::strip(&intent);
    let mut merged =
        walk::merge(Some(&live_body), &intent, root_field).unwrap_or_else(|| json!({}));
    let applied_set = walk::field_set(&intent, root);
    let changed = walk::compare(&live_body, &merged, root).changed();

    let me = Entry::new(manager, APPLY, api_version, subresource);
    let mut conflicts = Vec::new();
    for e in entries.iter_mut().filter(|e| !e.same_manager(&me)) {
        let contested = e.set.intersection(&applied_set).intersection(&changed);
        if contested.is_empty() {
            continue;
        }
        if force {
            let set = e.set.difference(&contested);
            e.set_fields(set);
        } else {
            let printed = e.printed();
            conflicts.extend(contested.paths().iter().map(|p| Conflict {
                manager: printed.clone(),
                field: PathDisplay(p).to_string(),
            }));
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| a.manager.cmp(&b.manager));
        return Err(PatchError::Conflicts(conflicts));
    }

    // Fields this manager applied last time and no longer does go, unless someone else
    // (another applier or an updater) still owns them or something below them.
    let previous = entries
        .iter()
        .find(|e| e.same_manager(&me))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others = entries
        .iter()
        .filter(|e| !e.same_manager(&me))
        .fold(Set::default(), |acc, e| acc.union(&e.set));
    for path in previous.difference(&applied_set).paths() {
        if !others.touches(&path) && !applied_set.touches(&path) {
            walk::remove(&mut merged, &path, root, omits_empty(root));
        }
    }

    let cmp = walk::compare(&live_body, &merged, root);
    for e in entries.iter_mut().filter(|e| !e.same_manager(&me)) {
        let set = e.set.difference(&cmp.removed);
        e.set_fields(set);
    }
    let object_changed = merged != live_body;
    match entries.iter_mut().find(|e| e.same_manager(&me)) {
        Some(e) => {
            if e.api_version != api_version {
                e.api_version = api_version.to_string();
                e.raw = None;
            }
            e.set_fields(applied_set);
            // Upstream bumps the time only when the object changed.
            if object_changed {
                e.set_time(now);
            }
        }
        None => {
            let mut e = me;
            e.set = applied_set;
            e.set_time(now);
            entries.push(e);
        }
    }
    entries.retain(|e| !e.set.is_empty());

    let mut out = match live {
        Some(l) => restore_untracked(l, merged),
        None => restore_untracked(applied, merged),
    };
    store_entries(&mut out, &entries, original.as_ref());
    Ok(out)
}

/// The part of the applied configuration this request may change: `status` only on the
/// status subresource, everything but `status` on the main resource of built-in kinds with a
/// status subresource (upstream's reset fields). Client-sent managedFields and
/// resourceVersion are not intent.
fn effective_intent(applied: &Map<String, Value>, root: Ty, subresource: Option<&str>) -> Value {
    let mut intent = applied.clone();
    if let Some(Value::Object(meta)) = intent.get_mut("metadata") {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    match subresource {
        Some("status") => {
            intent.retain(|k, _| matches!(k.as_str(), "status" | "apiVersion" | "kind"))
        }
        None if !matches!(root, Ty::Generic { .. }) => {
            intent.remove("status");
        }
        _ => {}
    }
    Value::Object(intent)
}

/// Puts back `apiVersion`, `kind` and the untracked metadata (name, uid, resourceVersion, ...)
/// the ownership walk stripped, in the order `source` had them.
fn restore_untracked(source: &Value, body: Value) -> Value {
    let Value::Object(body) = body else {
        return body;
    };
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = source.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    let empty = Map::new();
    let src_meta = source
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, v) in body {
        if k != "metadata" {
            out.insert(k, v);
            continue;
        }
        let Value::Object(mut body_meta) = v else {
            out.insert(k, v);
            continue;
        };
        let mut meta = Map::new();
        for (mk, mv) in src_meta {
            if walk::is_untracked_meta(mk) {
                if mk != "managedFields" {
                    meta.insert(mk.clone(), mv.clone());
                }
            } else if let Some(bv) = body_meta.remove(mk) {
                meta.insert(mk.clone(), bv);
            }
        }
        meta.extend(body_meta);
        out.insert(k, Value::Object(meta));
    }
    if !out.contains_key("metadata") && !src_meta.is_empty() {
        let meta: Map<String, Value> = src_meta
            .iter()
            .filter(|(k, _)| walk::is_untracked_meta(k) && *k != "managedFields")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert("metadata".into(), Value::Object(meta));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
