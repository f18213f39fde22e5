use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};

use super::endpoints::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL};
use super::pods::TEMPLATE_HASH_LABEL;
use super::*;

const NS: &str = "default";
const NOW: &str = "2025-06-01T12:00:00Z";

/// A tiny store: applies actions the way the real one would (status kept on Update for kinds
/// with a status subresource, uid assigned on create).
#[derive(Default)]
struct World {
    objects: BTreeMap<(String, String), Value>,
    next_ip: u8,
    /// Leave created objects exactly as emitted (no uid), to check the pure fixed point.
    no_uids: bool,
}

impl World {
    fn put(&mut self, plural: &str, obj: Value) {
        let name = str_at(&obj, "/metadata/name").to_string();
        self.objects.insert((plural.into(), name), obj);
    }

    fn get(&self, plural: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural.to_string(), name.to_string()))
    }

    fn all(&self, plural: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, _), _)| p == plural)
            .map(|(_, v)| v)
            .collect()
    }

    fn reconcile(&mut self) -> Vec<Action> {
        let deployments = self.all("deployments");
        let services = self.all("services");
        let pods = self.all("pods");
        let slices = self.all("endpointslices");
        let endpoints = self.all("endpoints");
        let nodes = self.all("nodes");
        let input = WorkloadInput {
            deployments: &deployments,
            services: &services,
            pods: &pods,
            slices: &slices,
            endpoints: &endpoints,
            nodes: &nodes,
        };
        let mut n = self.next_ip;
        let mut alloc = || {
            n += 1;
            IpAddr::V4(Ipv4Addr::new(10, 244, 0, n))
        };
        let actions = reconcile_at(NS, &input, &mut alloc, NOW);
        self.next_ip = n;
        actions
    }

    fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Create { plural, object, .. } => {
                    let mut o = object.clone();
                    if !self.no_uids {
                        let uid = format!("uid-{}", str_at(&o, "/metadata/name"));
                        o["metadata"]["uid"] = json!(uid);
                    }
                    self.put(plural, o);
                }
                Action::Update { plural, object, .. } => {
                    let mut o = object.clone();
                    let name = str_at(&o, "/metadata/name").to_string();
                    if let Some(old) = self.get(plural, &name)
                        && (plural == "pods" || plural == "deployments")
                    {
                        o["status"] = old.get("status").cloned().unwrap_or(Value::Null);
                    }
                    self.put(plural, o);
                }
                Action::UpdateStatus { plural, object, .. } => {
                    let name = str_at(object, "/metadata/name").to_string();
                    let status = object["status"].clone();
                    if let Some(old) = self.objects.get_mut(&(plural.clone(), name)) {
                        old["status"] = status;
                    }
                }
                Action::Delete { plural, name, .. } => {
                    self.objects.remove(&(plural.clone(), name.clone()));
                }
            }
        }
    }

    /// Reconcile and apply until nothing is left to do; returns how many rounds it took.
    fn settle(&mut self) -> usize {
        for round in 1..=5 {
            let actions = self.reconcile();
            if actions.is_empty() {
                return round;
            }
            self.apply(&actions);
        }
        panic!("no fixed point after 5 rounds: {:?}", self.reconcile());
    }
}

fn node(name: &str, ip: &str, zone: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn deployment(name: &str, replicas: u64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

fn service(name: &str, selector: Option<Value>) -> Value {
    let mut spec = json!({"type": "LoadBalancer", "clusterIP": "10.96.0.20",
        "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
                  {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"}]});
    if let Some(sel) = selector {
        spec["selector"] = sel;
    }
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "labels": {"team": "a"}}, "spec": spec})
}

fn three_nodes(w: &mut World) {
    for (i, z) in ["zone-a", "zone-b", "zone-c"].iter().enumerate() {
        w.put(
            "nodes",
            node(
                &format!("node-{}", i + 1),
                &format!("10.0.0.{}", 11 + i),
                z,
                true,
            ),
        );
    }
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Create { plural, .. } => format!("create {plural}"),
            Action::Update { plural, .. } => format!("update {plural}"),
            Action::UpdateStatus { plural, .. } => format!("status {plural}"),
            Action::Delete { plural, .. } => format!("delete {plural}"),
        })
        .collect()
}

