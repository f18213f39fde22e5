//! Label and field selectors, parsed from the `labelSelector` / `fieldSelector` query
//! parameters and matched against stored objects (list and watch alike).

use serde_json::Value;

use super::errors::ApiError;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; all requirements must hold (an empty selector matches all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

/// Splits on commas that are not inside `( ... )`, because `in (a,b)` lists use commas too.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_err(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {detail}"))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn check_key(key: &str) -> Result<String, ApiError> {
    if valid_key(key) {
        Ok(key.to_string())
    } else {
        Err(parse_err(format!("invalid label key \"{key}\"")))
    }
}

/// Parses `(a, b, c)` after `in` / `notin`.
fn parse_set(rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_err(format!("found '{rest}', expected: '('")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Finds ` in ` / ` notin ` as whole words outside values.
fn split_set_op<'a>(req: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let idx = req
        .find(&format!(" {op} "))
        .or_else(|| req.find(&format!(" {op}(")))?;
    Some((&req[..idx], &req[idx + op.len() + 1..]))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for raw in split_top_level(s) {
            let req = raw.trim();
            if req.is_empty() {
                return Err(parse_err("found '', expected: identifier"));
            }
            reqs.push(Self::parse_req(req)?);
        }
        Ok(Self { reqs })
    }

    fn parse_req(req: &str) -> Result<LabelReq, ApiError> {
        if let Some((k, rest)) = split_set_op(req, "notin") {
            return Ok(LabelReq::NotIn(check_key(k.trim())?, parse_set(rest)?));
        }
        if let Some((k, rest)) = split_set_op(req, "in") {
            return Ok(LabelReq::In(check_key(k.trim())?, parse_set(rest)?));
        }
        if let Some((k, v)) = req.split_once("!=") {
            return Ok(LabelReq::NotEq(check_key(k.trim())?, v.trim().to_string()));
        }
        if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            return Ok(LabelReq::Eq(check_key(k.trim())?, v.trim().to_string()));
        }
        if let Some(k) = req.strip_prefix('!') {
            return Ok(LabelReq::NotExists(check_key(k.trim())?));
        }
        if req.contains(['<', '>', '(', ')', ' ']) {
            return Err(parse_err(format!("found '{req}', expected: identifier")));
        }
        Ok(LabelReq::Exists(check_key(req)?))
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Matches against `metadata.labels` of a stored object.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            LabelReq::NotIn(k, set) => !get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// One `field=value` / `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldReq {
    path: String,
    value: String,
    negate: bool,
}

/// A parsed `fieldSelector`. Any dotted path is accepted (lenient where upstream lists the
/// supported fields per kind); a missing field reads as the empty string, as upstream does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    reqs: Vec<FieldReq>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for raw in s.split(',') {
            let term = raw.trim();
            let (path, value, negate) = if let Some((k, v)) = term.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let path = path.trim();
            if path.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: '{s}'"
                )));
            }
            reqs.push(FieldReq {
                path: path.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(Self { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The exact `metadata.name` this selector pins, if any (`get NAME -w`).
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|r| r.path == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs
            .iter()
            .all(|r| (field_value(obj, &r.path) == r.value) != r.negate)
    }
}

/// The string value of a field path as field selectors see it.
pub fn field_value(obj: &Value, path: &str) -> String {
    // Core Events select `source` by the component name.
    let path = if path == "source" {
        "source.component"
    } else {
        path
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "involvedObject": {"kind": "Service", "name": "web"},
            "source": {"component": "frontdesk"},
            "type": "Normal",
            "spec": {"nodeName": "n1"}
        })
    }

    #[test]
    fn label_selectors() {
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app in (x, web),tier", true),
            ("app=web,tier=back", false),
            ("example.com/x", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&obj()), want, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors() {
        for sel in ["a in b", "a,,b", "x y", "=v"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let cases = [
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.namespace=default,metadata.name=web", true),
            ("involvedObject.kind=Service,involvedObject.name=web", true),
            ("involvedObject.uid=", true),
            ("source=frontdesk", true),
            ("type=Warning", false),
            ("spec.nodeName=n1", true),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&obj()), want, "{sel}");
        }
        assert!(FieldSelector::parse("nonsense").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=web")
                .ok()
                .as_ref()
                .and_then(|s| s.pinned_name()),
            Some("web")
        );
    }
}
