use serde_json::json;

use super::*;

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}})
}

fn svc(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
           "spec": {"ports": [{"port": 80}]}})
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn starts_with_namespaces() {
    let store = Store::default();
    let (nss, list_rv) = store.list("", "namespaces", None);
    let names: Vec<&str> = nss
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert_eq!(list_rv, 4);
    assert_eq!(nss[0]["status"]["phase"], "Active");
}

#[test]
fn create_sets_metadata_and_rv() {
    let store = Store::default();
    let a = store.create("", "configmaps", cm("a")).unwrap();
    let b = store.create("", "configmaps", cm("b")).unwrap();
    assert!(rv(&b) > rv(&a));
    assert_eq!(a["metadata"]["uid"].as_str().unwrap().len(), 36);
    let ts = a["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    assert!(a["metadata"].get("generation").is_none());
    let s = store.create("", "services", svc("web")).unwrap();
    assert!(s["metadata"].get("generation").is_none());
    let d = store
        .create(
            "apps",
            "deployments",
            json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {}}),
        )
        .unwrap();
    assert_eq!(d["metadata"]["generation"], 1);
    let err = store.create("", "configmaps", cm("a")).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "configmaps \"a\" already exists");
}

#[test]
fn generate_name_and_missing_namespace() {
    let store = Store::default();
    let o = store
        .create(
            "",
            "configmaps",
            json!({"metadata": {"generateName": "x-", "namespace": "default"}}),
        )
        .unwrap();
    let name = o["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("x-") && name.len() == 7, "{name}");
    let err = store
        .create(
            "",
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "nope"}}),
        )
        .unwrap_err();
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nope\" not found");
    let err = store
        .create("", "configmaps", json!({"metadata": {"name": "Bad_Name"}}))
        .unwrap_err();
    assert_eq!(err.code, 422);
}

#[test]
fn update_conflicts_and_noops() {
    let store = Store::default();
    let a = store.create("", "services", svc("web")).unwrap();
    let mut stale = (*a).clone();
    stale["spec"]["ports"][0]["port"] = json!(81);
    let b = store.update("", "services", stale.clone()).unwrap();
    let err = store.update("", "services", stale).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    // No-op: same content, no RV bump.
    let c = store.update("", "services", (*b).clone()).unwrap();
    assert_eq!(rv(&c), rv(&b));
    assert_eq!(store.resource_version(), rv(&b));
    // Label change: RV bump, no generation bump.
    let mut l = (*c).clone();
    l["metadata"]["labels"]["x"] = json!("y");
    let d = store.update("", "services", l).unwrap();
    assert!(rv(&d) > rv(&c));
}

#[test]
fn status_subresource_separation() {
    let store = Store::default();
    let a = store.create("", "services", svc("web")).unwrap();
    let mut with_status = (*a).clone();
    with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}});
    with_status["spec"]["ports"][0]["port"] = json!(99);
    let s = store
        .update_status("", "services", with_status.clone())
        .unwrap();
    assert_eq!(s["status"]["loadBalancer"]["ingress"][0]["ip"], "1.2.3.4");
    assert_eq!(
        s["spec"]["ports"][0]["port"], 80,
        "spec unchanged by /status"
    );
    // Main resource ignores status.
    let mut main = (*s).clone();
    main["status"] = json!({});
    let m = store.update("", "services", main).unwrap();
    assert_eq!(m["status"]["loadBalancer"]["ingress"][0]["ip"], "1.2.3.4");
    assert_eq!(rv(&m), rv(&s), "ignored status change is a no-op");
}

#[test]
fn finalizers_hold_deletion() {
    let store = Store::default();
    let mut o = svc("web");
    o["metadata"]["finalizers"] = json!(["example.com/x"]);
    store.create("", "services", o).unwrap();
    let mut rx = store.subscribe();
    let d = store
        .delete_with(
            "",
            "services",
            Some("default"),
            "web",
            &DeleteOptions::default(),
        )
        .unwrap();
    assert!(!d.gone);
    assert!(d.object["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(d.object["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(rx.try_recv().unwrap().event, EventType::Modified);
    // Deleting again changes nothing.
    let again = store
        .delete_with(
            "",
            "services",
            Some("default"),
            "web",
            &DeleteOptions::default(),
        )
        .unwrap();
    assert_eq!(rv(&again.object), rv(&d.object));
    let mut cur = (*store.get("", "services", Some("default"), "web").unwrap()).clone();
    cur["metadata"]["finalizers"] = json!([]);
    let last = store.update("", "services", cur).unwrap();
    assert!(rv(&last) > rv(&d.object));
    let ev = rx.try_recv().unwrap();
    assert_eq!(ev.event, EventType::Deleted);
    assert_eq!(rv(&ev.object), ev.resource_version);
    assert_eq!(
        store
            .get("", "services", Some("default"), "web")
            .unwrap_err()
            .code,
        404
    );
}

#[test]
fn dry_run_changes_nothing() {
    let store = Store::default();
    let before = store.resource_version();
    let opts = WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    };
    let o = store
        .create_with("", "configmaps", None, cm("a"), &opts)
        .unwrap();
    assert_eq!(o["metadata"]["name"], "a");
    assert_eq!(store.resource_version(), before);
    assert!(store.get("", "configmaps", Some("default"), "a").is_err());
}

#[test]
fn namespace_deletion_cascades() {
    let store = Store::default();
    store
        .create("", "namespaces", json!({"metadata": {"name": "team"}}))
        .unwrap();
    store
        .create(
            "",
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "team"}}),
        )
        .unwrap();
    let mut held = json!({"metadata": {"name": "h", "namespace": "team", "finalizers": ["x/y"]}});
    held["data"] = json!({});
    store.create("", "configmaps", held).unwrap();
    let d = store
        .delete_with("", "namespaces", None, "team", &DeleteOptions::default())
        .unwrap();
    assert!(!d.gone);
    assert_eq!(d.object["status"]["phase"], "Terminating");
    assert!(store.get("", "configmaps", Some("team"), "a").is_err());
    let err = store
        .create(
            "",
            "configmaps",
            json!({"metadata": {"name": "n", "namespace": "team"}}),
        )
        .unwrap_err();
    assert_eq!(err.code, 403);
    let mut h = (*store.get("", "configmaps", Some("team"), "h").unwrap()).clone();
    h["metadata"]["finalizers"] = json!(null);
    store.update("", "configmaps", h).unwrap();
    assert!(
        store.get("", "namespaces", None, "team").is_err(),
        "namespace gone once empty"
    );
}

