//! Patch engines: JSON merge patch, JSON patch, strategic merge patch, server-side apply.
//!
//! All engines are pure: they take the stored object and the request body and return the
//! patched object (or a [`PatchError`] the server turns into the `Status` kube-apiserver would
//! send). Defaulting, validation and resourceVersion checks are the caller's business.

mod json;
pub mod managed;
mod merge;
pub mod schema;
mod strategic;

pub use json::json_patch;
pub use merge::merge_patch;
pub use strategic::strategic_merge_patch;

use serde_json::{Value, json};

use super::errors::ApiError;

/// Message kube-apiserver puts on every 422 it builds with `NewGenericServerResponse` (JSON
/// patch failures); the real reason travels in `details.causes[0].message`.
const REJECTED: &str = "the server rejected our request due to an error in our request";

/// One field-ownership conflict of a server-side apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager as upstream prints it: `"kubectl"` for appliers,
    /// `"kubectl-client-side-apply" using v1` for updaters, plus ` with subresource "status"`.
    pub manager: String,
    /// The contested field, e.g. `.spec.ports[port=80,protocol="TCP"].targetPort`.
    pub field: String,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a patch of the declared type (400 BadRequest, like upstream's decode
    /// errors and strategic-merge format errors).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied to this object: a failed JSON-patch
    /// `test`, a path that does not exist, a list of lists in SMP. Upstream answers these with
    /// 422 `Invalid` and the generic "rejected our request" message, the detail in a cause.
    #[error("{0}")]
    Unprocessable(String),
    /// Server-side apply touched fields other managers own (409 Conflict, causes
    /// `FieldManagerConflict`).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// Any other patch-engine failure (e.g. a list item without its merge key). Upstream
    /// returns these as plain errors, which the apiserver answers as 500 with an empty reason
    /// (`StatusReasonUnknown`), printed by kubectl as `Error from server: <message>`.
    #[error("{0}")]
    Failed(String),
}

/// `Apply failed with 1 conflict: conflict with "m" using v1: .spec.x`, or for several:
/// `Apply failed with 2 conflicts: conflicts with "m":\n- .spec.a\n- .spec.b` (managers sorted).
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

impl PatchError {
    /// The `Status` the server answers. `kind`/`group`/`name` are kept in the signature for
    /// the error kinds that name the object; upstream's patch errors happen not to.
    pub fn to_api_error(&self, kind: &str, group: &str, name: &str) -> ApiError {
        // Upstream builds these without object details (NewBadRequest, NewApplyConflict and
        // NewGenericServerResponse with an empty resource), so neither do we.
        let _ = (kind, group, name);
        match self {
            PatchError::BadRequest(msg) => ApiError::bad_request(msg.clone()),
            PatchError::Unprocessable(msg) => ApiError::new(422, "Invalid", REJECTED)
                .with_details(json!({"causes": [{"message": msg}]})),
            PatchError::Conflicts(conflicts) => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({
                            "reason": "FieldManagerConflict",
                            "message": format!("conflict with {}", c.manager),
                            "field": c.field,
                        })
                    })
                    .collect();
                ApiError::new(409, "Conflict", self.to_string())
                    .with_details(json!({"causes": causes}))
            }
            PatchError::Failed(msg) => ApiError::new(500, "", msg.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_match_upstream() {
        let one = PatchError::Conflicts(vec![Conflict {
            manager: "\"kubectl-client-side-apply\" using v1".into(),
            field: ".spec.selector.app".into(),
        }]);
        let e = one.to_api_error("Service", "", "web");
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .spec.selector.app"
        );
        let details = e.details.unwrap_or_default();
        assert_eq!(details["causes"][0]["reason"], "FieldManagerConflict");
        assert_eq!(
            details["causes"][0]["message"],
            "conflict with \"kubectl-client-side-apply\" using v1"
        );
        assert_eq!(details["causes"][0]["field"], ".spec.selector.app");

        let two = PatchError::Conflicts(vec![
            Conflict {
                manager: "\"b\"".into(),
                field: ".spec.x".into(),
            },
            Conflict {
                manager: "\"a\"".into(),
                field: ".spec.y".into(),
            },
            Conflict {
                manager: "\"b\"".into(),
                field: ".spec.z".into(),
            },
        ]);
        assert_eq!(
            two.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .spec.y\nconflicts with \"b\":\n- .spec.x\n- .spec.z"
        );
    }

    #[test]
    fn other_errors_map_to_status_codes() {
        let e = PatchError::Unprocessable(
            "testing value /metadata/resourceVersion failed: test failed".into(),
        )
        .to_api_error("Service", "", "web");
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (422, "Invalid", REJECTED)
        );
        let bad =
            PatchError::BadRequest("Invalid JSON Patch".into()).to_api_error("Service", "", "web");
        assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            PatchError::Failed("x".into())
                .to_api_error("Service", "", "w")
                .code,
            500
        );
    }
}
