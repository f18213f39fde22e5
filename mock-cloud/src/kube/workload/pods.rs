//! Deployments -> Pods, the scheduler (node placement) and the kubelet (Running status).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::naming::{fnv1a64, generated_name, hex64, pod_template_hash};
use super::{Action, Nodes, WorkloadInput, arr, deleting, for_write, str_at};

pub(super) const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

pub(super) struct Plan {
    pub actions: Vec<Action>,
    /// The namespace's pods as they will be once `actions` are applied.
    pub projected: Vec<Value>,
}

pub(super) struct Desired<'a> {
    pub deployment: &'a Value,
    pub hash: String,
    /// Pod names in replica order.
    pub names: Vec<String>,
}

fn pod_action(kind: fn(String, String, Value) -> Action, object: Value) -> Action {
    kind(String::new(), "pods".into(), object)
}

fn create(group: String, plural: String, object: Value) -> Action {
    Action::Create {
        group,
        plural,
        object,
    }
}

fn update(group: String, plural: String, object: Value) -> Action {
    Action::Update {
        group,
        plural,
        object: for_write(object),
    }
}

pub(super) fn update_status(group: String, plural: String, object: Value) -> Action {
    Action::UpdateStatus {
        group,
        plural,
        object: for_write(object),
    }
}

fn delete_pod(namespace: &str, pod: &Value) -> Action {
    Action::Delete {
        group: String::new(),
        plural: "pods".into(),
        namespace: namespace.into(),
        name: str_at(pod, "/metadata/name").into(),
    }
}

/// Name of the Deployment controlling `pod`, if any.
pub(super) fn controlling_deployment(pod: &Value) -> Option<&str> {
    arr(pod, "/metadata/ownerReferences")
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .filter(|o| {
            str_at(o, "/kind") == "Deployment" && str_at(o, "/apiVersion").starts_with("apps/")
        })
        .map(|o| str_at(o, "/name"))
}

pub(super) fn plan(
    namespace: &str,
    input: &WorkloadInput,
    nodes: &Nodes,
    alloc: &mut dyn FnMut() -> IpAddr,
    now: &str,
) -> Plan {
    let mut desired: BTreeMap<String, Desired> = BTreeMap::new();
    for d in input.deployments.iter().filter(|d| !deleting(d)) {
        let name = str_at(d, "/metadata/name").to_string();
        let template = d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = pod_template_hash(&template);
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let names = (0..replicas)
            .map(|i| {
                generated_name(
                    &format!("{name}-{hash}-"),
                    &format!("{namespace}/{name}/{hash}/{i}"),
                )
            })
            .collect();
        desired.insert(
            name,
            Desired {
                deployment: d,
                hash,
                names,
            },
        );
    }

    let mut actions = Vec::new();
    let mut projected = Vec::new();
    let mut pods: Vec<&Value> = input.pods.to_vec();
    pods.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));
    for pod in &pods {
        let name = str_at(pod, "/metadata/name");
        if deleting(pod) {
            projected.push((*pod).clone());
            continue;
        }
        if let Some(owner) = controlling_deployment(pod) {
            let wanted = desired
                .get(owner)
                .is_some_and(|d| d.names.iter().any(|n| n == name));
            let node = str_at(pod, "/spec/nodeName");
            let node_gone = !node.is_empty() && nodes.get(node).is_none();
            if !wanted || node_gone {
                actions.push(delete_pod(namespace, pod));
                continue;
            }
        }
        let (pod_actions, now_pod) = simulate(pod, nodes, alloc, now);
        actions.extend(pod_actions);
        projected.push(now_pod);
    }

    for (dname, d) in &desired {
        let offset = fnv1a64(format!("{namespace}/{dname}").as_bytes());
        for (i, pname) in d.names.iter().enumerate() {
            if pods.iter().any(|p| str_at(p, "/metadata/name") == pname) {
                continue;
            }
            let node = nodes
                .pick(offset.wrapping_add(i as u64))
                .map(str::to_string);
            let mut pod = new_pod(namespace, d, pname, node.as_deref());
            let status = desired_status(&pod, nodes, alloc, now);
            pod["status"] = status;
            actions.push(pod_action(create, pod.clone()));
            projected.push(pod);
        }
    }

    for d in desired.values() {
        if let Some(a) = super::deployment::status(d, &projected, now) {
            actions.push(a);
        }
    }
    Plan { actions, projected }
}

