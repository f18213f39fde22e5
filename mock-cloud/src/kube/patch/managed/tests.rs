use super::super::json_patch;
use super::*;

const T1: &str = "2025-01-01T00:00:00Z";
const T2: &str = "2025-01-01T00:01:00Z";
const T3: &str = "2025-01-01T00:02:00Z";
const PORT80: &str = r#"k:{"port":80,"protocol":"TCP"}"#;

fn ok(r: Result<Value, PatchError>) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn entries(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
}

fn fields(obj: &Value, manager: &str, op: &str) -> Value {
    entry(obj, manager, op)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

fn manifest(label: Option<&str>, target_port: i64, selector: &str) -> Value {
    let mut m = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": selector}, "ports": [{"port": 80, "targetPort": target_port}]}
    });
    if let Some(l) = label {
        m["metadata"]["labels"] = json!({"team": l});
    }
    m
}

/// What the server adds around an apply: identity, RV, defaults and allocations.
fn stored(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("7");
    obj["spec"]["clusterIP"] = json!("10.96.0.20");
    obj["spec"]["type"] = json!("ClusterIP");
    if let Some(p) = obj.pointer_mut("/spec/ports/0") {
        p["protocol"] = json!("TCP");
    }
    obj
}

#[test]
fn apply_create_records_applied_fields() {
    let obj = ok(apply(
        None,
        &manifest(Some("a"), 8080, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T1,
    ));
    assert_eq!(obj["apiVersion"], "v1");
    assert_eq!(obj["kind"], "Service");
    assert_eq!(obj["metadata"]["name"], "web");
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}])
    );
    assert_eq!(
        entries(&obj),
        vec![json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:team": {}}},
                "f:spec": {"f:ports": {PORT80: {".": {}, "f:port": {}, "f:targetPort": {}}}, "f:selector": {}}
            }
        })]
    );
}

