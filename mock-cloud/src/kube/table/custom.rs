//! Tables of custom resources: `Name` plus the CRD's `additionalPrinterColumns` (default
//! `Age`), with cells evaluated from the columns' JSONPaths like the apiextensions table
//! convertor does.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{desc, human_duration};
use crate::kube::resources::{PrinterColumn, ResourceInfo};

pub(super) struct CrColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// Empty for the `Name` column (its cell is `metadata.name`).
    pub json_path: String,
}

impl CrColumn {
    pub(super) fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub(super) fn columns(info: &ResourceInfo) -> Vec<CrColumn> {
    let mut cols = vec![CrColumn {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: desc::OBJECT_META_NAME.into(),
        priority: 0,
        json_path: String::new(),
    }];
    if info.printer_columns.is_empty() {
        cols.push(CrColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: desc::OBJECT_META_CREATION_TIMESTAMP.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    }
    cols.extend(
        info.printer_columns
            .iter()
            .map(|c: &PrinterColumn| CrColumn {
                name: c.name.clone(),
                type_: c.type_.clone(),
                format: c.format.clone(),
                description: if c.description.is_empty() {
                    format!(
                        "Custom resource definition column (in JSONPath format): {}",
                        c.json_path
                    )
                } else {
                    c.description.clone()
                },
                priority: c.priority,
                json_path: c.json_path.clone(),
            }),
    );
    cols
}

pub(super) fn cells(cols: &[CrColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    cols.iter()
        .map(|c| {
            if c.json_path.is_empty() {
                return json!(
                    obj.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
            }
            match eval(&c.json_path, obj).into_iter().next() {
                Some(v) => cell_for(&c.type_, v, now),
                None => Value::Null,
            }
        })
        .collect()
}

/// The apiextensions `cellForJSONValue`: typed cells, `null` (printed `<none>`) when the value
/// does not fit the column type.
fn cell_for(type_: &str, v: &Value, now: DateTime<Utc>) -> Value {
    match (type_, v) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(|f| json!(f as i64)))
            .unwrap_or(Value::Null),
        ("number", Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => json!(human_duration(
                now.signed_duration_since(t.with_timezone(&Utc))
            )),
            Err(_) => json!("<invalid>"),
        },
        // String columns print any value the way kubectl's JSONPath printer would.
        ("string", v) => json!(go_text(v)),
        _ => Value::Null,
    }
}

/// Go's `fmt.Fprint` of an unstructured value, which is what the JSONPath printer emits.
fn go_text(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_text(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    /// `[?(@.a.b == "x")]` / `!=`; the right side is a JSON literal.
    Filter {
        path: Vec<String>,
        negate: bool,
        value: Value,
    },
}

/// Parse the subset of JSONPath CRD columns use: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`,
/// `[?(@.type=="Ready")]`, optionally wrapped in `{...}`. `None` for anything else.
fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    // `\.` escapes a dot inside a key.
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let raw: String = chars[start..i.min(chars.len())].iter().collect();
                let key = raw.replace("\\.", ".");
                if key.is_empty() {
                    return None;
                }
                steps.push(if key == "*" {
                    Step::Wildcard
                } else {
                    Step::Field(key)
                });
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open + 1) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ']' => return Some(j),
            None => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key.to_string()));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, rhs, negate) = if let Some((l, r)) = expr.split_once("!=") {
        (l, r, true)
    } else {
        let (l, r) = expr.split_once("==")?;
        (l, r, false)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix('@')?
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => json!(s),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter {
        path,
        negate,
        value,
    })
}

/// Every match of `path` in `obj`, in document order; empty when the path is unsupported.
fn eval<'a>(path: &str, obj: &'a Value) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(k) => next.extend(v.get(k.as_str())),
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if idx >= 0 {
                            next.extend(a.get(idx as usize));
                        }
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter {
                    path,
                    negate,
                    value,
                } => {
                    for item in v.as_array().into_iter().flatten() {
                        let got = path.iter().try_fold(item, |cur, k| cur.get(k.as_str()));
                        let hit = got.is_some_and(|g| g == value);
                        if hit != *negate && got.is_some() {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let obj = json!({
            "metadata": {"name": "w1", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Up"}
            ]}
        });
        let cases: &[(&str, Option<Value>)] = &[
            (".spec.replicas", Some(json!(3))),
            ("{.spec.replicas}", Some(json!(3))),
            ("$.spec.replicas", Some(json!(3))),
            (".spec.items[1].name", Some(json!("b"))),
            (".spec.items[-1].name", Some(json!("b"))),
            (".spec.items[*].name", Some(json!("a"))),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some(json!("True")),
            ),
            (
                ".status.conditions[?(@.type=='Ready')].reason",
                Some(json!("Up")),
            ),
            (
                ".status.conditions[?(@.type!=\"Synced\")].type",
                Some(json!("Ready")),
            ),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                Some(json!("web")),
            ),
            (
                ".metadata.labels.app\\.kubernetes\\.io/name",
                Some(json!("web")),
            ),
            (".spec.missing", None),
            (".spec.items[7].name", None),
            ("spec.replicas", None),
            (".spec.items[?(@.name)]", None),
        ];
        for (path, want) in cases {
            assert_eq!(eval(path, &obj).first().cloned().cloned(), *want, "{path}");
        }
    }

    #[test]
    fn typed_cells() {
        let now = DateTime::parse_from_rfc3339("2025-01-01T00:10:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let cases: &[(&str, Value, Value)] = &[
            ("integer", json!(3), json!(3)),
            ("integer", json!(3.7), json!(3)),
            ("integer", json!("3"), Value::Null),
            ("number", json!(2), json!(2.0)),
            ("boolean", json!(true), json!(true)),
            ("boolean", json!("true"), Value::Null),
            ("string", json!("x"), json!("x")),
            ("string", json!(5), json!("5")),
            (
                "string",
                json!({"b": 1, "a": [1, "x"]}),
                json!("map[a:[1 x] b:1]"),
            ),
            ("date", json!("2025-01-01T00:05:00Z"), json!("5m")),
            ("date", json!("yesterday"), json!("<invalid>")),
            ("string", Value::Null, Value::Null),
        ];
        for (t, v, want) in cases {
            assert_eq!(cell_for(t, v, now), *want, "{t} {v}");
        }
    }
}