#[test]
fn pagination_and_selectors() {
    let store = Store::default();
    for i in 0..5 {
        store.create("", "services", svc(&format!("s{i}"))).unwrap();
    }
    let p1 = store.list_page("", "services", Some("default"), None, Some(2), |_| true);
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.remaining, 3);
    let p2 = store.list_page(
        "",
        "services",
        Some("default"),
        p1.next.as_ref(),
        Some(2),
        |_| true,
    );
    assert_eq!(p2.items[0]["metadata"]["name"], "s2");
    let p3 = store.list_page(
        "",
        "services",
        Some("default"),
        p2.next.as_ref(),
        Some(2),
        |_| true,
    );
    assert_eq!(p3.items.len(), 1);
    assert!(p3.next.is_none());
    let sel = crate::kube::selectors::LabelSelector::parse("app in (s1,s3)").unwrap();
    let page = store.list_page("", "services", None, None, None, |o| sel.matches(o));
    assert_eq!(page.items.len(), 2);
    assert!(store.list("", "services", Some("kube-system")).0.is_empty());
}

#[test]
fn history_replay_and_gone() {
    let store = Store::new(StoreConfig {
        history_limit: 10,
        broadcast_capacity: 64,
    });
    let first = store.create("", "configmaps", cm("c0")).unwrap();
    for i in 1..20 {
        store
            .create("", "configmaps", cm(&format!("c{i}")))
            .unwrap();
    }
    let err = store
        .watch_from("", "configmaps", None, Some(rv(&first)), false)
        .err()
        .unwrap();
    assert_eq!(err.code, 410);
    assert!(
        err.message.starts_with("too old resource version"),
        "{}",
        err.message
    );
    let recent = store.resource_version() - 3;
    let w = store
        .watch_from("", "configmaps", Some("default"), Some(recent), false)
        .unwrap();
    assert_eq!(w.replay.len(), 3);
    let w = store
        .watch_from("", "configmaps", None, None, true)
        .unwrap();
    assert_eq!(w.initial.len(), 20);
}

#[test]
fn crd_registers_and_unregisters() {
    let store = Store::default();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    });
    let c = store
        .create(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            crd.clone(),
        )
        .unwrap();
    assert_eq!(c["status"]["conditions"][1]["status"], "True");
    assert!(
        store
            .resource("example.com", "widgets")
            .is_some_and(|r| r.custom)
    );
    store
        .create(
            "example.com",
            "widgets",
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "default"}, "spec": {"size": 1}}),
        )
        .unwrap();
    // Re-applying the same CRD is a no-op.
    let mut again = (*c).clone();
    again["metadata"]["resourceVersion"] = json!(null);
    let c2 = store
        .update("apiextensions.k8s.io", "customresourcedefinitions", again)
        .unwrap();
    assert_eq!(rv(&c2), rv(&c));
    store
        .delete(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            "widgets.example.com",
        )
        .unwrap();
    assert!(store.resource("example.com", "widgets").is_none());
    assert!(store.list("example.com", "widgets", None).0.is_empty());
}

#[test]
fn generation_follows_spec_only() {
    let store = Store::default();
    let d = store
        .create(
            "apps",
            "deployments",
            json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}}),
        )
        .unwrap();
    let mut x = (*d).clone();
    x["metadata"]["labels"] = json!({"a": "b"});
    let x = store.update("apps", "deployments", x).unwrap();
    assert_eq!(x["metadata"]["generation"], 1);
    let mut y = (*x).clone();
    y["status"] = json!({"replicas": 1});
    let y = store.update_status("apps", "deployments", y).unwrap();
    assert_eq!(y["metadata"]["generation"], 1);
    let mut z = (*y).clone();
    z["spec"]["replicas"] = json!(3);
    let z = store.update("apps", "deployments", z).unwrap();
    assert_eq!(z["metadata"]["generation"], 2);
}
