//! The EndpointSlice and Endpoints controllers: Service selector + Pods -> endpoints.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::naming::generated_name;
use super::{
    Action, Nodes, WorkloadInput, arr, condition_true, deleting, for_write, labels, map_selects,
    str_at,
};

pub(super) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub(super) const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub(super) const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Set by the Endpoints controller on the Endpoints it writes (so the mirroring controller
/// leaves them alone); it also tells us which Endpoints are ours to delete.
pub(super) const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

const SLICES: (&str, &str) = ("discovery.k8s.io", "endpointslices");
const ENDPOINTS: (&str, &str) = ("", "endpoints");

/// One ready-to-publish pod of a Service.
struct Member<'a> {
    pod: &'a Value,
    ip: &'a str,
    /// Resolved ports, in Service port order: (name, port, protocol, appProtocol).
    ports: Vec<(String, i64, String, Option<String>)>,
}

fn is_managed_slice(s: &Value) -> bool {
    labels(s).get(MANAGED_BY_LABEL).and_then(Value::as_str) == Some(MANAGED_BY)
}

fn is_managed_endpoints(e: &Value) -> bool {
    labels(e).get(SKIP_MIRROR_LABEL).and_then(Value::as_str) == Some("true")
}

/// Services that get endpoints from the controllers: a non-empty selector, not ExternalName.
fn wants_endpoints(svc: &Value) -> bool {
    let has_selector = svc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    has_selector && str_at(svc, "/spec/type") != "ExternalName" && !deleting(svc)
}

pub(super) fn plan(
    namespace: &str,
    input: &WorkloadInput,
    pods: &[&Value],
    nodes: &Nodes,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut services: Vec<&Value> = input
        .services
        .iter()
        .copied()
        .filter(|s| wants_endpoints(s))
        .collect();
    services.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));
    let live: BTreeSet<&str> = services
        .iter()
        .map(|s| str_at(s, "/metadata/name"))
        .collect();

    for svc in &services {
        let members = members(svc, pods);
        sync_slices(namespace, svc, &members, input.slices, nodes, &mut actions);
        sync_endpoints(namespace, svc, &members, input.endpoints, &mut actions);
    }

    for s in input.slices.iter().filter(|s| is_managed_slice(s)) {
        let owner = labels(s)
            .get(SERVICE_NAME_LABEL)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default();
        if !live.contains(owner.as_str()) {
            actions.push(delete(SLICES, namespace, s));
        }
    }
    for e in input.endpoints.iter().filter(|e| is_managed_endpoints(e)) {
        if !live.contains(str_at(e, "/metadata/name")) {
            actions.push(delete(ENDPOINTS, namespace, e));
        }
    }
    actions
}

fn delete((group, plural): (&str, &str), namespace: &str, obj: &Value) -> Action {
    Action::Delete {
        group: group.into(),
        plural: plural.into(),
        namespace: namespace.into(),
        name: str_at(obj, "/metadata/name").into(),
    }
}

/// `podutil.FindPort`: a number is used as is; a name is looked up among the container ports
/// (same protocol); a missing targetPort means the service port. `None` when unresolvable.
fn resolve_port(pod: &Value, svc_port: &Value) -> Option<i64> {
    let protocol = svc_port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    match svc_port.get("targetPort") {
        None | Some(Value::Null) => svc_port.get("port").and_then(Value::as_i64),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => {
            if let Ok(n) = s.parse::<i64>() {
                return Some(n);
            }
            arr(pod, "/spec/containers")
                .iter()
                .flat_map(|c| arr(c, "/ports"))
                .find(|p| {
                    str_at(p, "/name") == s
                        && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
                })
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        }
        Some(_) => None,
    }
}

fn ipv6_service(svc: &Value) -> bool {
    arr(svc, "/spec/ipFamilies").first().and_then(Value::as_str) == Some("IPv6")
}

fn members<'a>(svc: &Value, pods: &[&'a Value]) -> Vec<Member<'a>> {
    let selector = svc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let v6 = ipv6_service(svc);
    let mut out = Vec::new();
    for pod in pods {
        let ip = str_at(pod, "/status/podIP");
        let phase = str_at(pod, "/status/phase");
        if ip.is_empty() || phase == "Succeeded" || phase == "Failed" || ip.contains(':') != v6 {
            continue;
        }
        if !map_selects(&selector, &labels(pod)) {
            continue;
        }
        let ports = arr(svc, "/spec/ports")
            .iter()
            .filter_map(|sp| {
                let port = resolve_port(pod, sp)?;
                Some((
                    str_at(sp, "/name").to_string(),
                    port,
                    sp.get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string(),
                    sp.get("appProtocol")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ))
            })
            .collect();
        out.push(Member { pod, ip, ports });
    }
    out.sort_by(|a, b| str_at(a.pod, "/metadata/name").cmp(str_at(b.pod, "/metadata/name")));
    out
}

