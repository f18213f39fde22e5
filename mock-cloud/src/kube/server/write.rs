//! POST, PUT, PATCH and DELETE.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::path::Route;
use super::{App, Req, json_reply};
use crate::kube::errors::ApiError;
use crate::kube::patch::{self, PatchError};
use crate::kube::proto::{self, ProtoError, review};
use crate::kube::resources::ResourceInfo;
use crate::kube::selectors::{FieldSelector, LabelSelector};
use crate::kube::store::{DeleteOptions, WriteOptions, now_rfc3339};
use crate::kube::watch::as_served;

const PATCH_TYPES_CUSTOM: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
const PATCH_TYPES_BUILTIN: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// The media type without parameters, lower-cased.
fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_protobuf(ct: &str) -> bool {
    media_type(ct) == proto::CONTENT_TYPE
}

/// Decodes a JSON, YAML or Kubernetes protobuf object body the way upstream reports failures.
fn decode_body(info: &ResourceInfo, req: &Req) -> Result<Value, ApiError> {
    let ct = req.content_type();
    let cannot = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {e}",
            kind = info.kind,
            v = info.version
        ))
    };
    let v: Value = if is_protobuf(ct) {
        proto::decode(&req.body).map_err(|e| match e {
            ProtoError::UnsupportedKind { .. } => ApiError::unsupported_media_type(e.to_string()),
            ProtoError::Malformed(_) => cannot(&e),
        })?
    } else if media_type(ct) == "application/yaml" {
        serde_yaml_ng::from_slice(&req.body).map_err(|e| cannot(&e))?
    } else {
        serde_json::from_slice(&req.body).map_err(|e| cannot(&e))?
    };
    if !v.is_object() {
        return Err(cannot(&"the object provided is not a JSON object"));
    }
    check_type_meta(info, &v)?;
    Ok(v)
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`): not a
/// stored resource, so it is answered before the resource lookup; `None` for other routes.
pub(super) fn access_review(app: &App, route: &Route, req: &Req) -> Option<Response> {
    if route.group != review::GROUP
        || route.version.as_deref() != Some("v1")
        || route.plural.as_deref() != Some(review::PLURAL)
    {
        return None;
    }
    let run = || -> Result<Response, ApiError> {
        if req.method != http::Method::POST || route.name.is_some() || route.namespace.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let mut body = if is_protobuf(req.content_type()) {
            proto::decode(&req.body)
        } else {
            serde_json::from_slice::<Value>(&req.body)
                .map_err(|e| ProtoError::Malformed(e.to_string()))
        }
        .map_err(|e| {
            ApiError::bad_request(format!(
                "SelfSubjectAccessReview in version \"v1\" cannot be handled as a SelfSubjectAccessReview: {e}"
            ))
        })?;
        if body.get("kind").and_then(Value::as_str) != Some("SelfSubjectAccessReview") {
            return Err(ApiError::bad_request(
                "the kind in the data must be SelfSubjectAccessReview",
            ));
        }
        let status = review::evaluate(&app.store, app.auth.as_deref(), &req.headers, &body)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
            o.insert("metadata".into(), json!({"creationTimestamp": null}));
            o.insert("status".into(), status);
        }
        Ok(json_reply(StatusCode::CREATED, &body))
    };
    Some(run().unwrap_or_else(|e| super::error_reply(&e)))
}

/// A body for another API version or kind than the URL names is rejected like upstream.
fn check_type_meta(info: &ResourceInfo, v: &Value) -> Result<(), ApiError> {
    let want = info.api_version();
    if let Some(av) = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty() && *a != want)
    {
        // Any served version of the same group is fine (multi-version CRDs).
        let same_group = av
            .rsplit_once('/')
            .map_or(info.group.is_empty(), |(g, _)| g == info.group);
        if !same_group || !info.custom {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
    }
    if let Some(k) = v
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && *k != info.kind)
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            info.kind
        )));
    }
    Ok(())
}

fn write_options(
    req: &Req,
    status: bool,
    manager: Option<String>,
) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        dry_run: dry_run(req)?,
        status,
        field_manager: manager,
        keep_status: false,
    })
}

fn dry_run(req: &Req) -> Result<bool, ApiError> {
    match req.query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
        ))),
    }
}

fn check_field_validation(req: &Req) -> Result<(), ApiError> {
    match req.query.get("fieldValidation") {
        None | Some("" | "Strict" | "Warn" | "Ignore") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation parameter unsupported: {other}; supported values: Ignore, Warn, Strict"
        ))),
    }
}

fn served(info: &ResourceInfo, status: StatusCode, obj: &Value) -> Response {
    json_reply(status, as_served(obj, info).as_ref())
}

pub(super) fn create(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    req: &Req,
) -> Result<Response, ApiError> {
    check_field_validation(req)?;
    let mut obj = decode_body(info, req)?;
    if info.namespaced {
        let Some(ns) = route.namespace.as_deref() else {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        };
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("namespace");
    }
    let opts = write_options(req, false, Some(req.field_manager()))?;
    let created = app.store.create_with(
        &info.group,
        &info.plural,
        route.namespace.as_deref(),
        obj,
        &opts,
    )?;
    Ok(served(info, StatusCode::CREATED, &created))
}

pub(super) fn replace(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    name: &str,
    status: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    check_field_validation(req)?;
    let obj = decode_body(info, req)?;
    let opts = write_options(req, status, Some(req.field_manager()))?;
    let (out, _) = app.store.modify(
        &info.group,
        &info.plural,
        route.namespace.as_deref(),
        name,
        &opts,
        |cur| match cur {
            Some(_) => Ok(obj),
            None => Err(ApiError::not_found(&info.plural, &info.group, name)),
        },
    )?;
    Ok(served(info, StatusCode::OK, &out))
}

/// One PATCH body, decoded for its engine.
enum PatchKind {
    Merge(Value),
    Json(Value),
    Strategic(Value),
    Apply {
        body: Value,
        manager: String,
        force: bool,
    },
}

fn parse_patch(info: &ResourceInfo, req: &Req) -> Result<PatchKind, ApiError> {
    let mt = media_type(req.content_type());
    let json_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    };
    match mt.as_str() {
        "application/merge-patch+json" => Ok(PatchKind::Merge(json_body()?)),
        "application/json-patch+json" => Ok(PatchKind::Json(json_body()?)),
        "application/strategic-merge-patch+json" if info.custom => {
            Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: {PATCH_TYPES_CUSTOM}"
            )))
        }
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic(json_body()?)),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            let manager = req
                .query
                .get("fieldManager")
                .unwrap_or_default()
                .to_string();
            if manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
                .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }]})));
            }
            // YAML is a superset of JSON; kubectl and kube-rs send JSON bodies.
            let body: Value = serde_json::from_slice(&req.body)
                .or_else(|_| serde_yaml_ng::from_slice(&req.body))
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding YAML: the apply configuration is not an object",
                ));
            }
            check_type_meta(info, &body)?;
            Ok(PatchKind::Apply {
                body,
                manager,
                force: req.query.flag("force"),
            })
        }
        _ => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            if info.custom {
                PATCH_TYPES_CUSTOM
            } else {
                PATCH_TYPES_BUILTIN
            }
        ))),
    }
}

pub(super) fn patch(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    name: &str,
    status: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    check_field_validation(req)?;
    let kind = parse_patch(info, req)?;
    let manager = match &kind {
        PatchKind::Apply { .. } => None,
        _ => Some(req.field_manager()),
    };
    let opts = write_options(req, status, manager)?;
    let api_version = info.api_version();
    let sub = status.then_some("status");
    let perr = |e: PatchError| e.to_api_error(&info.kind, &info.group, name);
    let (out, created) = app.store.modify(
        &info.group,
        &info.plural,
        route.namespace.as_deref(),
        name,
        &opts,
        |cur| match (&kind, cur) {
            (
                PatchKind::Apply {
                    body,
                    manager,
                    force,
                },
                cur,
            ) => {
                if cur.is_none() && status {
                    return Err(ApiError::not_found(&info.plural, &info.group, name));
                }
                let mut body = body.clone();
                fill_identity(&mut body, info, route.namespace.as_deref(), name);
                apply(cur, &body, manager, *force, &api_version, sub).map_err(perr)
            }
            (_, None) => Err(ApiError::not_found(&info.plural, &info.group, name)),
            (PatchKind::Merge(p), Some(cur)) => patch::merge_patch(cur, p).map_err(perr),
            (PatchKind::Json(p), Some(cur)) => patch::json_patch(cur, p).map_err(perr),
            (PatchKind::Strategic(p), Some(cur)) => {
                patch::strategic_merge_patch(cur, p, &info.group, &info.kind).map_err(perr)
            }
        },
    )?;
    Ok(served(
        info,
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &out,
    ))
}

/// kube-rs' `patch_status` apply bodies carry no `metadata.name`: the URL names the object.
fn fill_identity(body: &mut Value, info: &ResourceInfo, ns: Option<&str>, name: &str) {
    let Some(o) = body.as_object_mut() else {
        return;
    };
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.entry("name").or_insert_with(|| json!(name));
        if let (true, Some(ns)) = (info.namespaced, ns) {
            m.entry("namespace").or_insert_with(|| json!(ns));
        }
    }
}

/// Server-side apply through the patch engine's field manager.
fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    sub: Option<&str>,
) -> Result<Value, PatchError> {
    patch::managed::apply(
        live,
        applied,
        manager,
        force,
        api_version,
        sub,
        &now_rfc3339(),
    )
}

fn delete_options(req: &Req) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        dry_run: dry_run(req)?,
        ..DeleteOptions::default()
    };
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    if is_protobuf(req.content_type()) {
        // kubectl sends DeleteOptions as JSON; a protobuf body only carries options we ignore.
        return Ok(opts);
    }
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
    if body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x == "All"))
    {
        opts.dry_run = true;
    }
    opts.precondition_uid = body
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    opts.precondition_rv = body
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(opts)
}

/// Services (and namespaces, CRDs) answer with the object, like upstream's
/// `ReturnDeletedObject`; everything else with a Success `Status`.
fn returns_object(info: &ResourceInfo) -> bool {
    info.group.is_empty() && matches!(info.plural.as_str(), "services" | "namespaces")
        || info.group == crate::kube::builtin::CRD_GROUP
}

pub(super) fn delete(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let opts = delete_options(req)?;
    let d = app.store.delete_with(
        &info.group,
        &info.plural,
        route.namespace.as_deref(),
        name,
        &opts,
    )?;
    if !d.gone || returns_object(info) {
        return Ok(served(info, StatusCode::OK, &d.object));
    }
    let uid = d
        .object
        .pointer("/metadata/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": info.group, "kind": info.plural, "uid": uid},
    });
    Ok(json_reply(StatusCode::OK, &body))
}

pub(super) fn delete_collection(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    req: &Req,
) -> Result<Response, ApiError> {
    let opts = delete_options(req)?;
    let labels = LabelSelector::parse(req.query.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(req.query.get("fieldSelector").unwrap_or_default())?;
    let (items, _) = app
        .store
        .list(&info.group, &info.plural, route.namespace.as_deref());
    let mut deleted = Vec::new();
    for obj in items
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match app
            .store
            .delete_with(&info.group, &info.plural, ns, name, &opts)
        {
            Ok(d) => deleted.push(d.object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": app.store.resource_version().to_string()},
        "items": deleted.iter().map(|o| as_served(o, info).into_owned()).collect::<Vec<_>>(),
    });
    Ok(json_reply(StatusCode::OK, &body))
}
