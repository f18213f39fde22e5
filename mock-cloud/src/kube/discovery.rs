//! API discovery documents: the aggregated v2 form (`/api`, `/apis` with the
//! `apidiscovery.k8s.io` Accept) and the legacy `APIVersions` / `APIGroupList` / `APIGroup` /
//! `APIResourceList` forms. Pure functions of the resource table, so a CRD that was just
//! established shows up in the very next reply (kubectl re-fetches discovery once when it
//! meets an unknown kind and gives up if it is still missing).

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::resources::ResourceInfo;

/// The Content-Type kubectl needs to see to parse a reply as aggregated discovery. It decides by
/// the response header alone; with plain `application/json` it reads the body as
/// `APIVersions` and finds nothing.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Verbs of the `status` subresource, as upstream lists them.
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// The address clients are told to use. kubectl ignores it, but the field is required by the
/// `APIVersions` schema and real servers always fill it.
const SERVER_ADDRESS: &str = "127.0.0.1:6443";

/// Aggregated discovery (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2). `core = true` gives
/// the `/api` document (only the core group, named `""`); `false` gives `/apis` (every other
/// group, one item each, versions in preference order).
pub fn aggregated(resources: &[ResourceInfo], core: bool) -> Value {
    let items: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|g| g.is_empty() == core)
        .map(|group| {
            let versions: Vec<Value> = versions_of(resources, &group)
                .into_iter()
                .map(|version| {
                    let res: Vec<Value> = resources
                        .iter()
                        .filter(|r| r.group == group && r.version == version)
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": version, "resources": res, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut m = Map::new();
    m.insert("resource".into(), json!(r.plural));
    m.insert("responseKind".into(), gvk(r));
    m.insert(
        "scope".into(),
        json!(if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }),
    );
    m.insert("singularResource".into(), json!(r.singular));
    m.insert("verbs".into(), json!(r.verbs));
    // Upstream omits empty lists (`omitempty`); kubectl treats absent and empty alike.
    if !r.short_names.is_empty() {
        m.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        m.insert("categories".into(), json!(r.categories));
    }
    if r.status_subresource {
        m.insert(
            "subresources".into(),
            json!([{"subresource": "status", "responseKind": gvk(r), "verbs": STATUS_VERBS}]),
        );
    }
    Value::Object(m)
}

fn gvk(r: &ResourceInfo) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

/// `GET /api` without the aggregated Accept.
pub fn legacy_api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": SERVER_ADDRESS}],
    })
}

