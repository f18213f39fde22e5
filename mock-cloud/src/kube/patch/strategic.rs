//! Strategic merge patch, `application/strategic-merge-patch+json`: what `kubectl apply`
//! (client side), `kubectl patch`, `label`, `annotate` and the Python client send.
//!
//! Semantics follow apimachinery's `strategicpatch` as seen by the server
//! (`StrategicMergeMapPatch`): maps merge key by key, `null` deletes, lists merge by the
//! field's `patchMergeKey` or are replaced, and the directives `$patch`, `$retainKeys`,
//! `$setElementOrder/<f>` and `$deleteFromPrimitiveList/<f>` are honoured. Field metadata
//! comes from [`super::schema`].

use serde_json::{Map, Value};

use super::PatchError;
use super::json::go_type_name;
use super::schema::{self, Field, ListKind, Ty};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    if patch.is_null() {
        // Go unmarshals `null` into an empty map: a no-op patch.
        return Ok(target.clone());
    }
    let Value::Object(patch) = patch else {
        // Upstream unmarshals the body into a map first and answers 400 with Go's message.
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_type_name(patch)
        )));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // A top-level `$patch: delete` empties the object; the server's validation then rejects it.
    let merged = merge_map(original, patch, schema::root(group, kind))?.unwrap_or_default();
    Ok(Value::Object(merged))
}

/// Merges `patch` into `original`. `None` means the map is to be deleted (`$patch: delete`).
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
) -> Result<Option<Map<String, Value>>, PatchError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                // The patch becomes the value; merging it into nothing strips its directives.
                let mut rest = patch.clone();
                rest.remove(PATCH);
                return merge_map(Map::new(), &rest, ty);
            }
            Some("delete") => return Ok(None),
            // Merging is what happens anyway; upstream only spells it out for lists.
            Some("merge") => {}
            _ => {
                return Err(PatchError::Failed(format!(
                    "unknown patch type: {directive} in map: {}",
                    Value::Object(patch.clone())
                )));
            }
        }
    }

    if let Some(keys) = patch.get(RETAIN_KEYS) {
        let keys = string_list(keys).ok_or_else(|| {
            PatchError::BadRequest("invalid patch format of retainKeys".to_string())
        })?;
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    // Deletions from primitive lists happen before additions, so a patch that both removes
    // and adds (as kubectl computes them) ends with the additions.
    for (key, values) in patch {
        let Some(field) = key.strip_prefix(DELETE_PRIMITIVE) else {
            continue;
        };
        let Value::Array(values) = values else {
            return Err(PatchError::BadRequest(
                "invalid patch format of primitive list".to_string(),
            ));
        };
        if let Some(Value::Array(items)) = original.get_mut(field) {
            items.retain(|item| !values.contains(item));
        }
    }

    for (key, patch_value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with(DELETE_PRIMITIVE) {
            continue;
        }
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            // With a list patch the order is applied while merging it (below); alone it only
            // reorders the live list.
            if !patch.contains_key(field) {
                let order = order_list(patch_value)?;
                if let Some(Value::Array(items)) = original.get(field) {
                    let meta = ty.field(field);
                    let reordered = merge_list(Some(items), &[], meta, Some(order))?;
                    set_or_remove(&mut original, field, reordered.map(Value::Array));
                }
            }
            continue;
        }
        if patch_value.is_null() {
            original.remove(key);
            continue;
        }
        let meta = ty.field(key);
        let merged = match patch_value {
            Value::Object(p) => {
                let base = match original.get(key) {
                    Some(Value::Object(o)) => o.clone(),
                    _ => Map::new(),
                };
                merge_map(base, p, meta.ty)?.map(Value::Object)
            }
            Value::Array(p) => {
                let order = match patch.get(&format!("{SET_ORDER}{key}")) {
                    Some(v) => Some(order_list(v)?),
                    None => None,
                };
                let base = match original.get(key) {
                    Some(Value::Array(o)) => Some(o),
                    _ => None,
                };
                merge_list(base, p, meta, order)?.map(Value::Array)
            }
            scalar => Some(scalar.clone()),
        };
        set_or_remove(&mut original, key, merged);
    }
    Ok(Some(original))
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v);
        }
        None => {
            map.remove(key);
        }
    }
}

