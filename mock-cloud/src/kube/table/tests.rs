use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::builtin::{format_labels, label_selector_for_tests, printer_for};
use super::*;
use crate::kube::resources::{PrinterColumn, ResourceInfo};

fn info(group: &str, version: &str, kind: &str) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
        singular: kind.to_lowercase(),
        namespaced: true,
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        verbs: vec![],
        custom: false,
        printer_columns: vec![],
        schema: None,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn ago(seconds: i64) -> String {
    (now() - Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn cells(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    (printer_for(group, kind).cells)(obj, now())
}

fn header_names(group: &str, kind: &str) -> Vec<(&'static str, i64)> {
    printer_for(group, kind)
        .columns
        .iter()
        .map(|c| (c.name, c.priority))
        .collect()
}

#[test]
fn human_duration_matches_kubectl() {
    let cases: &[(i64, &str)] = &[
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (21, "21s"),
        (90, "90s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(age(&ago(*secs), now()), *want, "{secs}s");
    }
    assert_eq!(age("not a time", now()), "<unknown>");
    assert_eq!(age("2025-06-01T11:59:30.5+00:00", now()), "29s");
}

#[test]
fn table_shape_and_row_objects() {
    let svc = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u1",
        "resourceVersion": "105", "creationTimestamp": ago(21)},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80, "protocol": "TCP"}]}});
    let i = info("", "v1", "Service");
    let t = to_table(&i, &[&svc], "109", false, true);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"]["resourceVersion"], "109");
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name":"Name","type":"string","format":"name","description":desc::OBJECT_META_NAME,"priority":0})
    );
    assert_eq!(t["columnDefinitions"][6]["priority"], 1);
    let obj = &t["rows"][0]["object"];
    assert_eq!(obj["kind"], "PartialObjectMetadata");
    assert_eq!(obj["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
    assert!(obj.get("spec").is_none());

    let watch_event = to_table(&i, &[&svc], "110", true, false);
    assert!(watch_event["columnDefinitions"].is_null());
    let full = &watch_event["rows"][0]["object"];
    assert_eq!(full["kind"], "Service");
    assert_eq!(full["apiVersion"], "v1");
    assert_eq!(full["spec"]["clusterIP"], "10.96.0.20");

    let empty = to_table(&i, &[], "1", false, true);
    assert_eq!(empty["rows"], json!([]));
}

#[test]
fn service_cells_by_type() {
    let base = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(21)}, "spec": spec, "status": status});
    let lb_ports = json!([{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}]);
    let cases: Vec<(Value, [&str; 7])> = vec![
        (
            base(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.20"], "ports": lb_ports, "selector": {"app": "web"}}),
                json!({}),
            ),
            [
                "web",
                "LoadBalancer",
                "10.96.0.20",
                "<pending>",
                "80:30080/TCP,443:30443/TCP",
                "21s",
                "app=web",
            ],
        ),
        (
            base(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.20"], "ports": [{"port": 80, "nodePort": 30080}], "externalIPs": ["1.1.1.1"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.1"}]}}),
            ),
            [
                "web",
                "LoadBalancer",
                "10.96.0.20",
                "203.0.113.1,203.0.113.9,lb.example.com,1.1.1.1",
                "80:30080/TCP",
                "21s",
                "<none>",
            ],
        ),
        (
            base(
                json!({"clusterIP": "10.96.0.1", "ports": [{"port": 53, "protocol": "UDP"}], "selector": {"b": "2", "a": "1"}}),
                json!({}),
            ),
            [
                "web",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "53/UDP",
                "21s",
                "a=1,b=2",
            ],
        ),
        (
            base(
                json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
                json!({}),
            ),
            [
                "web",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "21s",
                "<none>",
            ],
        ),
        (
            base(
                json!({"type": "NodePort", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
                json!({}),
            ),
            [
                "web",
                "NodePort",
                "10.96.0.5",
                "<none>",
                "80:31000/TCP",
                "21s",
                "<none>",
            ],
        ),
        (
            base(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
            ),
            [
                "web",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "21s",
                "<none>",
            ],
        ),
    ];
    for (obj, want) in cases {
        let got = cells("", "Service", &obj);
        let want: Vec<Value> = want.iter().map(|s| json!(s)).collect();
        assert_eq!(got, want, "{obj}");
    }
    assert_eq!(
        header_names("", "Service"),
        [
            ("Name", 0),
            ("Type", 0),
            ("Cluster-IP", 0),
            ("External-IP", 0),
            ("Port(s)", 0),
            ("Age", 0),
            ("Selector", 1)
        ]
    );
}