fn count(actions: &[Action], what: &str) -> usize {
    kinds(actions).iter().filter(|k| *k == what).count()
}

#[test]
fn deployment_and_service_converge() {
    let mut w = World::default();
    three_nodes(&mut w);
    w.put("deployments", deployment("web", 3, "nginx:1.27"));
    w.put("services", service("web", Some(json!({"app": "web"}))));

    let first = w.reconcile();
    assert_eq!(count(&first, "create pods"), 3);
    assert_eq!(count(&first, "status deployments"), 1);
    assert_eq!(count(&first, "create endpointslices"), 1);
    assert_eq!(count(&first, "create endpoints"), 1);
    assert_eq!(first.len(), 6, "{:?}", kinds(&first));
    w.apply(&first);

    // Reconciling its own output: only the pod uids the store assigned reach the slices.
    let second = w.reconcile();
    assert_eq!(
        kinds(&second),
        ["update endpointslices", "update endpoints"]
    );
    w.apply(&second);
    assert!(w.reconcile().is_empty());

    let pods = w.all("pods");
    assert_eq!(pods.len(), 3);
    let mut nodes: Vec<&str> = pods.iter().map(|p| str_at(p, "/spec/nodeName")).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    for p in &pods {
        let name = str_at(p, "/metadata/name");
        let hash = str_at(p, &format!("/metadata/labels/{TEMPLATE_HASH_LABEL}"));
        assert!(name.starts_with(&format!("web-{hash}-")), "{name}");
        assert_eq!(name.len(), format!("web-{hash}-").len() + 5);
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(p["status"]["phase"], "Running");
        assert!(condition_true(p, "Ready") && condition_true(p, "ContainersReady"));
        assert!(str_at(p, "/status/podIP").starts_with("10.244.0."));
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(p["spec"]["restartPolicy"], "Always");
    }

    let d = w.get("deployments", "web").cloned().unwrap_or_default();
    assert_eq!(
        (
            d["status"]["replicas"].clone(),
            d["status"]["readyReplicas"].clone(),
            d["status"]["availableReplicas"].clone()
        ),
        (json!(3), json!(3), json!(3))
    );
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(d["status"]["conditions"][0]["type"], "Available");
    assert_eq!(d["status"]["conditions"][0]["status"], "True");
    assert_eq!(
        d["status"]["conditions"][1]["reason"],
        "NewReplicaSetAvailable"
    );
    assert!(d["status"].get("unavailableReplicas").is_none());

    let slices = w.all("endpointslices");
    assert_eq!(slices.len(), 1);
    let s = slices[0];
    assert!(str_at(s, "/metadata/name").starts_with("web-"));
    assert_eq!(str_at(s, "/metadata/name").len(), 9);
    assert_eq!(s["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
    assert_eq!(s["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(s["metadata"]["labels"]["team"], "a");
    assert_eq!(s["metadata"]["ownerReferences"][0]["name"], "web");
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(
        s["ports"],
        json!([{"name": "web", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}])
    );
    let eps = s["endpoints"].as_array().cloned().unwrap_or_default();
    assert_eq!(eps.len(), 3);
    for e in &eps {
        assert_eq!(
            e["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(e["targetRef"]["kind"], "Pod");
        assert!(str_at(e, "/targetRef/uid").starts_with("uid-web-"));
        assert!(str_at(e, "/zone").starts_with("zone-"));
    }

    let ep = w.get("endpoints", "web").cloned().unwrap_or_default();
    assert_eq!(ep["metadata"]["labels"][SKIP_MIRROR_LABEL], "true");
    assert_eq!(ep["subsets"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        ep["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        ep["subsets"][0]["ports"][0],
        json!({"name": "web", "port": 8080, "protocol": "TCP"})
    );
}

#[test]
fn reconcile_on_its_own_output_is_a_no_op() {
    let mut w = World {
        no_uids: true,
        ..World::default()
    };
    three_nodes(&mut w);
    w.put("deployments", deployment("web", 2, "nginx:1.27"));
    w.put("services", service("web", Some(json!({"app": "web"}))));
    let first = w.reconcile();
    assert!(!first.is_empty());
    w.apply(&first);
    assert_eq!(w.reconcile(), []);
}

#[test]
fn scale_rollout_and_deletion() {
    let mut w = World::default();
    three_nodes(&mut w);
    w.put("deployments", deployment("web", 3, "nginx:1.27"));
    w.put("services", service("web", Some(json!({"app": "web"}))));
    w.settle();

    // Scale down: the highest replicas go, status and endpoints follow.
    let mut d = w.get("deployments", "web").cloned().unwrap_or_default();
    d["spec"]["replicas"] = json!(1);
    d["metadata"]["generation"] = json!(2);
    w.put("deployments", d);
    let actions = w.reconcile();
    assert_eq!(count(&actions, "delete pods"), 2);
    assert_eq!(count(&actions, "status deployments"), 1);
    assert_eq!(count(&actions, "update endpointslices"), 1);
    w.apply(&actions);
    w.settle();
    assert_eq!(w.all("pods").len(), 1);
    assert_eq!(
        w.get("deployments", "web")
            .map(|d| d["status"]["replicas"].clone()),
        Some(json!(1))
    );
    assert_eq!(
        w.get("deployments", "web")
            .map(|d| d["status"]["observedGeneration"].clone()),
        Some(json!(2))
    );

    // A new image replaces the pod under a new template hash.
    let old_pod = str_at(w.all("pods")[0], "/metadata/name").to_string();
    let mut d = w.get("deployments", "web").cloned().unwrap_or_default();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    w.put("deployments", d);
    let actions = w.reconcile();
    assert_eq!(count(&actions, "delete pods"), 1);
    assert_eq!(count(&actions, "create pods"), 1);
    w.apply(&actions);
    w.settle();
    let pods = w.all("pods");
    assert_eq!(pods.len(), 1);
    assert_ne!(str_at(pods[0], "/metadata/name"), old_pod);
    assert_eq!(pods[0]["spec"]["containers"][0]["image"], "nginx:1.28");

    // Deleting the Deployment and the Service removes everything they caused.
    w.objects
        .remove(&("deployments".to_string(), "web".to_string()));
    w.objects
        .remove(&("services".to_string(), "web".to_string()));
    let actions = w.reconcile();
    assert_eq!(
        kinds(&actions),
        ["delete pods", "delete endpointslices", "delete endpoints"]
    );
    w.apply(&actions);
    assert!(
        w.all("pods").is_empty()
            && w.all("endpointslices").is_empty()
            && w.all("endpoints").is_empty()
    );
}

#[test]
fn selectorless_and_external_name_services_get_nothing() {
    let mut w = World::default();
    three_nodes(&mut w);
    w.put("services", service("manual", None));
    let mut ext = service("ext", Some(json!({"app": "x"})));
    ext["spec"]["type"] = json!("ExternalName");
    w.put("services", ext);
    // A user's own Endpoints for the selectorless Service are left alone.
    w.put(
        "endpoints",
        json!({"metadata": {"name": "manual", "namespace": NS},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}),
    );
    assert!(w.reconcile().is_empty());

    // A Service without matching pods still gets its placeholder slice and an empty Endpoints.
    w.put("services", service("lonely", Some(json!({"app": "none"}))));
    let actions = w.reconcile();
    assert_eq!(
        kinds(&actions),
        ["create endpointslices", "create endpoints"]
    );
    w.apply(&actions);
    let s = w.all("endpointslices")[0].clone();
    assert_eq!(
        (s["ports"].clone(), s["endpoints"].clone()),
        (json!([]), json!([]))
    );
    assert!(
        w.get("endpoints", "lonely")
            .is_some_and(|e| e.get("subsets").is_none())
    );
    assert!(w.reconcile().is_empty());
}

#[test]
fn pods_wait_for_ready_nodes_then_get_bound_and_started() {
    let mut w = World::default();
    w.put("nodes", node("node-1", "10.0.0.11", "zone-a", false));
    w.put("deployments", deployment("web", 2, "nginx:1.27"));
    let actions = w.reconcile();
    assert_eq!(count(&actions, "create pods"), 2);
    w.apply(&actions);
    assert!(w.reconcile().is_empty());
    for p in w.all("pods") {
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["conditions"][0]["reason"], "Unschedulable");
        assert!(p["spec"].get("nodeName").is_none());
    }
    let d = w.get("deployments", "web").cloned().unwrap_or_default();
    assert_eq!(d["status"]["unavailableReplicas"], 2);
    assert_eq!(d["status"]["conditions"][0]["status"], "False");

    w.put("nodes", node("node-1", "10.0.0.11", "zone-a", true));
    let actions = w.reconcile();
    assert_eq!(kinds(&actions), ["update pods", "update pods"]);
    w.apply(&actions);
    let actions = w.reconcile();
    assert_eq!(count(&actions, "status pods"), 2);
    w.apply(&actions);
    w.settle();
    for p in w.all("pods") {
        assert_eq!(p["spec"]["nodeName"], "node-1");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["hostIP"], "10.0.0.11");
    }
    assert_eq!(
        w.get("deployments", "web")
            .map(|d| d["status"]["availableReplicas"].clone()),
        Some(json!(2))
    );
}

#[test]
fn bare_pods_are_scheduled_and_terminating_pods_leave_endpoints() {
    let mut w = World::default();
    three_nodes(&mut w);
    w.put("services", service("web", Some(json!({"app": "web"}))));
    w.put("pods", json!({"metadata": {"name": "solo", "namespace": NS, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]}}));
    w.settle();
    let p = w.get("pods", "solo").cloned().unwrap_or_default();
    assert_eq!(p["status"]["phase"], "Running");
    assert!(!str_at(&p, "/spec/nodeName").is_empty());
    assert_eq!(
        w.all("endpointslices")[0]["endpoints"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let mut gone = p.clone();
    gone["metadata"]["deletionTimestamp"] = json!(NOW);
    w.put("pods", gone);
    w.settle();
    let s = w.all("endpointslices")[0].clone();
    assert_eq!(
        s["endpoints"][0]["conditions"],
        json!({"ready": false, "serving": true, "terminating": true})
    );
    assert!(
        w.get("endpoints", "web")
            .is_some_and(|e| e.get("subsets").is_none())
    );

    // A pod on a node the cluster does not have is left alone.
    w.put("pods", json!({"metadata": {"name": "lost", "namespace": NS}, "spec": {"nodeName": "ghost", "containers": []}}));
    assert!(w.reconcile().is_empty());
}

#[test]
fn unresolvable_named_ports_split_slices() {
    let mut w = World::default();
    three_nodes(&mut w);
    w.put("services", service("web", Some(json!({"app": "web"}))));
    w.put("deployments", deployment("web", 1, "nginx:1.27"));
    // A second workload behind the same selector, without a port named `http`.
    let mut other = deployment("web-canary", 1, "nginx:1.27");
    other["spec"]["template"]["metadata"]["labels"]["app"] = json!("web");
    other["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([]);
    w.put("deployments", other);
    w.settle();
    let mut slices: Vec<Value> = w.all("endpointslices").into_iter().cloned().collect();
    slices.sort_by_key(|s| s["ports"].as_array().map(Vec::len));
    assert_eq!(slices.len(), 2);
    assert_eq!(
        slices[0]["ports"],
        json!([{"name": "metrics", "port": 9100, "protocol": "TCP"}])
    );
    assert_eq!(slices[1]["ports"].as_array().map(Vec::len), Some(2));
    let ep = w.get("endpoints", "web").cloned().unwrap_or_default();
    assert_eq!(ep["subsets"].as_array().map(Vec::len), Some(2));
}

#[test]
fn pod_names_are_stable_across_calls() {
    let run = || {
        let mut w = World::default();
        three_nodes(&mut w);
        w.put("deployments", deployment("api", 2, "busybox"));
        w.settle();
        let mut names: Vec<String> = w
            .all("pods")
            .iter()
            .map(|p| str_at(p, "/metadata/name").to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(run(), run());
}
