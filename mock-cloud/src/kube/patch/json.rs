//! JSON patch (RFC 6902), `application/json-patch+json`.
//!
//! Operations run one at a time so a failure can be worded like upstream's library
//! (evanphx/json-patch), whose text kubectl shows. Nothing is special about
//! `/metadata/resourceVersion` or `/metadata/managedFields`: they are plain data here, and the
//! server compares the patched resourceVersion with the stored one (409 on mismatch).

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::PatchError;

pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    // Decoding errors are 400 upstream (`jsonpatch.DecodePatch` → NewBadRequest).
    let Value::Array(ops) = patch else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            go_type_name(patch)
        )));
    };
    let mut doc = target.clone();
    for raw in ops {
        let Value::Object(fields) = raw else {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                go_type_name(raw)
            )));
        };
        // Everything below is an apply-time failure upstream, which answers 422.
        let kind = fields.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = fields
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "test" {
            run_test(&doc, path, fields.get("value"))?;
            continue;
        }
        let op: PatchOperation = serde_json::from_value(raw.clone()).map_err(|e| {
            if matches!(kind, "add" | "remove" | "replace" | "move" | "copy") {
                PatchError::Unprocessable(format!("{kind} operation is malformed: {e}"))
            } else {
                PatchError::Unprocessable(format!("Unexpected kind: {kind}"))
            }
        })?;
        json_patch::patch(&mut doc, std::slice::from_ref(&op))
            .map_err(|e| describe(&op, &e.kind))?;
    }
    Ok(doc)
}

/// evanphx treats a missing location as `null`, so `{"op":"test","value":null}` on an absent
/// field passes; the Rust crate would fail it.
fn run_test(doc: &Value, path: &str, want: Option<&Value>) -> Result<(), PatchError> {
    let want = want.unwrap_or(&Value::Null);
    let got = doc.pointer(path).unwrap_or(&Value::Null);
    if got == want {
        Ok(())
    } else {
        Err(PatchError::Unprocessable(format!(
            "testing value {path} failed: test failed"
        )))
    }
}

fn describe(op: &PatchOperation, kind: &PatchErrorKind) -> PatchError {
    let msg = match (op, kind) {
        (PatchOperation::Add(o), _) => {
            format!(
                "add operation does not apply: doc is missing path: \"{}\": missing value",
                o.path
            )
        }
        (PatchOperation::Remove(o), _) => {
            format!(
                "remove operation does not apply: doc is missing path: \"{}\": missing value",
                o.path
            )
        }
        (PatchOperation::Replace(o), _) => {
            format!(
                "replace operation does not apply: doc is missing key: {}: missing value",
                o.path
            )
        }
        (PatchOperation::Move(o), PatchErrorKind::CannotMoveInsideItself) => {
            format!(
                "move operation does not apply: cannot move {} into its own child {}",
                o.from, o.path
            )
        }
        (PatchOperation::Move(o), PatchErrorKind::InvalidFromPointer) => {
            format!(
                "move operation does not apply: doc is missing from path: {}: missing value",
                o.from
            )
        }
        (PatchOperation::Move(o), _) => {
            format!(
                "move operation does not apply: doc is missing destination path: {}: missing value",
                o.path
            )
        }
        (PatchOperation::Copy(o), PatchErrorKind::InvalidFromPointer) => {
            format!(
                "copy operation does not apply: doc is missing from path: {}: missing value",
                o.from
            )
        }
        (PatchOperation::Copy(o), _) => {
            format!(
                "copy operation does not apply: doc is missing destination path: {}: missing value",
                o.path
            )
        }
        (PatchOperation::Test(o), _) => format!("testing value {} failed: test failed", o.path),
    };
    PatchError::Unprocessable(msg)
}

/// How Go's encoding/json names a JSON value's type in unmarshal errors.
pub(super) fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "resourceVersion": "111",
                "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update"}]},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
        })
    }

    #[test]
    fn rfc6902_operations() {
        let cases = [
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            (
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            (
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": "x"}]),
                json!({"foo": ["bar", "x"]}),
            ),
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                json!({"foo": "bar"}),
            ),
            (
                json!({"baz": "qux"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo"}),
            ),
            (
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            (
                json!({"a": {"b": 1}}),
                json!([{"op": "copy", "from": "/a", "path": "/c"}]),
                json!({"a": {"b": 1}, "c": {"b": 1}}),
            ),
            (
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            (
                json!({"a/b": 1, "m~n": 2}),
                json!([{"op": "replace", "path": "/a~1b", "value": 3}, {"op": "remove", "path": "/m~0n"}]),
                json!({"a/b": 3}),
            ),
            (
                json!({"a": 1}),
                json!([{"op": "test", "path": "/missing", "value": null}]),
                json!({"a": 1}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(json_patch(&target, &patch), Ok(want), "{patch}");
        }
    }

    #[test]
    fn kubectl_ssa_upgrade_patch() {
        let entry = json!({"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:selector": {}}}});
        let patch = json!([
            {"op": "replace", "path": "/metadata/managedFields", "value": [entry.clone()]},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "111"}
        ]);
        let got = json_patch(&svc(), &patch).unwrap_or_default();
        assert_eq!(got["metadata"]["managedFields"], json!([entry]));
        assert_eq!(got["metadata"]["resourceVersion"], "111");
    }

    #[test]
    fn failures_are_worded_like_upstream() {
        let cases = [
            (json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}]),
             PatchError::Unprocessable("testing value /metadata/resourceVersion failed: test failed".into())),
            (json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
             PatchError::Unprocessable("replace operation does not apply: doc is missing key: /spec/nope: missing value".into())),
            (json!([{"op": "remove", "path": "/spec/nope"}]),
             PatchError::Unprocessable("remove operation does not apply: doc is missing path: \"/spec/nope\": missing value".into())),
            (json!([{"op": "add", "path": "/a/b/c", "value": 1}]),
             PatchError::Unprocessable("add operation does not apply: doc is missing path: \"/a/b/c\": missing value".into())),
            (json!([{"op": "frob", "path": "/a"}]), PatchError::Unprocessable("Unexpected kind: frob".into())),
            (json!({"op": "add"}), PatchError::BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch".into())),
            (json!([1]), PatchError::BadRequest("json: cannot unmarshal number into Go value of type jsonpatch.Operation".into())),
        ];
        for (patch, want) in cases {
            assert_eq!(json_patch(&svc(), &patch), Err(want), "{patch}");
        }
    }

    #[test]
    fn failed_patch_leaves_no_partial_result() {
        let patch = json!([{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/x", "value": 2}]);
        assert!(json_patch(&svc(), &patch).is_err());
    }
}
