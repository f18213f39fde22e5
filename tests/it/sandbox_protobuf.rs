//! `kubectl create <generator>` and `kubectl auth can-i` send protobuf bodies
//! (`application/vnd.kubernetes.protobuf`); the sandbox decodes them and answers JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;

use crate::support::{World, eventually};

async fn get_json(w: &World, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let out = w.kubectl_ok(&full).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {full:?}: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_generators_send_protobuf() {
    let w = World::start(1).await;

    let out = w.kubectl_ok(&["create", "namespace", "foo"]).await;
    assert_eq!(out.trim(), "namespace/foo created");
    let ns = get_json(&w, &["namespace", "foo"]).await;
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");

    w.kubectl_ok(&[
        "create",
        "configmap",
        "x",
        "--from-literal=a=b",
        "-n",
        "foo",
    ])
    .await;
    let cm = get_json(&w, &["configmap", "x", "-n", "foo"]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}), "{cm}");
    assert_eq!(cm["metadata"]["namespace"], "foo");

    w.kubectl_ok(&["create", "secret", "generic", "s", "--from-literal=k=v"])
        .await;
    let secret = get_json(&w, &["secret", "s"]).await;
    assert_eq!(secret["data"]["k"], "dg==", "{secret}");
    // (Upstream defaults `type` to Opaque on the server; the sandbox does not, JSON or not.)

    let out = w.kubectl_ok(&["create", "serviceaccount", "sa"]).await;
    assert_eq!(out.trim(), "serviceaccount/sa created");
    get_json(&w, &["serviceaccount", "sa"]).await;

    w.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "--port=80",
        "--",
        "nginx",
        "-g",
        "daemon off;",
    ])
    .await;
    let d = get_json(&w, &["deployment", "web"]).await;
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx", "{d}");
    assert_eq!(c["ports"][0]["containerPort"], 80, "{d}");
    assert_eq!(
        c["command"],
        serde_json::json!(["nginx", "-g", "daemon off;"])
    );
    // The sandbox's workload simulator runs the decoded Deployment like any other.
    eventually(
        Duration::from_secs(20),
        "2 pods of deployment web",
        || async {
            let pods = get_json(&w, &["pods", "-l", "app=web"]).await;
            (pods["items"].as_array().map(Vec::len) == Some(2)).then_some(())
        },
    )
    .await;

    w.kubectl_ok(&["create", "service", "clusterip", "x", "--tcp=80:8080"])
        .await;
    let svc = get_json(&w, &["service", "x"]).await;
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(svc["spec"]["selector"]["app"], "x");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.contains('.')),
        "{svc}"
    );

    w.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
    ])
    .await;
    let svc = get_json(&w, &["service", "headless"]).await;
    assert_eq!(svc["spec"]["clusterIP"], "None", "{svc}");

    w.kubectl_ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"])
        .await;
    let svc = get_json(&w, &["service", "lb"]).await;
    assert_eq!(svc["spec"]["type"], "LoadBalancer", "{svc}");
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    assert!((30000..=32767).contains(&node_port), "{svc}");

    w.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30123",
    ])
    .await;
    let svc = get_json(&w, &["service", "np"]).await;
    assert_eq!(svc["spec"]["type"], "NodePort", "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30123, "{svc}");

    w.kubectl_ok(&[
        "create",
        "role",
        "reader",
        "--verb=get,list",
        "--resource=pods",
    ])
    .await;
    let role = get_json(&w, &["role", "reader"]).await;
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"]),
        "{role}"
    );
    w.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        "--serviceaccount=default:sa",
    ])
    .await;
    let rb = get_json(&w, &["rolebinding", "reader"]).await;
    assert_eq!(rb["roleRef"]["name"], "reader", "{rb}");
    assert_eq!(rb["subjects"][0]["kind"], "ServiceAccount", "{rb}");

    // Without enforcement the sandbox allows everything.
    for args in [
        &["auth", "can-i", "create", "pods"][..],
        &["auth", "can-i", "delete", "services", "-n", "foo"],
        &["auth", "can-i", "get", "/healthz"],
    ] {
        let out = w.kubectl_ok(args).await;
        assert_eq!(out.trim(), "yes", "{args:?}");
    }

    // A served kind without a protobuf table: a 415 naming the kind and the way out.
    let (ok, _, err) = w
        .kubectl(&[
            "create",
            "poddisruptionbudget",
            "pdb",
            "--selector=app=web",
            "--min-available=1",
        ])
        .await;
    assert!(!ok);
    assert!(
        err.contains("PodDisruptionBudget") && err.contains("kubectl apply -f"),
        "{err}"
    );
    w.shutdown().await;
}
