//! The sandbox's stand-ins for kubelet, the node lifecycle and the workload controllers: keeps
//! one Node per cloud instance, gives Deployments their Pods and selector Services their
//! EndpointSlices and Endpoints. Everything goes through the store like any other writer.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::store::Store;
use super::workload::{self, Action, WorkloadInput};
use crate::state::Instances;

/// Kubelet version the simulated Nodes report.
pub const KUBELET_VERSION: &str = "v1.32.4";

/// Label marking Nodes the simulator owns (and may delete when their instance goes).
pub const SIMULATED_LABEL: &str = "sandbox.frontdesk.dev/simulated";

/// Kinds whose changes can change what the workload controllers want.
const WATCHED: &[(&str, &str)] = &[
    ("apps", "deployments"),
    ("", "services"),
    ("", "pods"),
    ("discovery.k8s.io", "endpointslices"),
    ("", "endpoints"),
];

/// Hands out pod IPs from 10.244.0.0/16, never twice.
struct PodIps(u32);

impl PodIps {
    fn next(&mut self) -> IpAddr {
        self.0 += 1;
        let n = self.0;
        IpAddr::V4(Ipv4Addr::new(
            10,
            244,
            ((n >> 8) & 0xff) as u8,
            (n & 0xff) as u8,
        ))
    }
}

/// Run until `stop` fires.
pub async fn run(store: Store, instances: Instances, stop: CancellationToken) {
    let mut events = store.subscribe();
    let mut instance_changes = instances.subscribe();
    sync_nodes(&store, &instances);
    let mut ips = PodIps(1);
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    // Reconcile every namespace once: objects may predate the simulator.
    for ns in store.list("", "namespaces", None).0 {
        if let Some(name) = ns["metadata"]["name"].as_str() {
            dirty.insert(name.to_string());
        }
    }
    loop {
        if !dirty.is_empty() {
            // A namespace with thousands of Services is seconds of CPU: run it on the blocking
            // pool so the API server and anything else in this runtime keep their workers.
            let (s, namespaces) = (store.clone(), std::mem::take(&mut dirty));
            let mut next = PodIps(ips.0);
            let work = tokio::task::spawn_blocking(move || {
                for ns in namespaces {
                    reconcile_namespace(&s, &ns, &mut next);
                }
                next
            });
            tokio::select! {
                _ = stop.cancelled() => return,
                done = work => match done {
                    Ok(next) => ips = next,
                    Err(e) => {
                        warn!(error = %e, "workload simulator pass failed");
                        return;
                    }
                },
            }
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = instance_changes.changed() => {
                if changed.is_err() { return; }
                sync_nodes(&store, &instances);
                // Pods are spread over Ready nodes: every namespace may need a look.
                for ns in store.list("", "namespaces", None).0 {
                    if let Some(name) = ns["metadata"]["name"].as_str() {
                        dirty.insert(name.to_string());
                    }
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if WATCHED.iter().any(|(g, p)| ev.group == *g && ev.plural == *p) {
                        dirty.insert(ev.namespace().to_string());
                        // Collect the rest of a burst before working.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        while let Ok(ev) = events.try_recv() {
                            if WATCHED.iter().any(|(g, p)| ev.group == *g && ev.plural == *p) {
                                dirty.insert(ev.namespace().to_string());
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // We missed changes: look at everything again.
                    for ns in store.list("", "namespaces", None).0 {
                        if let Some(name) = ns["metadata"]["name"].as_str() {
                            dirty.insert(name.to_string());
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// One Node per instance: create the missing, delete simulated Nodes whose instance is gone.
pub fn sync_nodes(store: &Store, instances: &Instances) {
    let wanted = instances.list();
    let (existing, _) = store.list("", "nodes", None);
    let have: BTreeSet<String> = existing
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for inst in &wanted {
        if !have.contains(&inst.name) {
            let mut node = super::nodes::node_object(inst, KUBELET_VERSION);
            node["metadata"]["labels"][SIMULATED_LABEL] = Value::String("true".to_string());
            if let Err(e) = store.create("", "nodes", node) {
                warn!(node = %inst.name, error = %e, "could not register node");
            }
        }
    }
    let names: BTreeSet<&str> = wanted.iter().map(|i| i.name.as_str()).collect();
    for node in existing {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let simulated = node["metadata"]["labels"][SIMULATED_LABEL] == "true";
        if simulated
            && !names.contains(name)
            && let Err(e) = store.delete("", "nodes", None, name)
        {
            debug!(node = %name, error = %e, "could not remove node");
        }
    }
}

fn refs(v: &[Arc<Value>]) -> Vec<&Value> {
    v.iter().map(|a| a.as_ref()).collect()
}

fn reconcile_namespace(store: &Store, ns: &str, ips: &mut PodIps) {
    let (deployments, _) = store.list("apps", "deployments", Some(ns));
    let (services, _) = store.list("", "services", Some(ns));
    let (pods, _) = store.list("", "pods", Some(ns));
    let (slices, _) = store.list("discovery.k8s.io", "endpointslices", Some(ns));
    let (endpoints, _) = store.list("", "endpoints", Some(ns));
    let (nodes, _) = store.list("", "nodes", None);
    let (d, s, p, sl, e, n) = (
        refs(&deployments),
        refs(&services),
        refs(&pods),
        refs(&slices),
        refs(&endpoints),
        refs(&nodes),
    );
    let input = WorkloadInput {
        deployments: &d,
        services: &s,
        pods: &p,
        slices: &sl,
        endpoints: &e,
        nodes: &n,
    };
    let actions = workload::reconcile(ns, &input, &mut || ips.next());
    for action in actions {
        let result = match action {
            Action::Create {
                group,
                plural,
                object,
            } => store.create(&group, &plural, object).map(|_| ()),
            Action::Update {
                group,
                plural,
                object,
            } => store.update(&group, &plural, object).map(|_| ()),
            Action::UpdateStatus {
                group,
                plural,
                object,
            } => store.update_status(&group, &plural, object).map(|_| ()),
            Action::Delete {
                group,
                plural,
                namespace,
                name,
            } => store
                .delete(&group, &plural, Some(&namespace), &name)
                .map(|_| ()),
        };
        // Conflicts are expected when a user writes at the same time; the next event retries.
        if let Err(e) = result {
            debug!(namespace = %ns, error = %e, "workload action not applied");
        }
    }
}
