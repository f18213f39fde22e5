//! GET: single objects, lists (selectors, pagination, Tables) and watches.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::path::Route;
use super::{App, Req, json_reply};
use crate::kube::errors::ApiError;
use crate::kube::resources::ResourceInfo;
use crate::kube::selectors::{FieldSelector, LabelSelector};
use crate::kube::store::ObjKey;
use crate::kube::table;
use crate::kube::watch::{self, Render, WatchParams, as_served};

/// One list item as upstream serializes it: built-in list items carry no type meta, custom
/// resources keep theirs (at the served version). Serialized in place, without copying.
struct Item<'a> {
    obj: &'a Value,
    info: &'a ResourceInfo,
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.obj.as_object() else {
            return self.obj.serialize(s);
        };
        let mut m = s.serialize_map(None)?;
        let api_version = self.info.api_version();
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" if !self.info.custom => {}
                "apiVersion" => m.serialize_entry(k, &api_version)?,
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<Item<'a>>,
}

/// The opaque `continue` token: the last key served plus the list RV, hex-encoded JSON.
pub fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_continue(token: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("x"), 16))
        .collect();
    let v: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

fn selectors(req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(req.query.get("labelSelector").unwrap_or_default())?,
        FieldSelector::parse(req.query.get("fieldSelector").unwrap_or_default())?,
    ))
}

fn include_full(req: &Req) -> bool {
    req.query.get("includeObject") == Some("Object")
}

pub(super) fn get(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    if route.watch || req.query.flag("watch") {
        let pin = FieldSelector::parse(&format!("metadata.name={name}"))?;
        return watch(app, info, route, req, Some(pin));
    }
    let obj = app
        .store
        .get(&info.group, &info.plural, route.namespace.as_deref(), name)?;
    let served = as_served(&obj, info);
    if req.wants_table() {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Ok(json_reply(
            StatusCode::OK,
            &table::to_table(info, &[served.as_ref()], rv, include_full(req), true),
        ));
    }
    Ok(json_reply(StatusCode::OK, served.as_ref()))
}

pub(super) fn list(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    req: &Req,
) -> Result<Response, ApiError> {
    if route.watch || req.query.flag("watch") {
        return watch(app, info, route, req, None);
    }
    let (labels, fields) = selectors(req)?;
    let limit = match req.query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
        None => None,
    };
    let after = match req.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(decode_continue(token)?),
        None => None,
    };
    let page = app.store.list_page(
        &info.group,
        &info.plural,
        route.namespace.as_deref(),
        after.as_ref().map(|(_, k)| k),
        limit,
        |o| labels.matches(o) && fields.matches(o),
    );
    // Later pages report the RV of the first page, as upstream's consistent lists do.
    let rv = after.as_ref().map_or(page.resource_version, |(rv, _)| *rv);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(next) = &page.next {
        metadata["continue"] = json!(encode_continue(rv, next));
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    if req.wants_table() {
        let served: Vec<std::borrow::Cow<'_, Value>> =
            page.items.iter().map(|o| as_served(o, info)).collect();
        let refs: Vec<&Value> = served.iter().map(|c| c.as_ref()).collect();
        let mut t = table::to_table(info, &refs, &rv.to_string(), include_full(req), true);
        t["metadata"] = metadata;
        return Ok(json_reply(StatusCode::OK, &t));
    }
    let body = ListBody {
        kind: format!("{}List", info.kind),
        api_version: info.api_version(),
        metadata,
        items: page.items.iter().map(|o| Item { obj: o, info }).collect(),
    };
    Ok(json_reply(StatusCode::OK, &body))
}

fn parse_rv(v: Option<&str>) -> Result<Option<u64>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let n = s
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?;
            Ok((n > 0).then_some(n))
        }
    }
}

fn watch(
    app: &App,
    info: &Arc<ResourceInfo>,
    route: &Route,
    req: &Req,
    pin: Option<FieldSelector>,
) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(req)?;
    if let Some(pin) = pin {
        fields = pin;
    }
    let since = parse_rv(req.query.get("resourceVersion"))?;
    let initial_param = req
        .query
        .get("sendInitialEvents")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let send_initial = initial_param.unwrap_or(since.is_none());
    let timeout = match req.query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t}")))?,
        ),
        None => app.config.default_watch_timeout,
    };
    let params = WatchParams {
        info: info.clone(),
        namespace: route.namespace.clone(),
        labels,
        fields,
        since,
        send_initial,
        initial_end_bookmark: initial_param == Some(true),
        bookmarks: req.query.flag("allowWatchBookmarks"),
        timeout,
        bookmark_interval: app.config.bookmark_interval,
        render: if req.wants_table() {
            Render::Table {
                full: include_full(req),
            }
        } else {
            Render::Json
        },
        shutdown: app.shutdown.clone(),
    };
    let rx = watch::start(&app.store, params);
    let stream = ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("default".to_string(), "svc-\"1\"".to_string());
        let t = encode_continue(42, &key);
        assert_eq!(decode_continue(&t).unwrap(), (42, key));
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue("abc").is_err());
    }
}
