//! The sandbox through the real `kubectl`: what a user types must work with no extra flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::{World, eventually, example_path, kubectl_bin};

const ALL_TYPES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: t-clusterip}
spec: {selector: {app: a}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: t-nodeport}
spec: {type: NodePort, selector: {app: a}, ports: [{port: 80, nodePort: 30080}]}
---
apiVersion: v1
kind: Service
metadata: {name: t-lb}
spec: {type: LoadBalancer, selector: {app: a}, ports: [{name: https, port: 443, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: t-external}
spec: {type: ExternalName, externalName: example.com}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_describe_patch_delete() {
    let w = World::start(3).await;
    let out = w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    assert!(out.contains("deployment.apps/my-app created"), "{out}");
    assert!(out.contains("service/my-app-service created"), "{out}");
    // Applying the same file again changes nothing.
    let out = w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    assert!(out.contains("service/my-app-service unchanged"), "{out}");

    let out = w.kubectl_ok(&["get", "svc"]).await;
    let header = out.lines().next().unwrap();
    for col in [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ] {
        assert!(header.contains(col), "{out}");
    }
    let line = out
        .lines()
        .find(|l| l.starts_with("my-app-service"))
        .expect("service row");
    assert!(
        line.contains("LoadBalancer") && line.contains("<pending>"),
        "{line}"
    );
    assert!(line.contains("80:3"), "{line}");
    let out = w.kubectl_ok(&["get", "svc", "kubernetes"]).await;
    assert!(out.contains("10.96.0.1"), "{out}");

    let (ok, out, err) = w.kubectl_stdin(&["apply", "-f", "-"], ALL_TYPES).await;
    assert!(ok, "{out}{err}");
    let out = w.kubectl_ok(&["get", "svc", "-o", "wide"]).await;
    for (name, ty) in [
        ("t-clusterip", "ClusterIP"),
        ("t-nodeport", "NodePort"),
        ("t-lb", "LoadBalancer"),
        ("t-external", "ExternalName"),
    ] {
        let row = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        assert!(row.contains(ty), "{row}");
    }
    let nodeport_row = out.lines().find(|l| l.starts_with("t-nodeport")).unwrap();
    assert!(nodeport_row.contains("80:30080/TCP"), "{nodeport_row}");
    let ext_row = out.lines().find(|l| l.starts_with("t-external")).unwrap();
    assert!(ext_row.contains("example.com"), "{ext_row}");

    // patch (strategic merge by default) keeps the allocated fields.
    let before = w
        .kubectl_ok(&[
            "get",
            "svc",
            "t-lb",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .await;
    let out = w
        .kubectl_ok(&[
            "patch",
            "svc",
            "t-lb",
            "-p",
            r#"{"metadata":{"labels":{"tier":"web"}}}"#,
        ])
        .await;
    assert!(out.contains("patched"), "{out}");
    let after = w
        .kubectl_ok(&[
            "get",
            "svc",
            "t-lb",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .await;
    assert_eq!(before, after);
    let out = w
        .kubectl_ok(&["get", "svc", "-l", "tier=web", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "service/t-lb");

    // A conflicting replace: kubectl reports the 409.
    let mut stale = w
        .kubectl_ok(&["get", "svc", "t-clusterip", "-o", "json"])
        .await;
    w.kubectl_ok(&["label", "svc", "t-clusterip", "bump=1"])
        .await;
    stale = stale.replace("\"selector\": {", "\"selector\": {\"extra\": \"x\", ");
    let (ok, _, err) = w.kubectl_stdin(&["replace", "-f", "-"], &stale).await;
    assert!(!ok);
    assert!(
        err.contains("Conflict") && err.contains("the object has been modified"),
        "{err}"
    );

    let out = w.kubectl_ok(&["describe", "svc", "my-app-service"]).await;
    assert!(
        out.contains("Name:") && out.contains("my-app-service"),
        "{out}"
    );
    assert!(out.contains("LoadBalancer"), "{out}");
    assert!(out.contains("Endpoints:"), "{out}");

    let (ok, _, err) = w.kubectl(&["get", "svc", "nope"]).await;
    assert!(!ok);
    assert!(err.contains(r#"services "nope" not found"#), "{err}");

    let out = w.kubectl_ok(&["delete", "svc", "t-nodeport"]).await;
    assert!(out.contains(r#"service "t-nodeport" deleted"#), "{out}");
    let out = w.kubectl_ok(&["get", "events"]).await;
    // The workload simulator writes no events; an empty list is a clean answer, not an error.
    assert!(out.is_empty() || out.contains("LAST SEEN"), "{out}");
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_status_patch() {
    let w = World::start(1).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let mut child = tokio::process::Command::new(kubectl_bin())
        .args(["get", "svc", "my-app-service", "-w"])
        .env("KUBECONFIG", &w.kubeconfig)
        .env("HOME", w.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    api.patch_status(
        "my-app-service",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.77"}]}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("<pending>"), "first row pending: {stdout}");
    assert!(
        stdout.contains("203.0.113.77"),
        "watch row with the address: {stdout}"
    );
    assert_eq!(stdout.matches("NAME").count(), 1, "headers once: {stdout}");
    w.shutdown().await;
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_and_custom_object_with_kubectl() {
    let w = World::start(1).await;
    let (ok, out, err) = w.kubectl_stdin(&["apply", "-f", "-"], CRD).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = w
        .kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {size: 7}\n",
        )
        .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("gadget.example.com/g1 created"), "{out}");
    let out = w.kubectl_ok(&["get", "gadgets"]).await;
    assert!(
        out.contains("SIZE") && out.contains("g1") && out.contains('7'),
        "{out}"
    );
    let (ok, _, err) = w
        .kubectl(&["patch", "gadget", "g1", "-p", r#"{"spec":{"size":8}}"#])
        .await;
    assert!(!ok && err.contains("strategic-merge-patch"), "{err}");
    w.kubectl_ok(&[
        "patch",
        "gadget",
        "g1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":8}}"#,
    ])
    .await;
    let out = w
        .kubectl_ok(&["get", "gadget", "g1", "-o", "jsonpath={.spec.size}"])
        .await;
    assert_eq!(out, "8");
    w.kubectl_ok(&["delete", "crd", "gadgets.example.com"])
        .await;
    eventually(
        Duration::from_secs(10),
        "gadgets gone from discovery",
        || async {
            let (ok, _, _) = w.kubectl(&["get", "gadgets"]).await;
            (!ok).then_some(())
        },
    )
    .await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_holds_service_in_terminating() {
    let w = World::start(1).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    w.kubectl_ok(&["delete", "svc", "my-app-service", "--wait=false"])
        .await;
    let ts = w
        .kubectl_ok(&[
            "get",
            "svc",
            "my-app-service",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert!(!ts.is_empty(), "deletionTimestamp set");
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    eventually(Duration::from_secs(5), "service gone", || async {
        let (ok, _, _) = w.kubectl(&["get", "svc", "my-app-service"]).await;
        (!ok).then_some(())
    })
    .await;
    w.shutdown().await;
}
