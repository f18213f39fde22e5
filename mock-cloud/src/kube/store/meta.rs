//! Object metadata helpers: timestamps, generated names, comparisons that decide whether a
//! write is a no-op or a spec change, and the stand-ins for hooks other modules provide.

use rand::Rng;
use serde_json::{Map, Value};

use crate::kube::errors::ApiError;
use crate::kube::resources::ResourceInfo;

/// RFC 3339 in UTC without fractional seconds, as metav1.Time renders.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The 5-character suffix of `generateName` (upstream's alphabet avoids vowels and look-alikes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

pub fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// `metadata`, created if absent; `None` only when `obj` is not a JSON object.
pub fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let o = obj.as_object_mut()?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
}

pub fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Anything besides `metadata`/`status` (and type meta) changed: that bumps `generation`.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    const SKIP: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let differs = |x: &Map<String, Value>, y: &Map<String, Value>| {
        x.iter()
            .filter(|(k, _)| !SKIP.contains(&k.as_str()))
            .any(|(k, v)| y.get(k) != Some(v))
    };
    differs(a, b) || differs(b, a)
}

/// Equal apart from `resourceVersion` and `managedFields[].time`: such a write is a no-op and
/// must not bump the resourceVersion (kubectl prints `unchanged` / `patched (no change)`).
pub fn equal_ignoring_volatile(old: &Value, new: &Value) -> bool {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    if a.len() != b.len() {
        return false;
    }
    a.iter().all(|(k, va)| match (k.as_str(), b.get(k)) {
        (_, None) => false,
        ("metadata", Some(vb)) => metadata_equal(va, vb),
        (_, Some(vb)) => va == vb,
    })
}

fn metadata_equal(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let keys = |m: &Map<String, Value>| m.keys().filter(|k| *k != "resourceVersion").count();
    if keys(a) != keys(b) {
        return false;
    }
    a.iter()
        .filter(|(k, _)| *k != "resourceVersion")
        .all(|(k, va)| match (k.as_str(), b.get(k)) {
            (_, None) => false,
            ("managedFields", Some(vb)) => managed_fields_equal(va, vb),
            (_, Some(vb)) => va == vb,
        })
}

fn managed_fields_equal(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| match (x.as_object(), y.as_object()) {
                (Some(x), Some(y)) => {
                    x.iter().filter(|(k, _)| *k != "time").count()
                        == y.iter().filter(|(k, _)| *k != "time").count()
                        && x.iter()
                            .filter(|(k, _)| *k != "time")
                            .all(|(k, v)| y.get(k) == Some(v))
                }
                _ => x == y,
            })
}

/// Puts `apiVersion`, `kind`, `metadata`, `spec`, `status` first and metadata keys in
/// upstream order, so `-o json` reads like a real cluster's output.
pub fn order_object(obj: Value) -> Value {
    const TOP: [&str; 3] = ["apiVersion", "kind", "metadata"];
    const META: [&str; 15] = [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "selfLink",
    ];
    let Value::Object(mut o) = obj else {
        return obj;
    };
    let mut out = Map::new();
    for k in TOP {
        if let Some(mut v) = o.remove(k) {
            if k == "metadata"
                && let Value::Object(mut m) = v
            {
                let mut mo = Map::new();
                for mk in META {
                    if let Some(x) = m.remove(mk) {
                        mo.insert(mk.to_string(), x);
                    }
                }
                mo.extend(m);
                v = Value::Object(mo);
            }
            out.insert(k.to_string(), v);
        }
    }
    let status = o.remove("status");
    out.extend(o);
    if let Some(s) = status {
        out.insert("status".to_string(), s);
    }
    Value::Object(out)
}

/// Runs name validation and answers 422 like upstream.
pub fn validate(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let causes = crate::kube::validation::validate_object_meta(info, obj);
    if causes.is_empty() {
        return Ok(());
    }
    let name = meta_str(obj, "name").unwrap_or_default();
    Err(ApiError::invalid(&info.kind, &info.group, name, causes))
}

/// Records a non-apply write in `managedFields` (the patch engine's field manager).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) {
    crate::kube::patch::managed::record_update(old, new, manager, api_version, subresource, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_fields_are_ignored() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1",
            "managedFields": [{"manager": "m", "time": "t1"}]}, "spec": {"x": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2",
            "managedFields": [{"manager": "m", "time": "t2"}]}, "spec": {"x": 1}});
        assert!(equal_ignoring_volatile(&a, &b));
        let c = json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"x": 1}});
        assert!(!equal_ignoring_volatile(&a, &c));
    }

    #[test]
    fn spec_change_detection() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"y": 2}});
        let c = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        assert!(!spec_changed(&a, &b));
        assert!(spec_changed(&a, &c));
        assert!(spec_changed(&a, &json!({"metadata": {}})));
    }

    #[test]
    fn names() {
        let cm = crate::kube::builtin::builtin_resources()
            .into_iter()
            .find(|r| r.plural == "configmaps")
            .unwrap();
        let cases = [
            ("ok-name", true),
            ("a.b", true),
            ("Bad_Name", false),
            ("", false),
            ("-x", false),
        ];
        for (n, ok) in cases {
            let r = validate(
                &cm,
                &json!({"metadata": {"name": n, "namespace": "default"}}),
            );
            assert_eq!(r.is_ok(), ok, "{n}");
        }
        assert_eq!(random_suffix().len(), 5);
    }
}