/// Scheduler and kubelet for one existing pod: place it, or report it Running/Pending.
fn simulate(
    pod: &Value,
    nodes: &Nodes,
    alloc: &mut dyn FnMut() -> IpAddr,
    now: &str,
) -> (Vec<Action>, Value) {
    let phase = str_at(pod, "/status/phase");
    if phase == "Succeeded" || phase == "Failed" {
        return (Vec::new(), pod.clone());
    }
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        let spread = fnv1a64(str_at(pod, "/metadata/name").as_bytes());
        if let Some(target) = nodes.pick(spread) {
            // Binding first; the kubelet reports status on the next pass, as in a real cluster.
            let mut bound = pod.clone();
            bound["spec"]["nodeName"] = json!(target);
            return (vec![pod_action(update, bound.clone())], bound);
        }
    } else if nodes.get(node).is_none() {
        // Bound to a node that does not exist: nothing would ever run it.
        return (Vec::new(), pod.clone());
    }
    let status = desired_status(pod, nodes, alloc, now);
    if pod.get("status") == Some(&status) {
        return (Vec::new(), pod.clone());
    }
    let mut next = pod.clone();
    next["status"] = status;
    (vec![pod_action(update_status, next.clone())], next)
}

fn new_pod(namespace: &str, d: &Desired, name: &str, node: Option<&str>) -> Value {
    let deploy = d.deployment;
    let dname = str_at(deploy, "/metadata/name");
    let template = deploy
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut labels: Map<String, Value> = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), json!(d.hash));
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    metadata.insert("generateName".into(), json!(format!("{dname}-{}-", d.hash)));
    metadata.insert("namespace".into(), json!(namespace));
    metadata.insert("labels".into(), Value::Object(labels));
    if let Some(ann) = template
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|m| !m.is_empty()))
    {
        metadata.insert("annotations".into(), ann.clone());
    }
    metadata.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": dname,
            "uid": str_at(deploy, "/metadata/uid"),
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    default_pod_spec(&mut spec);
    if let (Some(n), Value::Object(m)) = (node, &mut spec) {
        m.insert("nodeName".into(), json!(n));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// The defaults the apiserver and admission would have added to a pod spec.
fn default_pod_spec(spec: &mut Value) {
    let Value::Object(m) = spec else { return };
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
        (
            "tolerations",
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]),
        ),
    ];
    for (k, v) in defaults {
        m.entry(k).or_insert(v);
    }
    if let Some(Value::Array(containers)) = m.get_mut("containers") {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = c
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let tag_latest = !image.contains('@')
                && image
                    .rsplit_once(':')
                    .is_none_or(|(_, t)| t.contains('/') || t == "latest");
            c.entry("imagePullPolicy").or_insert(json!(if tag_latest {
                "Always"
            } else {
                "IfNotPresent"
            }));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

/// `nginx:1.27` -> `docker.io/library/nginx`: how containerd reports image references.
fn image_repo(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or_default();
    let repo = match without_digest.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => without_digest,
    };
    match repo.split_once('/') {
        None => format!("docker.io/library/{repo}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            repo.to_string()
        }
        Some(_) => format!("docker.io/{repo}"),
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers = arr(spec, "/containers");
    let has_any = containers.iter().any(|c| {
        ["/resources/requests", "/resources/limits"]
            .iter()
            .any(|p| {
                c.pointer(p)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
            })
    });
    if !has_any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = c.pointer(&format!("/resources/limits/{r}"));
            let request = c.pointer(&format!("/resources/requests/{r}"));
            limit.is_some() && (request.is_none() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Keep `old`'s timestamp when the condition's status did not change.
fn condition(old: &Value, type_: &str, status: &str, extra: &[(&str, &str)], now: &str) -> Value {
    let prev = arr(old, "/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == status);
    let since = prev
        .map(|c| str_at(c, "/lastTransitionTime"))
        .filter(|t| !t.is_empty())
        .unwrap_or(now);
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    for (k, v) in extra {
        c[*k] = json!(v);
    }
    c
}

/// The status a kubelet (or, without a node, the scheduler) would report for `pod`.
fn desired_status(
    pod: &Value,
    nodes: &Nodes,
    alloc: &mut dyn FnMut() -> IpAddr,
    now: &str,
) -> Value {
    let old = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    let qos = qos_class(&spec);
    let node = str_at(pod, "/spec/nodeName");
    let Some((_, host_ip, _)) = nodes.get(node).filter(|_| !node.is_empty()) else {
        let total = nodes.all.len();
        let message = if total == 0 {
            "no nodes available to schedule pods".to_string()
        } else {
            format!(
                "0/{total} nodes are available: {total} node(s) were not ready or unschedulable."
            )
        };
        let cond = condition(
            &old,
            "PodScheduled",
            "False",
            &[("reason", "Unschedulable"), ("message", &message)],
            now,
        );
        return json!({"phase": "Pending", "conditions": [cond], "qosClass": qos});
    };
    let ip = match str_at(&old, "/podIP") {
        "" => alloc().to_string(),
        existing => existing.to_string(),
    };
    let start = match str_at(&old, "/startTime") {
        "" => now.to_string(),
        t => t.to_string(),
    };
    let namespace = str_at(pod, "/metadata/namespace");
    let pod_name = str_at(pod, "/metadata/name");
    let statuses: Vec<Value> = arr(&spec, "/containers")
        .iter()
        .map(|c| {
            let name = str_at(c, "/name");
            let image = str_at(c, "/image");
            let started = arr(&old, "/containerStatuses")
                .iter()
                .find(|s| str_at(s, "/name") == name && str_at(s, "/image") == image)
                .map(|s| str_at(s, "/state/running/startedAt"))
                .filter(|t| !t.is_empty())
                .unwrap_or(now);
            json!({
                "containerID": format!("containerd://{}", hex64(&format!("{namespace}/{pod_name}/{name}/{image}"))),
                "image": image,
                "imageID": format!("{}@sha256:{}", image_repo(image), hex64(image)),
                "lastState": {},
                "name": name,
                "ready": true,
                "restartCount": 0,
                "started": true,
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|t| condition(&old, t, "True", &[], now))
    .collect();
    json!({
        "conditions": conditions,
        "containerStatuses": statuses,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "qosClass": qos,
        "startTime": start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repos() {
        let cases = [
            ("nginx", "docker.io/library/nginx"),
            ("nginx:1.27", "docker.io/library/nginx"),
            ("bitnami/redis:7", "docker.io/bitnami/redis"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause"),
            ("localhost:5000/app:v1", "localhost:5000/app"),
            ("ghcr.io/o/app@sha256:abc", "ghcr.io/o/app"),
        ];
        for (image, want) in cases {
            assert_eq!(image_repo(image), want, "{image}");
        }
    }

    #[test]
    fn qos_classes() {
        let cases = [
            (json!({"containers": [{"name": "a"}]}), "BestEffort"),
            (
                json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}),
                "Burstable",
            ),
            (
                json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
                "Guaranteed",
            ),
            (
                json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]}),
                "Burstable",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(qos_class(&spec), want, "{spec}");
        }
    }

    #[test]
    fn pull_policy_defaults() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("a@sha256:00", "IfNotPresent"),
        ];
        for (image, want) in cases {
            let mut spec = json!({"containers": [{"name": "c", "image": image}]});
            default_pod_spec(&mut spec);
            assert_eq!(spec["containers"][0]["imagePullPolicy"], want, "{image}");
        }
    }
}
