//! The workload simulator: what kube-controller-manager, the scheduler and the kubelets would
//! do for one namespace, as a pure reconcile from the current objects to a list of writes.
//!
//! - Deployments get `spec.replicas` Pods (deterministic names `<deploy>-<template hash>-<5>`),
//!   a template change replaces them (an instant rollout), and the Deployment status follows.
//! - Pods without a node are placed round robin on Ready nodes; Pods on a known node are
//!   reported Running and Ready with an IP from `pod_ip_alloc`.
//! - Every Service with a selector gets EndpointSlices (grouped by resolved port set) and the
//!   legacy Endpoints object; Services without a selector get none.
//!
//! Only differences produce actions, so running `reconcile` on the state its own actions
//! produced returns nothing. Objects in `Update`/`UpdateStatus` carry no
//! `metadata.resourceVersion`: they are the controller's internal writes, applied
//! unconditionally and in order (an `Update` of a Pod may be followed by nothing else for the
//! same object in the same batch).

mod deployment;
mod endpoints;
mod naming;
mod pods;

use std::net::IpAddr;

use chrono::Utc;
use serde_json::{Map, Value};

/// Everything `reconcile` looks at, for one namespace (nodes are cluster scoped).
pub struct WorkloadInput<'a> {
    pub deployments: &'a [&'a Value],
    pub services: &'a [&'a Value],
    pub pods: &'a [&'a Value],
    pub slices: &'a [&'a Value],
    pub endpoints: &'a [&'a Value],
    pub nodes: &'a [&'a Value],
}

/// One write the caller applies to the store, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Create {
        group: String,
        plural: String,
        object: Value,
    },
    /// Replace the object (spec and metadata); a `status` in it is not meant to be applied.
    Update {
        group: String,
        plural: String,
        object: Value,
    },
    /// Replace the object's status only.
    UpdateStatus {
        group: String,
        plural: String,
        object: Value,
    },
    Delete {
        group: String,
        plural: String,
        namespace: String,
        name: String,
    },
}

/// Reconcile one namespace. See the module docs for what is simulated.
pub fn reconcile(
    namespace: &str,
    input: &WorkloadInput,
    pod_ip_alloc: &mut dyn FnMut() -> IpAddr,
) -> Vec<Action> {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    reconcile_at(namespace, input, pod_ip_alloc, &now)
}

/// [`reconcile`] with an explicit clock (RFC 3339, used for new timestamps only).
pub(crate) fn reconcile_at(
    namespace: &str,
    input: &WorkloadInput,
    pod_ip_alloc: &mut dyn FnMut() -> IpAddr,
    now: &str,
) -> Vec<Action> {
    let nodes = Nodes::new(input.nodes);
    let plan = pods::plan(namespace, input, &nodes, pod_ip_alloc, now);
    let mut actions = plan.actions;
    let projected: Vec<&Value> = plan.projected.iter().collect();
    actions.extend(endpoints::plan(namespace, input, &projected, &nodes));
    actions
}

/// What the simulator needs to know about the cluster's nodes.
pub(super) struct Nodes {
    /// Every node: (name, InternalIP, zone).
    all: Vec<(String, String, String)>,
    /// Names of nodes a new pod may be placed on, sorted.
    ready: Vec<String>,
}

impl Nodes {
    fn new(nodes: &[&Value]) -> Self {
        let mut all = Vec::new();
        let mut ready = Vec::new();
        for n in nodes {
            let name = str_at(n, "/metadata/name").to_string();
            if name.is_empty() {
                continue;
            }
            let ip = arr(n, "/status/addresses")
                .iter()
                .find(|a| str_at(a, "/type") == "InternalIP")
                .map(|a| str_at(a, "/address").to_string())
                .unwrap_or_default();
            let zone = n
                .pointer("/metadata/labels")
                .and_then(|l| l.get("topology.kubernetes.io/zone"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let is_ready = condition_true(n, "Ready");
            let schedulable =
                n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true);
            if is_ready && schedulable && !deleting(n) {
                ready.push(name.clone());
            }
            all.push((name, ip, zone));
        }
        ready.sort();
        Self { all, ready }
    }

    fn get(&self, name: &str) -> Option<&(String, String, String)> {
        self.all.iter().find(|(n, _, _)| n == name)
    }

    /// A Ready node chosen by `spread` (round robin over the sorted Ready nodes).
    fn pick(&self, spread: u64) -> Option<&str> {
        if self.ready.is_empty() {
            return None;
        }
        let i = (spread % self.ready.len() as u64) as usize;
        self.ready.get(i).map(String::as_str)
    }
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(super) fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

pub(super) fn condition_true(v: &Value, type_: &str) -> bool {
    arr(v, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == "True")
}

pub(super) fn labels(v: &Value) -> Map<String, Value> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A Service-style selector (a plain map) matches when every pair is among the labels.
pub(super) fn map_selects(selector: &Map<String, Value>, labels: &Map<String, Value>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The object as an internal write: no optimistic-concurrency precondition.
pub(super) fn for_write(mut v: Value) -> Value {
    if let Some(Value::Object(meta)) = v.get_mut("metadata") {
        meta.remove("resourceVersion");
    }
    v
}

#[cfg(test)]
mod tests;
