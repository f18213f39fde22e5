//! The write paths of the store (create, update, delete, cascades). Everything here runs under
//! the store's write lock; checks and strategy hooks come first, the commit (RV bump, map
//! insert, history, broadcast) last, so a failed write changes nothing.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::{self, meta_mut, meta_str};
use super::{DeleteOptions, Deleted, ObjKey, ResKey, State, StoreEvent, WriteOptions, key};
use crate::kube::builtin::{CRD_GROUP, CRD_PLURAL};
use crate::kube::crd;
use crate::kube::errors::ApiError;
use crate::kube::resources::ResourceInfo;
use crate::kube::store::EventType;
use crate::kube::strategy::WriteCtx;

fn is_crd(info: &ResourceInfo) -> bool {
    info.group == CRD_GROUP && info.plural == CRD_PLURAL
}

/// Kinds whose registry strategy sets `metadata.generation` upstream (Services, ConfigMaps,
/// Nodes, ... have none).
fn tracks_generation(info: &ResourceInfo) -> bool {
    info.custom || matches!(info.group.as_str(), "apps" | CRD_GROUP)
}

fn set_meta(obj: &mut Value, k: &str, v: Value) {
    if let Some(m) = meta_mut(obj) {
        m.insert(k.to_string(), v);
    }
}

fn remove_meta(obj: &mut Value, k: &str) {
    if let Some(m) = meta_mut(obj) {
        m.remove(k);
    }
}

