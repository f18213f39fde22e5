//! The Kubernetes URL grammar and query parameters.

use http::Uri;

/// A parsed `/api...` or `/apis...` path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub group: String,
    /// `None` for `/apis/{group}`.
    pub version: Option<String>,
    pub namespace: Option<String>,
    /// `None` for the discovery documents of a group / group version.
    pub plural: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    /// The legacy `/watch/` prefix.
    pub watch: bool,
}

/// Subresources of a namespace, which upstream does not read as a namespaced resource name.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl Route {
    pub fn parse(path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut r = Route::default();
        let rest: &[&str] = match segs.as_slice() {
            ["api"] => return None,
            ["api", v, rest @ ..] => {
                r.version = Some((*v).to_string());
                rest
            }
            ["apis", g] => {
                r.group = (*g).to_string();
                return Some(r);
            }
            ["apis", g, v, rest @ ..] => {
                r.group = (*g).to_string();
                r.version = Some((*v).to_string());
                rest
            }
            _ => return None,
        };
        let rest = match rest {
            ["watch", tail @ ..] => {
                r.watch = true;
                tail
            }
            other => other,
        };
        let rest = match rest {
            ["namespaces", ns, tail @ ..]
                if !tail.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&tail[0]) =>
            {
                r.namespace = Some((*ns).to_string());
                tail
            }
            other => other,
        };
        match rest {
            [] => {}
            [p] => r.plural = Some((*p).to_string()),
            [p, n] => {
                r.plural = Some((*p).to_string());
                r.name = Some((*n).to_string());
            }
            [p, n, s] => {
                r.plural = Some((*p).to_string());
                r.name = Some((*n).to_string());
                r.sub = Some((*s).to_string());
            }
            _ => return None,
        }
        if r.watch && r.plural.is_none() {
            return None;
        }
        Some(r)
    }
}

/// Query parameters (percent-decoded; kube-rs' leading `?&` and unknown keys are harmless).
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(uri: &Uri) -> Query {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Query(pairs)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true`, `True`, `1` count as set.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str) -> Option<Route> {
        Route::parse(path)
    }

    #[test]
    fn paths() {
        let svc = r("/api/v1/namespaces/default/services/web").unwrap();
        assert_eq!(
            (
                svc.group.as_str(),
                svc.namespace.as_deref(),
                svc.plural.as_deref(),
                svc.name.as_deref()
            ),
            ("", Some("default"), Some("services"), Some("web"))
        );
        let st = r("/api/v1/namespaces/default/services/web/status").unwrap();
        assert_eq!(st.sub.as_deref(), Some("status"));
        let ns = r("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (ns.plural.as_deref(), ns.name.as_deref(), ns.namespace),
            (Some("namespaces"), Some("default"), None)
        );
        let nss = r("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(
            (
                nss.plural.as_deref(),
                nss.name.as_deref(),
                nss.sub.as_deref()
            ),
            (Some("namespaces"), Some("x"), Some("status"))
        );
        let all = r("/api/v1/services").unwrap();
        assert_eq!(
            (all.plural.as_deref(), all.namespace),
            (Some("services"), None)
        );
        let crd = r("/apis/example.com/v1/namespaces/a/widgets").unwrap();
        assert_eq!(
            (crd.group.as_str(), crd.version.as_deref()),
            ("example.com", Some("v1"))
        );
        let w = r("/api/v1/watch/namespaces/default/services").unwrap();
        assert!(w.watch);
        assert_eq!(r("/apis/apps").unwrap().version, None);
        assert!(r("/api/v1").unwrap().plural.is_none());
        assert!(r("/api").is_none());
        assert!(r("/foo").is_none());
        assert!(r("/api/v1/namespaces/a/b/c/d/e").is_none());
    }

    #[test]
    fn query() {
        let q = Query::parse(
            &"/x?&limit=500&watch=1&labelSelector=app%3Dweb&b=True"
                .parse()
                .unwrap(),
        );
        assert_eq!(q.get("limit"), Some("500"));
        assert!(q.flag("watch") && q.flag("b") && !q.flag("c"));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
    }
}