/// Merges a list patch. `None` removes the field (a keyed list emptied under
/// `$setElementOrder`, as upstream does).
fn merge_list(
    original: Option<&Vec<Value>>,
    patch: &[Value],
    field: Field,
    order: Option<&[Value]>,
) -> Result<Option<Vec<Value>>, PatchError> {
    let all_maps = patch.iter().all(Value::is_object)
        && original.is_none_or(|o| o.iter().all(Value::is_object));
    match field.list {
        ListKind::Atomic => Ok(Some(patch.to_vec())),
        ListKind::Map { smp_key, .. } if all_maps => {
            merge_keyed(original, patch, smp_key, field.ty, order)
        }
        ListKind::Map { .. } | ListKind::Set => {
            let mut merged: Vec<Value> = original.cloned().unwrap_or_default();
            for item in patch {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            let merged = match order {
                Some(order) => normalize_order(
                    merged,
                    order,
                    original.map(Vec::as_slice).unwrap_or(&[]),
                    None,
                ),
                None => merged,
            };
            Ok(Some(merged))
        }
    }
}

fn merge_keyed(
    original: Option<&Vec<Value>>,
    patch: &[Value],
    key: &str,
    ty: Ty,
    order: Option<&[Value]>,
) -> Result<Option<Vec<Value>>, PatchError> {
    let mut merged: Vec<Value> = original.cloned().unwrap_or_default();
    let mut replace = false;
    let mut items = Vec::new();
    for item in patch {
        let Value::Object(map) = item else { continue };
        match map.get(PATCH).map(|d| d.as_str()) {
            None => items.push(map),
            Some(Some("delete")) => {
                let wanted = map.get(key).ok_or_else(|| missing_key(item, key))?;
                merged.retain(|m| m.get(key) != Some(wanted));
            }
            Some(Some("replace")) => replace = true,
            Some(Some("merge")) => {
                return Err(PatchError::Failed(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            Some(_) => {
                return Err(PatchError::Failed(format!(
                    "unknown patch type: {} in map: {item}",
                    map[PATCH]
                )));
            }
        }
    }
    if replace {
        // `{"$patch":"replace"}` as an element: the other elements are the whole list.
        merged.clear();
    }
    for item in items {
        let wanted = item
            .get(key)
            .ok_or_else(|| missing_key(&Value::Object(item.clone()), key))?;
        let position = merged.iter().position(|m| m.get(key) == Some(wanted));
        let base = match position.and_then(|i| merged.get(i)) {
            Some(Value::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        let result = merge_map(base, item, ty)?;
        match (position, result) {
            (Some(i), Some(m)) => merged[i] = Value::Object(m),
            (Some(i), None) => {
                merged.remove(i);
            }
            (None, Some(m)) => merged.push(Value::Object(m)),
            (None, None) => {}
        }
    }
    let Some(order) = order else {
        return Ok(Some(merged));
    };
    let server_order = original.map(Vec::as_slice).unwrap_or(&[]);
    let merged = normalize_order(merged, order, server_order, Some(key));
    Ok(if merged.is_empty() {
        None
    } else {
        Some(merged)
    })
}

fn missing_key(item: &Value, key: &str) -> PatchError {
    PatchError::Failed(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// Orders a merged list after `$setElementOrder`: items named in `order` follow it; the
/// others (present only on the server) keep their live order and are interleaved where they
/// were relative to the named items, like upstream's `normalizeElementOrder`.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    server: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let index_in = |list: &[Value], v: &Value| -> Option<usize> {
        let wanted = id(v);
        list.iter().position(|x| id(x) == wanted)
    };
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index_in(order, v).is_some());
    named.sort_by_key(|v| index_in(order, v));
    server_only.sort_by_key(|v| index_in(server, v).unwrap_or(usize::MAX));

    // Walk both, taking a server-only item first only when the live list had it before the
    // next named item; otherwise the named item wins.
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(n)) => {
                matches!((index_in(server, s), index_in(server, n)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_server {
            server_only.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out
}

fn order_list(v: &Value) -> Result<&[Value], PatchError> {
    match v {
        Value::Array(items) => Ok(items),
        _ => Err(PatchError::BadRequest(
            "invalid patch format of setElementOrder list".to_string(),
        )),
    }
}

fn string_list(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
