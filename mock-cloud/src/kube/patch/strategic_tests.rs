use super::*;
use serde_json::json;

fn smp(target: &Value, patch: Value, group: &str, kind: &str) -> Value {
    match strategic_merge_patch(target, &patch, group, kind) {
        Ok(v) => v,
        Err(e) => panic!("{patch}: {e}"),
    }
}

fn lb_service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"old": "x"},
                     "finalizers": ["service.kubernetes.io/load-balancer-cleanup"]},
        "spec": {
            "type": "LoadBalancer", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "selector": {"app": "web"}, "sessionAffinity": "None",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}],
            "loadBalancerSourceRanges": ["10.0.0.0/8"]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]},
                   "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}
    })
}

#[test]
fn kubectl_apply_patch_keeps_allocated_fields() {
    let last = "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}\n";
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
        "spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 80, "targetPort": 9090}]}
    });
    let got = smp(&lb_service(), patch, "", "Service");
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 9090, "nodePort": 30080}])
    );
    assert_eq!(got["spec"]["clusterIP"], "10.96.0.20");
    assert_eq!(got["metadata"]["annotations"]["old"], "x");
    assert_eq!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        last
    );
    assert!(got["spec"].get("$setElementOrder/ports").is_none());
}

#[test]
fn service_table() {
    let cases = [
        // null deletes, nested too.
        (
            json!({"spec": {"sessionAffinity": null}, "metadata": {"annotations": {"old": null}}}),
            json!({"/spec/sessionAffinity": null, "/metadata/annotations": {}}),
        ),
        // A new port is appended; existing ones keep their allocated fields.
        (
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
            json!({"/spec/ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080},
                                {"port": 443, "targetPort": 8443}]}),
        ),
        // `$patch: delete` list item by merge key.
        (
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
            json!({"/spec/ports": []}),
        ),
        // `$patch: replace` as a list element replaces the list.
        (
            json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 81}]}}),
            json!({"/spec/ports": [{"port": 81}]}),
        ),
        // `$patch: replace` in a map.
        (
            json!({"spec": {"selector": {"$patch": "replace", "tier": "fe"}}}),
            json!({"/spec/selector": {"tier": "fe"}}),
        ),
        // `$patch: delete` in a map removes it.
        (
            json!({"spec": {"selector": {"$patch": "delete"}}}),
            json!({"/spec/selector": null}),
        ),
        // `$patch: merge` in a map is the default behaviour.
        (
            json!({"spec": {"selector": {"$patch": "merge", "tier": "fe"}}}),
            json!({"/spec/selector": {"app": "web", "tier": "fe"}}),
        ),
        // Atomic lists are replaced.
        (
            json!({"spec": {"loadBalancerSourceRanges": ["192.168.0.0/16"]}}),
            json!({"/spec/loadBalancerSourceRanges": ["192.168.0.0/16"]}),
        ),
        (
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}]}}}),
            json!({"/status/loadBalancer/ingress": [{"ip": "2.2.2.2"}]}),
        ),
        // Conditions merge by type.
        (
            json!({"status": {"conditions": [{"type": "B", "status": "True"}, {"type": "C", "status": "True"}]}}),
            json!({"/status/conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"},
                                       {"type": "C", "status": "True"}]}),
        ),
        // Finalizers are a merged primitive list; deletions apply before additions.
        (
            json!({"metadata": {"finalizers": ["x"]}}),
            json!({"/metadata/finalizers": ["service.kubernetes.io/load-balancer-cleanup", "x"]}),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["service.kubernetes.io/load-balancer-cleanup"],
                             "finalizers": ["y"]}}),
            json!({"/metadata/finalizers": ["y"]}),
        ),
        // Type change: the patch value wins.
        (
            json!({"spec": {"selector": "x"}}),
            json!({"/spec/selector": "x"}),
        ),
    ];
    for (patch, expectations) in cases {
        let got = smp(&lb_service(), patch.clone(), "", "Service");
        for (pointer, want) in expectations.as_object().into_iter().flatten() {
            let found = got.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(&found, want, "{patch} at {pointer}");
        }
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {
                "containers": [
                    {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "x", "image": "x:1"},
                    {"name": "b", "image": "b:1"}
                ],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}]
            }}
        }
    })
}

