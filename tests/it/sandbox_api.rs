//! The sandbox API server through kube-rs and raw HTTP: CRUD, conflicts, finalizers, watch,
//! CRDs and bad requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::json;

use crate::support::{World, eventually};

fn lb_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_conflict_and_finalizer() {
    let w = World::start(3).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &lb_service("web"))
        .await
        .unwrap();
    let spec = created.spec.clone().unwrap();
    assert!(
        spec.cluster_ip.as_deref().unwrap().starts_with("10.96."),
        "{spec:?}"
    );
    let np = spec.ports.as_ref().unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&np));
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());

    // Duplicate create: 409 AlreadyExists as a Status.
    match api.create(&PostParams::default(), &lb_service("web")).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "AlreadyExists");
        }
        other => panic!("expected 409, got {other:?}"),
    }

    // A stale resourceVersion on replace: 409 Conflict.
    let mut stale = created.clone();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await
    .unwrap();
    stale.metadata.labels = Some([("y".to_string(), "2".to_string())].into());
    match api.replace("web", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409 Conflict, got {other:?}"),
    }

    // A finalizer holds a deleted Service in Terminating until it is removed.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let held = api.get("web").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(5), "service gone", || async {
        api.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_status_patch() {
    let w = World::start(3).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    api.create(&PostParams::default(), &lb_service("watched"))
        .await
        .unwrap();
    let stream = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=watched"),
    );
    let mut stream = std::pin::pin!(stream);
    // Drain the initial list.
    let patcher = api.clone();
    let patch = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        patcher
            .patch_status("watched", &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    });
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let watcher::Event::Apply(svc) = ev {
                let ip = svc
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|l| l.ingress)
                    .and_then(|i| i.first().and_then(|x| x.ip.clone()));
                if ip.as_deref() == Some("203.0.113.9") {
                    return true;
                }
            }
        }
        false
    })
    .await
    .expect("watch did not deliver the status patch in time");
    assert!(found);
    patch.await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_then_custom_object() {
    let w = World::start(1).await;
    let crds: Api<CustomResourceDefinition> = Api::all(w.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(
        established,
        "CRD must be Established when the create returns"
    );

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), "default", &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets.create(&PostParams::default(), &obj).await.unwrap();
    let listed = widgets.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"]["size"], 3);
    // Status subresource: spec writes do not change status and vice versa.
    widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 9}})),
        )
        .await
        .unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["status"]["ready"], true);
    assert_eq!(got.data["spec"]["size"], 3);
    // Deleting the CRD removes its objects and its API.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "widgets API gone", || async {
        widgets
            .list(&ListParams::default())
            .await
            .is_err()
            .then_some(())
    })
    .await;
    w.shutdown().await;
}

/// Raw HTTP for the requests real clients would never build.
async fn raw(
    url: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let req = client
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .header("content-type", content_type)
        .body(body.to_string());
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("non-JSON reply to {method} {path}: {text}"));
    (code, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_status_objects_and_do_not_hurt_others() {
    let w = World::start(1).await;
    let url = w.cloud.kube_url();
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{not json",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            r#"{"apiVersion":"v2","kind":"Service","metadata":{"name":"x"}}"#,
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/gizmos",
            "application/json",
            "",
            404,
        ),
        (
            "GET",
            "/apis/nope.example.com/v1/things",
            "application/json",
            "",
            404,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"badport"},"spec":{"ports":[{"port":70000}]}}"#,
            422,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services/nope",
            "application/json",
            "",
            404,
        ),
        (
            "POST",
            "/api/v1/namespaces/nowhere/configmaps",
            "application/json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            404,
        ),
    ];
    for (method, path, ct, body, want) in cases {
        let (code, status) = raw(&url, method, path, ct, body).await;
        assert_eq!(code, *want, "{method} {path}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {path}: {status}");
        assert_eq!(status["code"], *want, "{method} {path}: {status}");
    }
    let (_, s) = raw(&url, "POST", "/api/v1/namespaces/default/services", "application/json",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"badport"},"spec":{"ports":[{"port":70000,"targetPort":8080}]}}"#).await;
    assert_eq!(
        s["message"],
        "Service \"badport\" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
    );
    // The server is still fine for everyone else.
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ok"}, "data": {"a": "b"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_gets_pods_and_service_gets_endpoints() {
    let w = World::start(3).await;
    let (ok, out, err) = w
        .kubectl_stdin(&["apply", "-f", "-"], &crate::support::example_app())
        .await;
    assert!(ok, "{out}{err}");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(w.client.clone(), "default");
    let ready = eventually(Duration::from_secs(10), "2 pods", || async {
        let l = pods
            .list(&ListParams::default().labels("app=my-app"))
            .await
            .unwrap();
        (l.items.len() == 2).then_some(l.items)
    })
    .await;
    let nodes: std::collections::BTreeSet<_> = ready
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    assert_eq!(nodes.len(), 2, "pods spread over nodes");
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(w.client.clone(), "default");
    eventually(
        Duration::from_secs(10),
        "endpoint slice with 2 endpoints",
        || async {
            let l = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=my-app-service"))
                .await
                .unwrap();
            l.items
                .first()
                .filter(|s| s.endpoints.len() == 2)
                .map(|_| ())
        },
    )
    .await;
    let watch_pods = pods
        .watch(&kube::api::WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let events: Vec<_> = watch_pods.take(3).collect().await;
    assert!(!events.is_empty());
    w.shutdown().await;
}
