//! OpenAPI v3 documents (`/openapi/v3` and one per group version) and the v2 content type.
//!
//! What kubectl needs from them (see the wire notes, §2): for every kind, a PATCH operation
//! carrying `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter, so it
//! trusts the server with `fieldValidation=Strict` instead of validating client-side (which
//! would need a real v2 document). Built-in kinds deliberately get **no** `requestBody` and no
//! component schema: kubectl would then compute strategic-merge patches from our schema, and a
//! hand-written schema that is subtly wrong gives wrong patches, while without it kubectl uses
//! the patch metadata compiled into it. CRDs get their `openAPIV3Schema` as a component
//! (useful for `kubectl explain`) and the three patch content types they really accept.

use serde_json::{Map, Value, json};

use super::discovery::{groups, versions_of};
use super::resources::ResourceInfo;

/// Content type of `/openapi/v2` replies. kubectl asks for the `@` form but cannot parse it back
/// (`mime: unexpected content after media subtype`); this spelling parses, and an empty body is
/// a valid empty protobuf `Document`, which makes kubectl skip client-side validation.
pub const V2_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `info.version` of every document, matching the server version we report.
const SPEC_VERSION: &str = "v1.32.4";

const OBJECT_META_REF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The `/openapi/v3` discovery root: one entry per served group version, each pointing at its
/// document with a content hash, so clients may cache the document for as long as it is the same.
pub fn root(resources: &[ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for (path, doc) in all_docs(resources) {
        let hash = content_hash(&doc);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The document of one group version. `path` is `api/v1` or `apis/{group}/{version}` (a leading
/// `/` or `/openapi/v3/` and a query string are tolerated). `None` when nothing is served there.
pub fn group_version(resources: &[ResourceInfo], path: &str) -> Option<Value> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    let path = path
        .strip_prefix("openapi/v3/")
        .unwrap_or(path)
        .trim_end_matches('/');
    let (group, version) = parse_gv_path(path)?;
    let served: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    Some(build_doc(&served))
}

/// Every served group version as `(root path, document)`, core first, then groups in discovery
/// order with their versions in preference order.
fn all_docs(resources: &[ResourceInfo]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for group in groups(resources) {
        for version in versions_of(resources, &group) {
            let path = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let served: Vec<&ResourceInfo> = resources
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .collect();
            out.push((path, build_doc(&served)));
        }
    }
    out
}

fn parse_gv_path(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["api", v] if !v.is_empty() => Some((String::new(), (*v).to_string())),
        ["apis", g, v] if !g.is_empty() && !v.is_empty() => {
            Some(((*g).to_string(), (*v).to_string()))
        }
        _ => None,
    }
}

/// Stable, uppercase hex content hash of a document (upstream uses SHA-512; any stable digest of
/// the bytes serves the purpose: the URL changes exactly when the document does).
fn content_hash(doc: &Value) -> String {
    let bytes = doc.to_string();
    let a = fnv1a64(bytes.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a64(bytes.as_bytes(), 0x6c62_272e_07bb_0142);
    format!("{a:016X}{b:016X}")
}

fn fnv1a64(data: &[u8], seed: u64) -> u64 {
    let mut h = seed;
    for &byte in data {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn build_doc(served: &[&ResourceInfo]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in served {
        add_paths(&mut paths, r);
        if let Some(schema) = crd_component(r) {
            schemas.insert(component_name(r), schema);
            if !schemas.contains_key(OBJECT_META_REF) {
                schemas.insert(OBJECT_META_REF.to_string(), object_meta_schema());
            }
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SPEC_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn api_prefix(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    }
}

/// `CoreV1`, `AppsV1`, `NetworkingV1`, `ExampleComV1`: the middle of upstream operation ids.
fn op_group_version(r: &ResourceInfo) -> String {
    let group = if r.group.is_empty() {
        "core"
    } else {
        r.group.strip_suffix(".k8s.io").unwrap_or(&r.group)
    };
    let mut out = String::new();
    for seg in group.split(['.', '-']).filter(|s| !s.is_empty()) {
        let mut chars = seg.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    let mut version = r.version.chars();
    if let Some(first) = version.next() {
        out.extend(first.to_uppercase());
        out.push_str(version.as_str());
    }
    out
}

fn query_param(name: &str, type_: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        query_param(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict (the default)",
        ),
    ];
    if patch {
        params.push(query_param(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
        ));
    }
    params
}

fn operation(
    r: &ResourceInfo,
    verb: &str,
    action: &str,
    op_id: String,
    params: Vec<Value>,
) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!([op_group_version(r)]));
    op.insert("description".into(), json!(format!("{verb} {}", r.kind)));
    op.insert("operationId".into(), json!(op_id));
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if action == "patch" && r.custom {
        // CRs accept exactly these; listing no strategic-merge type keeps kubectl on merge patch.
        let body = json!({"schema": {"type": "object"}});
        op.insert(
            "requestBody".into(),
            json!({"content": {
                "application/apply-patch+yaml": body,
                "application/json-patch+json": body,
                "application/merge-patch+json": body,
            }, "required": true}),
        );
    }
    op.insert(
        "responses".into(),
        json!({"200": {"description": "OK"}, "401": {"description": "Unauthorized"}}),
    );
    op.insert("x-kubernetes-action".into(), json!(action));
    op.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({"group": r.group, "version": r.version, "kind": r.kind}),
    );
    Value::Object(op)
}

fn add_paths(paths: &mut Map<String, Value>, r: &ResourceInfo) {
    let prefix = api_prefix(r);
    let gv = op_group_version(r);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let kind = &r.kind;

    let mut path_params = vec![
        json!({"name": "name", "in": "path", "description": format!("name of the {kind}"), "required": true, "schema": {"type": "string", "uniqueItems": true}}),
    ];
    let mut coll_params = Vec::new();
    if r.namespaced {
        let ns = json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}});
        path_params.push(ns.clone());
        coll_params.push(ns);
    }

    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        operation(
            r,
            "list or watch objects of kind",
            "list",
            format!("list{gv}{scope}{kind}"),
            vec![],
        ),
    );
    coll.insert(
        "post".into(),
        operation(
            r,
            "create a",
            "post",
            format!("create{gv}{scope}{kind}"),
            write_params(false),
        ),
    );
    coll.insert("parameters".into(), Value::Array(coll_params));
    paths.insert(collection, Value::Object(coll));

    let mut it = Map::new();
    it.insert(
        "get".into(),
        operation(
            r,
            "read the specified",
            "get",
            format!("read{gv}{scope}{kind}"),
            vec![],
        ),
    );
    it.insert(
        "put".into(),
        operation(
            r,
            "replace the specified",
            "put",
            format!("replace{gv}{scope}{kind}"),
            write_params(false),
        ),
    );
    it.insert(
        "delete".into(),
        operation(
            r,
            "delete a",
            "delete",
            format!("delete{gv}{scope}{kind}"),
            vec![],
        ),
    );
    it.insert(
        "patch".into(),
        operation(
            r,
            "partially update the specified",
            "patch",
            format!("patch{gv}{scope}{kind}"),
            write_params(true),
        ),
    );
    it.insert("parameters".into(), Value::Array(path_params.clone()));
    paths.insert(item.clone(), Value::Object(it));

    if r.status_subresource {
        let mut st = Map::new();
        st.insert(
            "get".into(),
            operation(
                r,
                "read status of the specified",
                "get",
                format!("read{gv}{scope}{kind}Status"),
                vec![],
            ),
        );
        st.insert(
            "put".into(),
            operation(
                r,
                "replace status of the specified",
                "put",
                format!("replace{gv}{scope}{kind}Status"),
                write_params(false),
            ),
        );
        st.insert(
            "patch".into(),
            operation(
                r,
                "partially update status of the specified",
                "patch",
                format!("patch{gv}{scope}{kind}Status"),
                write_params(true),
            ),
        );
        st.insert("parameters".into(), Value::Array(path_params));
        paths.insert(format!("{item}/status"), Value::Object(st));
    }
}

