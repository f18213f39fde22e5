use super::*;

fn info(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        verbs: vec!["get".into(), "patch".into()],
        custom: false,
        printer_columns: vec![],
        schema: None,
    }
}

fn sample() -> Vec<ResourceInfo> {
    let mut svc = info("", "v1", "Service", "services", true);
    svc.status_subresource = true;
    let mut w = info("example.com", "v1", "Widget", "widgets", true);
    w.custom = true;
    w.schema = Some(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}),
    );
    vec![
        svc,
        info("", "v1", "Namespace", "namespaces", false),
        info("apps", "v1", "Deployment", "deployments", true),
        w,
    ]
}

/// What kubectl's field-validation check does: find a PATCH op with this GVK and a
/// `fieldValidation` query parameter.
fn supports_field_validation(doc: &Value, group: &str, version: &str, kind: &str) -> bool {
    let want = json!({"group": group, "version": version, "kind": kind});
    doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .any(|p| {
            let op = &p["patch"];
            op["x-kubernetes-group-version-kind"] == want
                && op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|q| q["name"] == "fieldValidation" && q["in"] == "query")
                })
        })
}

#[test]
fn root_lists_every_group_version_with_a_stable_hash() {
    let res = sample();
    let a = root(&res);
    let b = root(&res);
    assert_eq!(a, b);
    let keys: Vec<&String> = a["paths"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["api/v1", "apis/apps/v1", "apis/example.com/v1"]);
    let url = a["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_default();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
    assert_eq!(url.len(), "/openapi/v3/api/v1?hash=".len() + 32);

    // The hash follows the content.
    let mut changed = res.clone();
    changed[0].status_subresource = false;
    assert_ne!(root(&changed)["paths"]["api/v1"], a["paths"]["api/v1"]);
    assert_eq!(
        root(&changed)["paths"]["apis/apps/v1"],
        a["paths"]["apis/apps/v1"]
    );
}

#[test]
fn every_kind_passes_kubectls_field_validation_check() {
    let res = sample();
    let cases = [
        ("api/v1", "", "v1", "Service"),
        ("/api/v1", "", "v1", "Namespace"),
        ("apis/apps/v1", "apps", "v1", "Deployment"),
        (
            "/openapi/v3/apis/example.com/v1?hash=abc",
            "example.com",
            "v1",
            "Widget",
        ),
    ];
    for (path, g, v, k) in cases {
        let doc = group_version(&res, path).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.0.0", "{path}");
        assert!(supports_field_validation(&doc, g, v, k), "{path} {k}");
    }
    for path in [
        "api/v2",
        "apis/apps/v2",
        "apis/nope.io/v1",
        "apis/apps",
        "api",
        "",
    ] {
        assert!(group_version(&res, path).is_none(), "{path}");
    }
}

#[test]
fn paths_follow_scope_and_subresources() {
    let res = sample();
    let doc = group_version(&res, "api/v1").unwrap_or_default();
    let paths = &doc["paths"];
    assert!(
        paths
            .get("/api/v1/namespaces/{namespace}/services/{name}")
            .is_some()
    );
    assert!(
        paths
            .get("/api/v1/namespaces/{namespace}/services/{name}/status")
            .is_some()
    );
    assert!(paths.get("/api/v1/namespaces/{name}").is_some());
    assert!(paths.get("/api/v1/namespaces/{name}/status").is_none());
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]["operationId"],
        "patchCoreV1NamespacedService"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{name}"]["patch"]["operationId"],
        "patchCoreV1Namespace"
    );
}

#[test]
fn builtins_advertise_no_strategic_merge_schema() {
    let res = sample();
    let doc = group_version(&res, "api/v1").unwrap_or_default();
    assert_eq!(doc["components"]["schemas"], json!({}));
    for p in doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        assert!(p["patch"].get("requestBody").is_none());
    }
}

#[test]
fn crd_schema_becomes_a_component() {
    let res = sample();
    let doc = group_version(&res, "apis/example.com/v1").unwrap_or_default();
    let schema = &doc["components"]["schemas"]["com.example.v1.Widget"];
    assert_eq!(
        schema["x-kubernetes-group-version-kind"],
        json!([{"group":"example.com","version":"v1","kind":"Widget"}])
    );
    assert_eq!(
        schema["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert_eq!(schema["properties"]["kind"]["type"], "string");
    let meta_ref = schema["properties"]["metadata"]["allOf"][0]["$ref"]
        .as_str()
        .unwrap_or_default();
    let meta_name = meta_ref.trim_start_matches("#/components/schemas/");
    assert!(doc["components"]["schemas"].get(meta_name).is_some());
    let body = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
        ["requestBody"]["content"];
    assert!(body.get("application/merge-patch+json").is_some());
    assert!(body.get("application/strategic-merge-patch+json").is_none());
}