fn port_json(name: &str, port: i64, protocol: &str, app: Option<&String>, slice: bool) -> Value {
    let mut m = Map::new();
    // Slice ports always carry a name ("" when unnamed); Endpoints ports omit an empty one.
    if slice || !name.is_empty() {
        m.insert("name".into(), json!(name));
    }
    m.insert("port".into(), json!(port));
    m.insert("protocol".into(), json!(protocol));
    if let Some(a) = app {
        m.insert("appProtocol".into(), json!(a));
    }
    Value::Object(m)
}

fn target_ref(namespace: &str, pod: &Value) -> Value {
    let mut r =
        json!({"kind": "Pod", "namespace": namespace, "name": str_at(pod, "/metadata/name")});
    let uid = str_at(pod, "/metadata/uid");
    if !uid.is_empty() {
        r["uid"] = json!(uid);
    }
    r
}

/// Labels the controllers put on what they write: the Service's own plus their markers.
fn derived_labels(svc: &Value, extra: &[(&str, &str)]) -> Value {
    let mut l = labels(svc);
    if str_at(svc, "/spec/clusterIP") == "None" {
        l.insert(HEADLESS_LABEL.into(), json!(""));
    }
    for (k, v) in extra {
        l.insert((*k).into(), json!(v));
    }
    Value::Object(l)
}