#[test]
fn pod_cells_cover_common_states() {
    let running = json!({
        "metadata": {"name": "web-1", "creationTimestamp": ago(300)},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app"}, {"name": "side"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "side", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"finishedAt": ago(60)}}}
            ]}
    });
    assert_eq!(
        cells("", "Pod", &running),
        vec![
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("2 (60s ago)"),
            json!("5m"),
            json!("10.244.1.5"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    let pending = json!({"metadata": {"name": "p", "creationTimestamp": ago(5)}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Pending"}});
    assert_eq!(
        cells("", "Pod", &pending)[1..4],
        [json!("0/1"), json!("Pending"), json!("0")]
    );
    assert_eq!(
        cells("", "Pod", &pending)[5..7],
        [json!("<none>"), json!("<none>")]
    );

    let crash = json!({"metadata": {"name": "c"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    assert_eq!(
        cells("", "Pod", &crash)[1..5],
        [
            json!("0/1"),
            json!("CrashLoopBackOff"),
            json!("4"),
            json!("<unknown>")
        ]
    );

    let deleting = json!({"metadata": {"name": "d", "deletionTimestamp": ago(1)}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running"}});
    assert_eq!(cells("", "Pod", &deleting)[2], json!("Terminating"));

    let init = json!({"metadata": {"name": "i"}, "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]}});
    assert_eq!(cells("", "Pod", &init)[2], json!("Init:1/2"));

    let done = json!({"metadata": {"name": "j"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
    assert_eq!(cells("", "Pod", &done)[2], json!("Completed"));
    let t = to_table(&info("", "v1", "Pod"), &[&done], "1", false, true);
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
    assert_eq!(
        header_names("", "Pod"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"metadata": {"name": "web", "creationTimestamp": ago(10)}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 8080}, {"port": 9090}]}]});
    assert_eq!(
        cells("", "Endpoints", &ep)[1],
        json!("10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 1 more...")
    );
    let v6 = json!({"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("", "Endpoints", &v6)[1], json!("[fd00::1]:80"));
    let headless =
        json!({"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    assert_eq!(cells("", "Endpoints", &headless)[1], json!("10.0.0.1"));
    let none = json!({"metadata": {"name": "x"}});
    assert_eq!(cells("", "Endpoints", &none)[1], json!("<none>"));

    let slice = json!({"metadata": {"name": "web-abcde", "creationTimestamp": ago(10)}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "named"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", &slice),
        vec![
            json!("web-abcde"),
            json!("IPv4"),
            json!("8080,named"),
            json!("10.0.0.1,10.0.0.2"),
            json!("10s")
        ]
    );
    let empty =
        json!({"metadata": {"name": "e"}, "addressType": "IPv4", "ports": null, "endpoints": []});
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", &empty)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
}

#[test]
fn events_core_and_v1() {
    let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "EnsuringLoadBalancer",
        "message": "Ensuring load balancer\n", "involvedObject": {"kind": "Service", "name": "web"},
        "source": {"component": "service-controller"}, "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 3});
    assert_eq!(
        cells("", "Event", &ev),
        vec![
            json!("30s"),
            json!("Normal"),
            json!("EnsuringLoadBalancer"),
            json!("service/web"),
            json!(""),
            json!("service-controller"),
            json!("Ensuring load balancer"),
            json!("10m"),
            json!(3),
            json!("web.1")
        ]
    );
    let v1 = json!({"metadata": {"name": "web.2"}, "type": "Warning", "reason": "Failed", "note": "boom",
        "regarding": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"}, "eventTime": ago(5),
        "reportingController": "frontdesk", "reportingInstance": "frontdesk-0"});
    assert_eq!(
        cells("events.k8s.io", "Event", &v1),
        vec![
            json!("5s"),
            json!("Warning"),
            json!("Failed"),
            json!("pod/p"),
            json!("spec.containers{a}"),
            json!("frontdesk, frontdesk-0"),
            json!("boom"),
            json!("5s"),
            json!(1),
            json!("web.2")
        ]
    );
    let series = json!({"metadata": {"name": "s"}, "involvedObject": {"kind": "Node"}, "eventTime": ago(100),
        "series": {"count": 7, "lastObservedTime": ago(2)}});
    let c = cells("", "Event", &series);
    assert_eq!(
        (c[0].clone(), c[3].clone(), c[8].clone()),
        (json!("2s"), json!("node"), json!(7))
    );
    assert_eq!(header_names("", "Event")[9], ("Name", 1));
}

#[test]
fn simple_kinds() {
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(7200)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("", "Namespace", &ns),
        vec![json!("default"), json!("Active"), json!("120m")]
    );
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(cells("", "ConfigMap", &cm)[1], json!(3));
    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
    assert_eq!(
        cells("", "Secret", &secret)[1..3],
        [json!("Opaque"), json!(1)]
    );
    let lease = json!({"metadata": {"name": "frontdesk"}, "spec": {"holderIdentity": "pod-a"}});
    assert_eq!(
        cells("coordination.k8s.io", "Lease", &lease)[1],
        json!("pod-a")
    );
    let no_holder = json!({"metadata": {"name": "x"}, "spec": {}});
    assert_eq!(
        cells("coordination.k8s.io", "Lease", &no_holder)[1],
        json!("")
    );
    let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2025-05-01T10:00:00Z"}});
    assert_eq!(
        cells("apiextensions.k8s.io", "CustomResourceDefinition", &crd),
        vec![json!("widgets.example.com"), json!("2025-05-01T10:00:00Z")]
    );
    assert_eq!(
        header_names("apiextensions.k8s.io", "CustomResourceDefinition"),
        [("Name", 0), ("Created At", 0)]
    );
    assert_eq!(
        printer_for("rbac.authorization.k8s.io", "Role").columns[1].type_,
        "date"
    );
}

#[test]
fn node_cells() {
    let node = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(86400 * 3),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}, {"type": "Hostname", "address": "node-1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Ubuntu 24.04.1 LTS", "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://1.7.24"}}});
    assert_eq!(
        cells("", "Node", &node),
        vec![
            json!("node-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,worker"),
            json!("3d"),
            json!("v1.32.4"),
            json!("10.0.0.11"),
            json!("<none>"),
            json!("Ubuntu 24.04.1 LTS"),
            json!("6.8.0"),
            json!("containerd://1.7.24")
        ]
    );
    let bare = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let c = cells("", "Node", &bare);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[7].clone()),
        (json!("NotReady"), json!("<none>"), json!("<unknown>"))
    );
}

#[test]
fn deployment_cells_and_selectors() {
    let d = json!({"metadata": {"name": "web", "creationTimestamp": ago(40)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        cells("apps", "Deployment", &d),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("40s"),
            json!("app,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );
    let cases: &[(Value, &str)] = &[
        (json!({}), ""),
        (json!({"matchLabels": {"b": "2", "a": "1"}}), "a=1,b=2"),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}, {"key": "env", "operator": "Exists"}]}),
            "env,tier in (api,web)",
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}, {"key": "y", "operator": "NotIn", "values": ["1"]}]}),
            "!x,y notin (1)",
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "Bogus"}]}),
            "<invalid>",
        ),
    ];
    for (sel, want) in cases {
        assert_eq!(label_selector_for_tests(sel), *want, "{sel}");
    }
    assert_eq!(format_labels(None), "<none>");
}

#[test]
fn custom_resource_tables() {
    let mut i = info("example.com", "v1", "Widget");
    i.custom = true;
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": ago(65)},
        "spec": {"size": 3}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let t = to_table_at(&i, &[&w], "7", false, true, now());
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "65s"]));

    i.printer_columns = vec![
        PrinterColumn {
            name: "Size".into(),
            type_: "integer".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".spec.size".into(),
        },
        PrinterColumn {
            name: "Ready".into(),
            type_: "string".into(),
            format: String::new(),
            description: "Is it ready".into(),
            priority: 0,
            json_path: ".status.conditions[?(@.type==\"Ready\")].status".into(),
        },
        PrinterColumn {
            name: "Color".into(),
            type_: "string".into(),
            format: String::new(),
            description: String::new(),
            priority: 1,
            json_path: ".spec.color".into(),
        },
        PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        },
    ];
    let t = to_table_at(&i, &[&w], "7", false, true, now());
    assert_eq!(t["rows"][0]["cells"], json!(["w1", 3, "True", null, "65s"]));
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.size"
    );
    assert_eq!(t["columnDefinitions"][2]["description"], "Is it ready");
    assert_eq!(t["columnDefinitions"][3]["priority"], 1);
}