/// `com.example.v1.Widget` for group `example.com`: upstream names CRD components by the
/// reversed group domain.
fn component_name(r: &ResourceInfo) -> String {
    let mut segs: Vec<&str> = r.group.split('.').collect();
    segs.reverse();
    format!("{}.{}.{}", segs.join("."), r.version, r.kind)
}

fn crd_component(r: &ResourceInfo) -> Option<Value> {
    if !r.custom {
        return None;
    }
    let mut schema = match &r.schema {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            let mut m = Map::new();
            m.insert("type".into(), json!("object"));
            m.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            m
        }
    };
    schema.entry("type").or_insert_with(|| json!("object"));
    let props = schema.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(props) = props {
        props.insert(
            "apiVersion".into(),
            json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}),
        );
        props.insert(
            "kind".into(),
            json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}),
        );
        props.insert(
            "metadata".into(),
            json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META_REF}")}]}),
        );
    }
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
    );
    Some(Value::Object(schema))
}

/// Enough of ObjectMeta for `kubectl explain <cr>.metadata` and for the `$ref` to resolve.
fn object_meta_schema() -> Value {
    let string_map =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "annotations": string_map,
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set"},
            "generateName": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "labels": string_map,
            "managedFields": {"type": "array", "items": {"type": "object"}},
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "ownerReferences": {"type": "array", "items": {"type": "object"}},
            "resourceVersion": {"type": "string"},
            "uid": {"type": "string"},
        },
    })
}

#[cfg(test)]
mod tests;