fn copy_meta(from: &Value, to: &mut Value, k: &str) {
    match from.get("metadata").and_then(|m| m.get(k)) {
        Some(v) => set_meta(to, k, v.clone()),
        None => remove_meta(to, k),
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    set_meta(obj, "resourceVersion", Value::String(rv.to_string()));
}

fn not_object() -> ApiError {
    ApiError::bad_request("the object provided is not a JSON object")
}

impl State {
    pub(super) fn info(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    fn ctx(dry_run: bool, status: bool) -> WriteCtx {
        WriteCtx {
            dry_run,
            status_only: status,
        }
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        event: EventType,
        info: &ResourceInfo,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let ev = StoreEvent {
            event,
            group: info.group.clone(),
            plural: info.plural.clone(),
            object,
            old,
            resource_version: self.rv,
        };
        let history = self
            .history
            .entry(key(&info.group, &info.plural))
            .or_default();
        history.events.push_back(ev.clone());
        while history.events.len() > self.history_limit {
            if let Some(dropped) = history.events.pop_front() {
                history.floor = dropped.resource_version;
            }
        }
        // No receivers is fine: nobody watches yet.
        let _ = self.tx.send(ev);
    }

    fn object(&self, k: &ResKey, ok: &ObjKey) -> Option<Arc<Value>> {
        self.tables.get(k).and_then(|t| t.get(ok)).cloned()
    }

    fn check_namespace(&self, ns: &str) -> Result<(), ApiError> {
        match self.object(&key("", "namespaces"), &(String::new(), ns.to_string())) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(n) if meta::is_deleting(&n) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            )
            .with_details(json!({"name": ns, "kind": "namespaces"}))),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn create_obj(
        &mut self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(not_object());
        }
        let ns = if info.namespaced {
            let ns = namespace
                .or(meta_str(&obj, "namespace"))
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            ns.to_string()
        } else {
            String::new()
        };
        if info.namespaced {
            self.check_namespace(&ns)?;
            set_meta(&mut obj, "namespace", Value::String(ns.clone()));
        } else {
            remove_meta(&mut obj, "namespace");
        }
        if meta_str(&obj, "name").unwrap_or_default().is_empty()
            && let Some(prefix) = meta_str(&obj, "generateName").filter(|g| !g.is_empty())
        {
            let name = format!("{prefix}{}", meta::random_suffix());
            set_meta(&mut obj, "name", Value::String(name));
        }
        meta::validate(info, &obj)?;
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let rk = key(&info.group, &info.plural);
        let ok = (ns.clone(), name.clone());
        if self.object(&rk, &ok).is_some() {
            return Err(ApiError::already_exists(&info.plural, &info.group, &name));
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".to_string(), Value::String(info.api_version()));
            o.insert("kind".to_string(), Value::String(info.kind.clone()));
            if info.status_subresource && !opts.keep_status {
                o.remove("status");
            }
        }
        let now = meta::now_rfc3339();
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            remove_meta(&mut obj, k);
        }
        set_meta(
            &mut obj,
            "uid",
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        set_meta(&mut obj, "creationTimestamp", Value::String(now.clone()));
        if tracks_generation(info) {
            set_meta(&mut obj, "generation", json!(1));
        } else {
            remove_meta(&mut obj, "generation");
        }
        if let Some(m) = &opts.field_manager {
            let sub = opts.status.then_some("status");
            meta::record_update(None, &mut obj, m, &info.api_version(), sub, &now);
        }
        if let Some(strategy) = self.strategies.get(&rk).cloned() {
            strategy.create(&mut obj, &Self::ctx(opts.dry_run, false))?;
        }
        let custom = if is_crd(info) {
            Some(crd::accept(None, &mut obj)?)
        } else {
            None
        };
        let mut obj = meta::order_object(obj);
        if opts.dry_run {
            return Ok(Arc::new(obj));
        }
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        self.tables.entry(rk).or_default().insert(ok, obj.clone());
        self.emit(EventType::Added, info, obj.clone(), None);
        if let Some(infos) = custom {
            self.register_custom(&obj, infos);
        }
        Ok(obj)
    }

    pub(super) fn update_obj(
        &mut self,
        info: &ResourceInfo,
        old: Arc<Value>,
        mut new: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        if !new.is_object() {
            return Err(not_object());
        }
        let name = meta_str(&old, "name").unwrap_or_default().to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(&info.plural, &info.group, &name));
        }
        if info.status_subresource {
            if opts.status {
                // Only status (and the field-manager bookkeeping) may change via /status.
                let mut merged = (*old).clone();
                copy_meta(&new, &mut merged, "managedFields");
                if let (Some(m), Some(n)) = (merged.as_object_mut(), new.as_object_mut()) {
                    match n.remove("status") {
                        Some(s) => m.insert("status".to_string(), s),
                        None => m.remove("status"),
                    };
                }
                new = merged;
            } else if let Some(n) = new.as_object_mut() {
                match old.get("status") {
                    Some(s) => n.insert("status".to_string(), s.clone()),
                    None => n.remove("status"),
                };
            }
        }
        if let Some(o) = new.as_object_mut() {
            o.insert("apiVersion".to_string(), Value::String(info.api_version()));
            o.insert("kind".to_string(), Value::String(info.kind.clone()));
        }
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            copy_meta(&old, &mut new, k);
        }
        remove_meta(&mut new, "selfLink");
        if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
            let g = if meta::spec_changed(&old, &new) {
                g + 1
            } else {
                g
            };
            set_meta(&mut new, "generation", json!(g));
        }
        let now = meta::now_rfc3339();
        if let Some(m) = &opts.field_manager {
            let sub = opts.status.then_some("status");
            meta::record_update(Some(&old), &mut new, m, &info.api_version(), sub, &now);
        }
        let rk = key(&info.group, &info.plural);
        if let Some(strategy) = self.strategies.get(&rk).cloned() {
            strategy.update(&old, &mut new, &Self::ctx(opts.dry_run, opts.status))?;
        }
        let custom = if is_crd(info) {
            Some(crd::accept(Some(&old), &mut new)?)
        } else {
            None
        };
        set_meta(
            &mut new,
            "resourceVersion",
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if meta::equal_ignoring_volatile(&old, &new) {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        let ok = (
            meta_str(&old, "namespace").unwrap_or_default().to_string(),
            name,
        );
        if meta::is_deleting(&new) && !meta::has_finalizers(&new) {
            // The last finalizer went away: the deletion completes now.
            if let Some(t) = self.tables.get_mut(&rk) {
                t.insert(ok.clone(), Arc::new(new));
            }
            return Ok(self.remove_obj(info, &ok, false).unwrap_or(old));
        }
        let rv = self.next_rv();
        set_rv(&mut new, rv);
        let new = Arc::new(new);
        self.tables.entry(rk).or_default().insert(ok, new.clone());
        self.emit(EventType::Modified, info, new.clone(), Some(old));
        if let Some(infos) = custom {
            self.register_custom(&new, infos);
        }
        Ok(new)
    }

    pub(super) fn delete_obj(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let rk = key(&info.group, &info.plural);
        let ok = (ns.to_string(), name.to_string());
        let old = self
            .object(&rk, &ok)
            .ok_or_else(|| ApiError::not_found(&info.plural, &info.group, name))?;
        let uid = meta_str(&old, "uid").unwrap_or_default();
        if let Some(want) = opts.precondition_uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want}, UID in object meta: {uid}", crate::kube::errors::qualified(&info.plural, &info.group)),
            ).with_details(json!({"name": name, "group": info.group, "kind": info.plural})));
        }
        let rv = meta_str(&old, "resourceVersion").unwrap_or_default();
        if let Some(want) = opts.precondition_rv.as_deref().filter(|r| *r != rv) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}", crate::kube::errors::qualified(&info.plural, &info.group)),
            ).with_details(json!({"name": name, "group": info.group, "kind": info.plural})));
        }
        let is_ns = info.group.is_empty() && info.plural == "namespaces";
        if meta::has_finalizers(&old) || is_ns {
            if meta::is_deleting(&old) {
                return Ok(Deleted {
                    object: old,
                    gone: false,
                });
            }
            let mut new = (*old).clone();
            set_meta(
                &mut new,
                "deletionTimestamp",
                Value::String(meta::now_rfc3339()),
            );
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            if is_ns && let Some(o) = new.as_object_mut() {
                o.insert("status".to_string(), json!({"phase": "Terminating"}));
            }
            if opts.dry_run {
                return Ok(Deleted {
                    object: Arc::new(new),
                    gone: false,
                });
            }
            let rv = self.next_rv();
            set_rv(&mut new, rv);
            let new = Arc::new(new);
            self.tables
                .entry(rk)
                .or_default()
                .insert(ok.clone(), new.clone());
            self.emit(EventType::Modified, info, new.clone(), Some(old));
            if is_ns {
                self.drain_namespace(name);
                return Ok(match self.object(&key("", "namespaces"), &ok) {
                    Some(object) => Deleted {
                        object,
                        gone: false,
                    },
                    None => {
                        let object = self
                            .history
                            .get(&key("", "namespaces"))
                            .and_then(|h| h.events.back())
                            .map(|e| e.object.clone())
                            .unwrap_or(new);
                        Deleted { object, gone: true }
                    }
                });
            }
            return Ok(Deleted {
                object: new,
                gone: false,
            });
        }
        if opts.dry_run {
            return Ok(Deleted {
                object: old,
                gone: true,
            });
        }
        let object = self.remove_obj(info, &ok, false).unwrap_or(old);
        Ok(Deleted { object, gone: true })
    }

    /// Really removes an object: strategy release, `DELETED`, cascades. Returns its last state.
    fn remove_obj(
        &mut self,
        info: &ResourceInfo,
        ok: &ObjKey,
        dry_run: bool,
    ) -> Option<Arc<Value>> {
        let rk = key(&info.group, &info.plural);
        let obj = self.tables.get_mut(&rk)?.remove(ok)?;
        if let Some(strategy) = self.strategies.get(&rk).cloned() {
            strategy.delete(&obj, &Self::ctx(dry_run, false));
        }
        let rv = self.next_rv();
        let mut last = (*obj).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.emit(EventType::Deleted, info, last.clone(), None);
        if is_crd(info) {
            self.unregister_custom(&obj);
        }
        if info.namespaced {
            self.maybe_finish_namespace(&ok.0);
        }
        Some(last)
    }

    /// Deletes everything in a terminating namespace; the namespace goes once it is empty.
    fn drain_namespace(&mut self, ns: &str) {
        let infos: Vec<Arc<ResourceInfo>> = self
            .resources
            .iter()
            .filter(|r| r.namespaced)
            .cloned()
            .collect();
        let mut seen = std::collections::HashSet::new();
        for info in infos {
            if !seen.insert((info.group.clone(), info.plural.clone())) {
                continue;
            }
            let names: Vec<String> = self
                .tables
                .get(&key(&info.group, &info.plural))
                .map(|t| {
                    super::range(t, Some(ns), None)
                        .map(|(k, _)| k.1.clone())
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                let _ = self.delete_obj(&info, ns, &name, &DeleteOptions::default());
            }
        }
        self.maybe_finish_namespace(ns);
    }

    fn maybe_finish_namespace(&mut self, ns: &str) {
        let nk = (String::new(), ns.to_string());
        let Some(nsobj) = self.object(&key("", "namespaces"), &nk) else {
            return;
        };
        if !meta::is_deleting(&nsobj) {
            return;
        }
        let empty = self
            .tables
            .iter()
            .all(|(_, t)| super::range(t, Some(ns), None).next().is_none());
        if empty && let Some(info) = self.info("", "namespaces") {
            self.remove_obj(&info, &nk, false);
        }
    }

    fn register_custom(&mut self, crd_obj: &Value, infos: Vec<ResourceInfo>) {
        self.unregister_custom(crd_obj);
        self.resources.extend(infos.into_iter().map(Arc::new));
    }

    /// Drops the CRD's resource types and force-removes its objects.
    fn unregister_custom(&mut self, crd_obj: &Value) {
        let group = crd_obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let plural = crd_obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let still_served = self
            .tables
            .get(&key(CRD_GROUP, CRD_PLURAL))
            .is_some_and(|t| {
                t.contains_key(&(
                    String::new(),
                    meta_str(crd_obj, "name").unwrap_or_default().to_string(),
                ))
            });
        if !still_served && let Some(info) = self.info(&group, &plural).filter(|i| i.custom) {
            let keys: Vec<ObjKey> = self
                .tables
                .get(&key(&group, &plural))
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                self.remove_obj(&info, &k, false);
            }
            self.tables.remove(&key(&group, &plural));
        }
        self.resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
    }
}