#[test]
fn apply_update_remove_and_noop() {
    let live = stored(ok(apply(
        None,
        &manifest(Some("a"), 8080, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T1,
    )));

    // Change a value: kept allocations, bumped time.
    let v2 = ok(apply(
        Some(&live),
        &manifest(Some("a"), 9090, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T2,
    ));
    assert_eq!(
        v2["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(v2["spec"]["clusterIP"], "10.96.0.20");
    assert_eq!(v2["metadata"]["uid"], "u-1");
    assert_eq!(
        entry(&v2, "kubectl", "Apply").map(|e| e["time"].clone()),
        Some(json!(T2))
    );

    // Same intent again: nothing changes, not even the time.
    let v3 = ok(apply(
        Some(&v2),
        &manifest(Some("a"), 9090, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T3,
    ));
    assert_eq!(v3, v2);
    assert_eq!(
        serde_json::to_string(&entries(&v3)).ok(),
        serde_json::to_string(&entries(&v2)).ok()
    );

    // Dropping the label from the manifest removes it (and the emptied labels map).
    let v4 = ok(apply(
        Some(&v2),
        &manifest(None, 9090, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T3,
    ));
    assert!(v4["metadata"].get("labels").is_none(), "{v4}");
    assert_eq!(fields(&v4, "kubectl", "Apply").pointer("/f:metadata"), None);
    // Fields nobody applied (server defaults and allocations) survive.
    assert_eq!(v4["spec"]["type"], "ClusterIP");
    assert_eq!(v4["spec"]["clusterIP"], "10.96.0.20");
}

#[test]
fn apply_removes_dropped_list_items_unless_co_owned() {
    let mut two = manifest(None, 8080, "web");
    two["spec"]["ports"] =
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]);
    let live = ok(apply(None, &two, "kubectl", false, "v1", None, T1));
    let one = ok(apply(
        Some(&live),
        &manifest(None, 8080, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T2,
    ));
    assert_eq!(
        one["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}])
    );

    // Another applier also applied port 443: it stays.
    let shared = json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 443, "targetPort": 8443}]}});
    let live = ok(apply(Some(&live), &shared, "other", false, "v1", None, T2));
    let after = ok(apply(
        Some(&live),
        &manifest(None, 8080, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T3,
    ));
    assert_eq!(
        after["spec"]["ports"].as_array().map(Vec::len),
        Some(2),
        "{after}"
    );
}

#[test]
fn conflicts_and_force() {
    // Created by client-side apply: an Update entry owns everything, selector included.
    let mut created = stored(manifest(Some("a"), 8080, "web"));
    record_update(
        None,
        &mut created,
        "kubectl-client-side-apply",
        "v1",
        None,
        T1,
    );

    // Applying the same values is no conflict: ownership is shared.
    let same = ok(apply(
        Some(&created),
        &manifest(Some("a"), 8080, "web"),
        "ssa",
        false,
        "v1",
        None,
        T2,
    ));
    assert!(
        fields(&same, "kubectl-client-side-apply", "Update")
            .pointer("/f:spec/f:selector")
            .is_some()
    );
    assert!(
        fields(&same, "ssa", "Apply")
            .pointer("/f:spec/f:selector")
            .is_some()
    );

    let changed = manifest(Some("a"), 8080, "api");
    let err = apply(Some(&created), &changed, "ssa", false, "v1", None, T2);
    let want = PatchError::Conflicts(vec![Conflict {
        manager: "\"kubectl-client-side-apply\" using v1".into(),
        field: ".spec.selector".into(),
    }]);
    assert_eq!(err, Err(want));
    let status = PatchError::Conflicts(vec![]).to_api_error("Service", "", "web");
    assert_eq!(status.code, 409);
    if let Err(e) = apply(Some(&created), &changed, "ssa", false, "v1", None, T2) {
        assert_eq!(
            e.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .spec.selector"
        );
    }

    // Two contested fields, from an applier (printed without "using").
    let other = ok(apply(
        Some(&created),
        &manifest(Some("a"), 8080, "web"),
        "ctrl",
        false,
        "v1",
        None,
        T2,
    ));
    let err = apply(
        Some(&other),
        &manifest(Some("b"), 9090, "web"),
        "ssa",
        false,
        "v1",
        None,
        T3,
    );
    let Err(PatchError::Conflicts(list)) = err else {
        panic!("expected conflicts, got {err:?}")
    };
    let ctrl: Vec<&str> = list
        .iter()
        .filter(|c| c.manager == "\"ctrl\"")
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(
        ctrl,
        vec![
            ".metadata.labels.team",
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#
        ]
    );

    // Force takes ownership.
    let forced = ok(apply(Some(&created), &changed, "ssa", true, "v1", None, T2));
    assert_eq!(forced["spec"]["selector"], json!({"app": "api"}));
    assert!(
        fields(&forced, "kubectl-client-side-apply", "Update")
            .pointer("/f:spec/f:selector")
            .is_none()
    );
    assert!(
        fields(&forced, "ssa", "Apply")
            .pointer("/f:spec/f:selector")
            .is_some()
    );
}

#[test]
fn record_update_create_sets_owned_fields() {
    let mut obj = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "1",
                     "creationTimestamp": T1, "labels": {"app": "web"}},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "sessionAffinity": "None",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
        "status": {"loadBalancer": {}}
    });
    record_update(None, &mut obj, "kubectl-create", "v1", None, T1);
    assert_eq!(
        entries(&obj),
        vec![json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:ports": {".": {}, PORT80: {".": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                    "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}
                }
            }
        })]
    );

    // A ConfigMap's data map and a custom resource's spec are plain maps.
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    record_update(None, &mut cm, "m", "v1", None, T1);
    assert_eq!(
        fields(&cm, "m", "Update"),
        json!({"f:data": {".": {}, "f:k": {}}})
    );
    let mut cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                        "spec": {"size": 1, "items": [1, 2]}});
    record_update(None, &mut cr, "m", "example.com/v1", None, T1);
    assert_eq!(
        fields(&cr, "m", "Update"),
        json!({"f:spec": {".": {}, "f:items": {}, "f:size": {}}})
    );
}

#[test]
fn record_update_moves_ownership_and_keeps_noops_identical() {
    let mut live = stored(manifest(Some("a"), 8080, "web"));
    record_update(None, &mut live, "creator", "v1", None, T1);
    let before = serde_json::to_string(&entries(&live)).unwrap_or_default();

    // No-op write (server copied the stored managedFields, or the body had none).
    for strip_incoming in [false, true] {
        let mut same = live.clone();
        if strip_incoming && let Some(m) = same["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        record_update(Some(&live), &mut same, "kubectl-edit", "v1", None, T2);
        assert_eq!(
            serde_json::to_string(&entries(&same)).unwrap_or_default(),
            before
        );
    }

    // A label change moves that field to the writer.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("b");
    labelled["metadata"]["labels"]["new"] = json!("x");
    record_update(Some(&live), &mut labelled, "kubectl-label", "v1", None, T2);
    assert_eq!(
        fields(&labelled, "kubectl-label", "Update"),
        json!({"f:metadata": {"f:labels": {"f:new": {}, "f:team": {}}}})
    );
    assert!(
        fields(&labelled, "creator", "Update")
            .pointer("/f:metadata/f:labels/f:team")
            .is_none()
    );
    assert_eq!(
        entry(&labelled, "creator", "Update").map(|e| e["time"].clone()),
        Some(json!(T1))
    );

    // `[{}]` clears managedFields; a status write cannot touch them.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(Some(&live), &mut reset, "x", "v1", None, T2);
    assert!(reset["metadata"].get("managedFields").is_none());
    let mut status = live.clone();
    status["metadata"]["managedFields"] = json!([]);
    status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}});
    record_update(Some(&live), &mut status, "ctrl", "v1", Some("status"), T2);
    let e = entry(&status, "ctrl", "Update")
        .cloned()
        .unwrap_or_default();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}})
    );
    assert!(entry(&status, "creator", "Update").is_some());
}