/// Members grouped by their resolved port set (one slice / subset per group).
fn groups<'a, 'b>(members: &'b [Member<'a>]) -> BTreeMap<String, Vec<&'b Member<'a>>> {
    let mut out: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
    for m in members {
        let key = m
            .ports
            .iter()
            .map(|(n, p, pr, a)| format!("{n}/{p}/{pr}/{}", a.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(",");
        out.entry(key).or_default().push(m);
    }
    out
}

fn sync_slices(
    namespace: &str,
    svc: &Value,
    members: &[Member],
    existing: &[&Value],
    nodes: &Nodes,
    actions: &mut Vec<Action>,
) {
    let svc_name = str_at(svc, "/metadata/name");
    let address_type = if ipv6_service(svc) { "IPv6" } else { "IPv4" };
    let publish_not_ready = svc
        .pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        == Some(true);
    let want_labels = derived_labels(
        svc,
        &[
            (SERVICE_NAME_LABEL, svc_name),
            (MANAGED_BY_LABEL, MANAGED_BY),
        ],
    );
    let owner = json!([{
        "apiVersion": "v1",
        "kind": "Service",
        "name": svc_name,
        "uid": str_at(svc, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let mut groups = groups(members);
    if groups.is_empty() {
        // Upstream keeps one placeholder slice (no ports, no endpoints) per Service.
        groups.insert(String::new(), Vec::new());
    }
    let mut desired: Vec<(String, Value, Value)> = Vec::new();
    for (i, (key, group)) in groups.iter().enumerate() {
        // The first group's name depends on the Service alone, so the usual single slice keeps
        // its name from placeholder to scaled-out.
        let seed = if i == 0 {
            format!("{namespace}/{svc_name}")
        } else {
            format!("{namespace}/{svc_name}/{key}")
        };
        let name = generated_name(&format!("{svc_name}-"), &seed);
        let ports: Vec<Value> = group
            .first()
            .map(|m| {
                m.ports
                    .iter()
                    .map(|(n, p, pr, a)| port_json(n, *p, pr, a.as_ref(), true))
                    .collect()
            })
            .unwrap_or_default();
        let endpoints: Vec<Value> = group
            .iter()
            .map(|m| {
                let terminating = deleting(m.pod);
                let pod_ready = condition_true(m.pod, "Ready");
                let mut e = json!({
                    "addresses": [m.ip],
                    "conditions": {
                        "ready": publish_not_ready || (pod_ready && !terminating),
                        "serving": publish_not_ready || pod_ready,
                        "terminating": terminating,
                    },
                });
                let node = str_at(m.pod, "/spec/nodeName");
                if !node.is_empty() {
                    e["nodeName"] = json!(node);
                    if let Some((_, _, zone)) = nodes.get(node).filter(|(_, _, z)| !z.is_empty()) {
                        e["zone"] = json!(zone);
                    }
                }
                e["targetRef"] = target_ref(namespace, m.pod);
                e
            })
            .collect();
        desired.push((name, json!(ports), json!(endpoints)));
    }

    let mine: Vec<&Value> = existing
        .iter()
        .copied()
        .filter(|s| {
            is_managed_slice(s)
                && labels(s).get(SERVICE_NAME_LABEL).and_then(Value::as_str) == Some(svc_name)
        })
        .collect();
    for (name, ports, endpoints) in &desired {
        match mine.iter().find(|s| str_at(s, "/metadata/name") == name) {
            Some(cur) => {
                let same = cur.pointer("/metadata/labels") == Some(&want_labels)
                    && cur.pointer("/metadata/ownerReferences") == Some(&owner)
                    && str_at(cur, "/addressType") == address_type
                    && cur.get("ports").unwrap_or(&Value::Null) == ports
                    && cur.get("endpoints").unwrap_or(&Value::Null) == endpoints;
                if !same {
                    let mut next = (*cur).clone();
                    next["metadata"]["labels"] = want_labels.clone();
                    next["metadata"]["ownerReferences"] = owner.clone();
                    next["addressType"] = json!(address_type);
                    next["ports"] = ports.clone();
                    next["endpoints"] = endpoints.clone();
                    actions.push(Action::Update {
                        group: SLICES.0.into(),
                        plural: SLICES.1.into(),
                        object: for_write(next),
                    });
                }
            }
            None => actions.push(Action::Create {
                group: SLICES.0.into(),
                plural: SLICES.1.into(),
                object: json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": name,
                        "generateName": format!("{svc_name}-"),
                        "namespace": namespace,
                        "labels": want_labels,
                        "ownerReferences": owner,
                    },
                    "addressType": address_type,
                    "endpoints": endpoints,
                    "ports": ports,
                }),
            }),
        }
    }
    for s in mine {
        if !desired
            .iter()
            .any(|(n, _, _)| n == str_at(s, "/metadata/name"))
        {
            actions.push(delete(SLICES, namespace, s));
        }
    }
}

fn sync_endpoints(
    namespace: &str,
    svc: &Value,
    members: &[Member],
    existing: &[&Value],
    actions: &mut Vec<Action>,
) {
    let svc_name = str_at(svc, "/metadata/name");
    let publish_not_ready = svc
        .pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        == Some(true);
    let labels = derived_labels(svc, &[(SKIP_MIRROR_LABEL, "true")]);
    let mut subsets = Vec::new();
    for group in groups(members).values() {
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        // Terminating pods are not in the legacy object at all.
        for m in group.iter().filter(|m| !deleting(m.pod)) {
            let mut addr = json!({"ip": m.ip});
            let node = str_at(m.pod, "/spec/nodeName");
            if !node.is_empty() {
                addr["nodeName"] = json!(node);
            }
            addr["targetRef"] = target_ref(namespace, m.pod);
            if publish_not_ready || condition_true(m.pod, "Ready") {
                ready.push((m.ip, addr));
            } else {
                not_ready.push((m.ip, addr));
            }
        }
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        ready.sort_by(|a, b| a.0.cmp(b.0));
        not_ready.sort_by(|a, b| a.0.cmp(b.0));
        let mut subset = Map::new();
        if !ready.is_empty() {
            subset.insert(
                "addresses".into(),
                json!(ready.into_iter().map(|(_, a)| a).collect::<Vec<_>>()),
            );
        }
        if !not_ready.is_empty() {
            subset.insert(
                "notReadyAddresses".into(),
                json!(not_ready.into_iter().map(|(_, a)| a).collect::<Vec<_>>()),
            );
        }
        let ports: Vec<Value> = group
            .first()
            .map(|m| {
                m.ports
                    .iter()
                    .map(|(n, p, pr, a)| port_json(n, *p, pr, a.as_ref(), false))
                    .collect()
            })
            .unwrap_or_default();
        if !ports.is_empty() {
            subset.insert("ports".into(), json!(ports));
        }
        subsets.push(Value::Object(subset));
    }

    let cur = existing
        .iter()
        .find(|e| str_at(e, "/metadata/name") == svc_name);
    match cur {
        Some(cur) => {
            let cur_subsets = cur
                .get("subsets")
                .filter(|s| !s.is_null())
                .cloned()
                .unwrap_or_else(|| json!([]));
            if cur.pointer("/metadata/labels") != Some(&labels) || cur_subsets != json!(subsets) {
                let mut next = (*cur).clone();
                next["metadata"]["labels"] = labels;
                match &mut next {
                    Value::Object(m) if subsets.is_empty() => {
                        m.remove("subsets");
                    }
                    _ => next["subsets"] = json!(subsets),
                }
                actions.push(Action::Update {
                    group: ENDPOINTS.0.into(),
                    plural: ENDPOINTS.1.into(),
                    object: for_write(next),
                });
            }
        }
        None => {
            let mut obj = json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": svc_name, "namespace": namespace, "labels": labels},
            });
            if !subsets.is_empty() {
                obj["subsets"] = json!(subsets);
            }
            actions.push(Action::Create {
                group: ENDPOINTS.0.into(),
                plural: ENDPOINTS.1.into(),
                object: obj,
            });
        }
    }
}
