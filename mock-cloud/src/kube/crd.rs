//! CustomResourceDefinitions: validation, the `Established` status, and the resource types a
//! CRD serves. The store calls [`accept`] under its write lock and registers the returned
//! types in the same commit, so a CR is servable (and in discovery) before the create returns.

use serde_json::{Value, json};

use super::builtin::ALL_VERBS;
use super::errors::{ApiError, Cause};
use super::resources::{PrinterColumn, ResourceInfo};

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Sort key for Kubernetes version names: GA before beta before alpha, higher numbers first,
/// anything else last (alphabetically), as discovery orders versions.
pub fn version_priority(v: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        let (rank, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: i64 = num.parse().ok()?;
        Some((rank, -major, -minor))
    };
    match parse() {
        Some((r, a, b)) => (r, a, b, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let name = s(crd, "/metadata/name");
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if s(crd, "/spec/names/kind").is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            format!("\"{name}\""),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = s(crd, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::not_supported(
            "spec.scope",
            format!("\"{scope}\""),
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => causes.push(Cause::required("spec.versions", "")),
        Some(vs) if vs.is_empty() => causes.push(Cause::required("spec.versions", "")),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause::invalid(
                    "spec.versions",
                    "[]apiextensions.CustomResourceDefinitionVersion{...}",
                    "must have exactly one version marked as storage version",
                ));
            }
        }
    }
    causes
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: s(c, "/name").to_string(),
                    type_: s(c, "/type").to_string(),
                    format: s(c, "/format").to_string(),
                    description: s(c, "/description").to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s(c, "/jsonPath").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The resource types a (valid) CRD serves, preferred version first.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let group = s(crd, "/spec/group");
    let kind = s(crd, "/spec/names/kind");
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let mut versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|v| version_priority(s(v, "/name")));
    versions
        .into_iter()
        .map(|v| ResourceInfo {
            group: group.to_string(),
            version: s(v, "/name").to_string(),
            kind: kind.to_string(),
            plural: s(crd, "/spec/names/plural").to_string(),
            singular: singular.clone(),
            namespaced: s(crd, "/spec/scope") == "Namespaced",
            short_names: strings(crd.pointer("/spec/names/shortNames")),
            categories: strings(crd.pointer("/spec/names/categories")),
            status_subresource: v
                .pointer("/subresources/status")
                .is_some_and(|x| !x.is_null()),
            verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
            custom: true,
            printer_columns: printer_columns(v),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
        })
        .collect()
}

/// Validates a CRD being written and sets its status (names accepted, established), keeping
/// the transition times of `old` so a repeated apply stays a no-op.
pub fn accept(old: Option<&Value>, crd: &mut Value) -> Result<Vec<ResourceInfo>, ApiError> {
    let causes = validate(crd);
    if !causes.is_empty() {
        let name = s(crd, "/metadata/name").to_string();
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            causes,
        ));
    }
    let kind = s(crd, "/spec/names/kind").to_string();
    let mut accepted = json!({
        "plural": s(crd, "/spec/names/plural"),
        "singular": match s(crd, "/spec/names/singular") { "" => kind.to_lowercase(), x => x.to_string() },
        "kind": kind,
        "listKind": match s(crd, "/spec/names/listKind") { "" => format!("{kind}List"), x => x.to_string() },
    });
    for extra in ["shortNames", "categories"] {
        if let (Some(v), Some(a)) = (
            crd.pointer(&format!("/spec/names/{extra}")),
            accepted.as_object_mut(),
        ) {
            a.insert(extra.to_string(), v.clone());
        }
    }
    let now = super::store::now_rfc3339();
    let since = |t: &str| {
        old.and_then(|o| o.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| s(c, "/type") == t))
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    };
    let mut stored = strings(old.and_then(|o| o.pointer("/status/storedVersions")));
    if let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .map(|v| s(v, "/name").to_string())
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    let status = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"),
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": since("Established"),
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
    if let Some(o) = crd.as_object_mut() {
        o.insert("status".to_string(), status);
    }
    Ok(resources(crd))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
              "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
              "versions": [
                {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": {"type": "object"}},
                 "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}
              ]}
        })
    }

    #[test]
    fn accept_sets_status_and_serves_versions() {
        let mut crd = widget_crd();
        let infos = accept(None, &mut crd).unwrap();
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        assert_eq!(crd["status"]["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].version, "v1");
        assert!(infos[0].status_subresource && !infos[1].status_subresource);
        assert_eq!(infos[0].printer_columns[0].json_path, ".spec.size");
        assert_eq!(infos[0].singular, "widget");
        assert_eq!(infos[0].short_names, ["wd"]);
    }

    #[test]
    fn invalid_crd() {
        let mut crd = widget_crd();
        crd["metadata"]["name"] = json!("wrong");
        let err = accept(None, &mut crd).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("must be spec.names.plural"),
            "{}",
            err.message
        );
    }

    #[test]
    fn version_order() {
        let mut vs = vec!["v1alpha1", "v2", "v1beta1", "v1", "foo", "v1beta2"];
        vs.sort_by_key(|v| version_priority(v));
        assert_eq!(vs, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