#[test]
fn client_side_to_server_side_upgrade() {
    // Created with client-side apply.
    let mut live = stored(manifest(Some("a"), 8080, "web"));
    record_update(None, &mut live, "kubectl-client-side-apply", "v1", None, T1);
    let mut rewritten = entry(&live, "kubectl-client-side-apply", "Update")
        .cloned()
        .unwrap_or_default();
    rewritten["manager"] = json!("kubectl");
    rewritten["operation"] = json!("Apply");

    // kubectl's json patch, then the server records the write as usual.
    let patch = json!([
        {"op": "replace", "path": "/metadata/managedFields", "value": [rewritten.clone()]},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "7"}
    ]);
    let mut upgraded = ok(json_patch(&live, &patch));
    record_update(Some(&live), &mut upgraded, "kubectl", "v1", None, T2);
    assert_eq!(entries(&upgraded), vec![rewritten]);

    // The next server-side apply owns what the client-side apply did: no conflict, and the
    // label left out of the manifest is removed.
    let next = ok(apply(
        Some(&upgraded),
        &manifest(None, 9090, "api"),
        "kubectl",
        false,
        "v1",
        None,
        T3,
    ));
    assert_eq!(next["spec"]["selector"], json!({"app": "api"}));
    assert!(next["metadata"].get("labels").is_none());
    assert_eq!(entries(&next).len(), 1);
}

#[test]
fn status_apply_like_kube_rs() {
    let live = stored(ok(apply(
        None,
        &manifest(None, 8080, "web"),
        "kubectl",
        false,
        "v1",
        None,
        T1,
    )));
    let body = json!({"apiVersion": "v1", "kind": "Service",
        "spec": {"selector": {"ignored": "x"}},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let got = ok(apply(
        Some(&live),
        &body,
        "my-ctrl",
        true,
        "v1",
        Some("status"),
        T2,
    ));
    assert_eq!(
        got["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.0.0.1"
    );
    assert_eq!(got["spec"], live["spec"]);
    let e = entry(&got, "my-ctrl", "Apply").cloned().unwrap_or_default();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}})
    );

    // A main-resource apply of a built-in kind ignores status.
    let status_only =
        json!({"apiVersion": "v1", "kind": "Service", "status": body["status"].clone()});
    let main = ok(apply(Some(&live), &status_only, "m", false, "v1", None, T2));
    assert_eq!(main["spec"], live["spec"]);
    assert!(main.pointer("/status/loadBalancer/ingress").is_none());
}

#[test]
fn deployment_and_custom_resource_keys() {
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                     "env": [{"name": "A", "value": "1"}]}]}}}});
    let got = ok(apply(None, &dep, "kubectl", false, "apps/v1", None, T1));
    assert_eq!(
        fields(&got, "kubectl", "Apply")["f:spec"],
        json!({"f:selector": {}, "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {
            r#"k:{"name":"c"}"#: {".": {}, "f:env": {r#"k:{"name":"A"}"#: {".": {}, "f:name": {}, "f:value": {}}},
                "f:image": {}, "f:name": {},
                "f:ports": {r#"k:{"containerPort":80,"protocol":"TCP"}"#: {".": {}, "f:containerPort": {}}}}}}}})
    );

    let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["f"]},
                    "spec": {"items": [{"a": 1}], "size": 2}, "status": {"ok": true}});
    let got = ok(apply(None, &cr, "m", false, "example.com/v1", None, T1));
    assert_eq!(
        fields(&got, "m", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"f\"": {}}}, "f:spec": {"f:items": {}, "f:size": {}}, "f:status": {"f:ok": {}}})
    );
    // Dropping a list item of an atomic list replaces the list.
    let mut less = cr.clone();
    less["spec"]["items"] = json!([]);
    let got = ok(apply(
        Some(&got),
        &less,
        "m",
        false,
        "example.com/v1",
        None,
        T2,
    ));
    assert_eq!(got["spec"]["items"], json!([]));
}

#[test]
fn apply_rejects_managed_fields_in_the_body() {
    let mut body = manifest(None, 80, "web");
    body["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    assert_eq!(
        apply(None, &body, "m", false, "v1", None, T1),
        Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
    assert!(matches!(
        apply(None, &json!([1]), "m", false, "v1", None, T1),
        Err(PatchError::BadRequest(_))
    ));
}