/// `GET /apis` without the aggregated Accept: every non-core group.
pub fn legacy_group_list(resources: &[ResourceInfo]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|g| !g.is_empty())
        .filter_map(|g| group_body(resources, &g))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`; `None` when no resource of that group is served.
pub fn legacy_group(resources: &[ResourceInfo], group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut body = group_body(resources, group)?;
    if let Value::Object(m) = &mut body {
        // Inside an APIGroupList the items carry no type meta; a lone APIGroup does.
        let mut out = Map::new();
        out.insert("kind".into(), json!("APIGroup"));
        out.insert("apiVersion".into(), json!("v1"));
        out.append(m);
        return Some(Value::Object(out));
    }
    None
}

fn group_body(resources: &[ResourceInfo], group: &str) -> Option<Value> {
    let versions = versions_of(resources, group);
    let preferred = versions.first()?;
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    Some(json!({
        "name": group,
        "versions": list,
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    }))
}

/// `GET /api/v1` (group `""`) or `/apis/{group}/{version}`: an `APIResourceList`, with an extra
/// `x/status` entry for every resource that has the status subresource. `None` when nothing
/// is served under that group version.
pub fn resource_list(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut m = Map::new();
        m.insert("name".into(), json!(r.plural));
        m.insert("singularName".into(), json!(r.singular));
        m.insert("namespaced".into(), json!(r.namespaced));
        m.insert("kind".into(), json!(r.kind));
        m.insert("verbs".into(), json!(r.verbs));
        if !r.short_names.is_empty() {
            m.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            m.insert("categories".into(), json!(r.categories));
        }
        list.push(Value::Object(m));
        if r.status_subresource {
            list.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    if list.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// Groups in order of first appearance (deterministic; kubectl sorts for display itself).
pub(crate) fn groups(resources: &[ResourceInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in resources {
        if !out.contains(&r.group) {
            out.push(r.group.clone());
        }
    }
    out
}

/// The versions of one group, most preferred first (Kubernetes version priority: GA before
/// beta before alpha, higher numbers first, anything else last in lexical order), which is
/// how upstream orders CRD versions and picks the preferred one.
pub(crate) fn versions_of(resources: &[ResourceInfo], group: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in resources.iter().filter(|r| r.group == group) {
        if !out.contains(&r.version) {
            out.push(r.version.clone());
        }
    }
    out.sort_by(|a, b| compare_versions(a, b));
    out
}

/// Parsed `v<major>[(alpha|beta)<minor>]`: (major, stability rank: 2 GA / 1 beta / 0 alpha, minor).
fn parse_kube_version(v: &str) -> Option<(u64, u8, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 || rest.starts_with('0') {
        return None;
    }
    let major: u64 = rest[..digits_end].parse().ok()?;
    let tail = &rest[digits_end..];
    if tail.is_empty() {
        return Some((major, 2, 0));
    }
    let (rank, num) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.starts_with('0') {
        return None;
    }
    Some((major, rank, num.parse().ok()?))
}

/// Ordering where the more preferred version comes first.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_kube_version(a), parse_kube_version(b)) {
        (Some((ma, ra, na)), Some((mb, rb, nb))) => rb.cmp(&ra).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn info(group: &str, version: &str, kind: &str, plural: &str) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            status_subresource: false,
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            custom: false,
            printer_columns: vec![],
            schema: None,
        }
    }

    fn sample() -> Vec<ResourceInfo> {
        let mut svc = info("", "v1", "Service", "services");
        svc.short_names = vec!["svc".into()];
        svc.categories = vec!["all".into()];
        svc.status_subresource = true;
        let mut ns = info("", "v1", "Namespace", "namespaces");
        ns.namespaced = false;
        let mut w1 = info("example.com", "v1beta1", "Widget", "widgets");
        w1.custom = true;
        let mut w2 = info("example.com", "v1", "Widget", "widgets");
        w2.custom = true;
        w2.status_subresource = true;
        vec![
            svc,
            ns,
            info("apps", "v1", "Deployment", "deployments"),
            w1,
            w2,
            info("example.com", "v1alpha1", "Gadget", "gadgets"),
        ]
    }

    #[test]
    fn aggregated_core_matches_the_verified_shape() {
        let doc = aggregated(&sample(), true);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = doc["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v = &items[0]["versions"][0];
        assert_eq!(v["version"], "v1");
        assert_eq!(v["freshness"], "Current");
        let svc = &v["resources"][0];
        assert_eq!(
            svc,
            &json!({"resource":"services","responseKind":{"group":"","version":"v1","kind":"Service"},
                "scope":"Namespaced","singularResource":"service",
                "verbs":["create","delete","deletecollection","get","list","patch","update","watch"],
                "shortNames":["svc"],"categories":["all"],
                "subresources":[{"subresource":"status","responseKind":{"group":"","version":"v1","kind":"Service"},
                                 "verbs":["get","patch","update"]}]})
        );
        let ns = &v["resources"][1];
        assert_eq!(ns["scope"], "Cluster");
        assert!(ns.get("shortNames").is_none());
        assert!(ns.get("subresources").is_none());
    }

    #[test]
    fn aggregated_apis_one_item_per_group_preferred_version_first() {
        let doc = aggregated(&sample(), false);
        let items = doc["items"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = items
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["apps", "example.com"]);
        let versions: Vec<&str> = items[1]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["version"].as_str())
            .collect();
        assert_eq!(versions, ["v1", "v1beta1", "v1alpha1"]);
        assert_eq!(
            items[1]["versions"][0]["resources"][0]["subresources"][0]["subresource"],
            "status"
        );
    }

    #[test]
    fn version_priority() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("v1", "v2", Ordering::Greater),
            ("v2", "v1", Ordering::Less),
            ("v1", "v1beta1", Ordering::Less),
            ("v1beta2", "v1beta1", Ordering::Less),
            ("v2beta1", "v1beta2", Ordering::Less),
            ("v1alpha1", "v1beta1", Ordering::Greater),
            ("v10", "v2", Ordering::Less),
            ("foo", "v1alpha1", Ordering::Greater),
            ("abc", "abd", Ordering::Less),
            ("v1beta", "v1", Ordering::Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), *want, "{a} vs {b}");
        }
    }

    #[test]
    fn legacy_forms() {
        let res = sample();
        let v = legacy_api_versions();
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["clientCIDR"],
            "0.0.0.0/0"
        );

        let list = legacy_group_list(&res);
        assert_eq!(list["kind"], "APIGroupList");
        assert_eq!(list["groups"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            list["groups"][1]["preferredVersion"],
            json!({"groupVersion":"example.com/v1","version":"v1"})
        );
        assert!(list["groups"][1].get("kind").is_none());

        let g = legacy_group(&res, "example.com").unwrap_or_default();
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(g["name"], "example.com");
        assert_eq!(
            g["versions"][2],
            json!({"groupVersion":"example.com/v1alpha1","version":"v1alpha1"})
        );
        assert!(legacy_group(&res, "nope.io").is_none());
        assert!(legacy_group(&res, "").is_none());
    }

    #[test]
    fn resource_lists() {
        let res = sample();
        let core = resource_list(&res, "", "v1").unwrap_or_default();
        assert_eq!(core["groupVersion"], "v1");
        assert_eq!(core["kind"], "APIResourceList");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["services", "services/status", "namespaces"]);
        assert_eq!(
            core["resources"][1],
            json!({"name":"services/status","singularName":"","namespaced":true,"kind":"Service","verbs":["get","patch","update"]})
        );
        assert_eq!(core["resources"][0]["shortNames"], json!(["svc"]));
        assert_eq!(core["resources"][2]["namespaced"], false);

        let w = resource_list(&res, "example.com", "v1beta1").unwrap_or_default();
        assert_eq!(w["groupVersion"], "example.com/v1beta1");
        assert_eq!(w["resources"].as_array().map(Vec::len), Some(1));
        assert!(resource_list(&res, "example.com", "v9").is_none());
        assert!(resource_list(&res, "apps", "v1").is_some());
    }
}