#[test]
fn deployment_table() {
    let c = "/spec/template/spec/containers";
    let cases = [
        // Env merges by name inside the container matched by name.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}]}]}}}}),
            json!({"/spec/template/spec/containers/0/env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
                "/spec/template/spec/containers/0/image": "a:1"}),
        ),
        // setElementOrder alone reorders.
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "x"}, {"name": "a"}]}}}}),
            json!({"/spec/template/spec/containers/0/name": "b", "/spec/template/spec/containers/2/name": "a"}),
        ),
        // Server-only items stay where they were relative to the named ones.
        (
            json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "a:2"}]}}}}),
            json!({c: [
             {"name": "x", "image": "x:1"},
             {"name": "b", "image": "b:1"},
             {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
              "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}),
        ),
        // Tolerations are atomic.
        (
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "z", "operator": "Exists"}]}}}}),
            json!({"/spec/template/spec/tolerations": [{"key": "z", "operator": "Exists"}]}),
        ),
        // retainKeys drops what the patch does not keep.
        (
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"/spec/strategy": {"type": "Recreate"}}),
        ),
        // A container port merges by containerPort.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}}}}),
            json!({"/spec/template/spec/containers/0/ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]}),
        ),
        // A map replaced inside a list item.
        (
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "hostPath": {"$patch": "replace", "path": "/x"}}]}}}}),
            json!({"/spec/template/spec/volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]}),
        ),
        // Like upstream, an element carrying `$patch: replace` is a marker, not an item: the
        // list becomes the remaining elements.
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "replace"}, {"name": "n", "image": "n:1"}]}}}}),
            json!({c: [{"name": "n", "image": "n:1"}]}),
        ),
        // Directives in a list the object does not have yet are stripped.
        (
            json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "s", "sub": {"k": null}}, {"$patch": "delete", "name": "gone"}]}}}}),
            json!({"/spec/template/spec/imagePullSecrets": [{"name": "s", "sub": {}}]}),
        ),
    ];
    for (patch, expectations) in cases {
        let got = smp(&deployment(), patch.clone(), "apps", "Deployment");
        for (pointer, want) in expectations.as_object().into_iter().flatten() {
            let found = got.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(&found, want, "{patch} at {pointer}");
        }
    }
}

#[test]
fn node_taints_atomic_addresses_keyed() {
    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}});
    let patch = json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
        "status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}});
    let got = smp(&node, patch, "", "Node");
    assert_eq!(
        got["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
    assert_eq!(got["status"]["addresses"].as_array().map(Vec::len), Some(3));
}

#[test]
fn unknown_kinds_replace_lists() {
    let cm = json!({"data": {"a": "1"}, "items": [1, 2]});
    let got = smp(
        &cm,
        json!({"data": {"b": "2"}, "items": [3]}),
        "",
        "ConfigMap",
    );
    assert_eq!(got, json!({"data": {"a": "1", "b": "2"}, "items": [3]}));
}

#[test]
fn errors() {
    let svc = lb_service();
    let cases = [
        (
            json!([1]),
            PatchError::BadRequest(
                "json: cannot unmarshal array into Go value of type map[string]interface {}".into(),
            ),
        ),
        (
            json!({"spec": {"ports": [{"targetPort": 1}]}}),
            PatchError::Failed(
                "map: {\"targetPort\":1} does not contain declared merge key: port".into(),
            ),
        ),
        (
            json!({"spec": {"ports": [{"$patch": "merge", "port": 80}]}}),
            PatchError::Failed("merging lists cannot yet be specified in the patch".into()),
        ),
        (
            json!({"spec": {"$retainKeys": "x"}}),
            PatchError::BadRequest("invalid patch format of retainKeys".into()),
        ),
        (
            json!({"spec": {"$setElementOrder/ports": 1, "ports": []}}),
            PatchError::BadRequest("invalid patch format of setElementOrder list".into()),
        ),
        (
            json!({"spec": {"$patch": "frob"}}),
            PatchError::Failed("unknown patch type: \"frob\" in map: {\"$patch\":\"frob\"}".into()),
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(
            strategic_merge_patch(&svc, &patch, "", "Service"),
            Err(want),
            "{patch}"
        );
    }
}

#[test]
fn kubectl_apply_adds_and_deletes_ports() {
    let mut svc = lb_service();
    svc["spec"]["ports"] = json!([
        {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080},
        {"name": "b", "port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 30443}
    ]);
    // kubectl's patch for a manifest that drops 80, keeps 443 and adds 8000 before it.
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 8000}, {"port": 443}],
        "ports": [{"name": "c", "port": 8000, "targetPort": 8000}, {"$patch": "delete", "port": 80}]
    }});
    let got = smp(&svc, patch, "", "Service");
    assert_eq!(
        got["spec"]["ports"],
        json!([
            {"name": "c", "port": 8000, "targetPort": 8000},
            {"name": "b", "port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 30443}
        ])
    );
    // A null patch is a no-op, like Go unmarshalling `null` into a map.
    assert_eq!(
        strategic_merge_patch(&svc, &Value::Null, "", "Service"),
        Ok(svc.clone())
    );
}
