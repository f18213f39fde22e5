//! JSON merge patch (RFC 7386), `application/merge-patch+json`.

use serde_json::{Map, Value};

use super::PatchError;

/// Applies an RFC 7386 merge patch. Objects merge key by key, `null` deletes, everything else
/// (lists included) replaces.
///
/// RFC 7386 lets a non-object patch replace the whole document; upstream's library refuses
/// that for a Kubernetes object (`Invalid JSON Patch`, 400), and so do we.
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".to_string()));
    }
    Ok(merge_value(Some(target), patch))
}

fn merge_value(target: Option<&Value>, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = merge_value(out.get(key), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // The test table of RFC 7386 appendix A (object-patch cases).
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), Ok(want), "{target} + {patch}");
        }
    }

    #[test]
    fn status_patch_like_kube_rs() {
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
        let got = merge_patch(&svc, &patch).unwrap_or_default();
        assert_eq!(
            got["status"]["loadBalancer"]["ingress"][0]["ip"],
            "10.0.0.1"
        );
        assert_eq!(got["spec"]["type"], "LoadBalancer");
    }

    #[test]
    fn non_object_patch_is_rejected() {
        for patch in [json!([1]), json!("x"), json!(null)] {
            assert_eq!(
                merge_patch(&json!({}), &patch),
                Err(PatchError::BadRequest("Invalid JSON Patch".into()))
            );
        }
    }
}
