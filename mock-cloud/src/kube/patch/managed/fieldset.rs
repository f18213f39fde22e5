//! Field sets (structured-merge-diff's `fieldpath.Set`) and their `FieldsV1` encoding.
//!
//! A set is a tree of path elements; a node is a *member* when the field itself (not only
//! some of its children) belongs to the set. `FieldsV1` writes a member leaf as `{}` and a
//! member with children as a `".": {}` entry beside them.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path. The derived order (fields, then keys, values, indexes) is the
/// order upstream serializes and iterates sets in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// `f:<name>`: a field of an object.
    Field(String),
    /// `k:<json>`: the item of a list map with these key values (compact JSON object, fields
    /// sorted by name).
    Key(String),
    /// `v:<json>`: an item of a set list.
    Value(String),
    /// `i:<n>`: a list item by position (only read, never produced: our granular lists are keyed).
    Index(usize),
}

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(n) => format!("f:{n}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Pe> {
        let (kind, rest) = s.split_once(':')?;
        match kind {
            "f" => Some(Pe::Field(rest.to_string())),
            // Re-encode so a hand-written entry (other spacing or key order) still matches.
            "k" => match serde_json::from_str::<Value>(rest).ok()? {
                Value::Object(m) => Some(Pe::Key(key_json(m.into_iter().collect()))),
                _ => None,
            },
            "v" => Some(Pe::Value(
                serde_json::from_str::<Value>(rest).ok()?.to_string(),
            )),
            "i" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }
}

/// Compact JSON of a key object with its fields sorted by name, as upstream encodes `k:`.
pub fn key_json(mut fields: Vec<(String, Value)>) -> String {
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(fields.into_iter().collect::<Map<String, Value>>()).to_string()
}

/// A path in upstream's printed form: `.spec.ports[port=80,protocol="TCP"].targetPort`.
pub struct PathDisplay<'a>(pub &'a [Pe]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in self.0 {
            match pe {
                Pe::Field(n) => write!(f, ".{n}")?,
                Pe::Key(k) => {
                    let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                        Ok(Value::Object(m)) => {
                            m.iter().map(|(name, v)| format!("{name}={v}")).collect()
                        }
                        _ => vec![k.clone()],
                    };
                    write!(f, "[{}]", parts.join(","))?;
                }
                Pe::Value(v) => write!(f, "[={v}]")?,
                Pe::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set(BTreeMap<Pe, Node>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    member: bool,
    children: Set,
}

impl Set {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, path: &[Pe]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let node = self.0.entry(first.clone()).or_default();
        if rest.is_empty() {
            node.member = true;
        } else {
            node.children.insert(rest);
        }
    }

    pub fn contains(&self, path: &[Pe]) -> bool {
        match path.split_first() {
            None => false,
            Some((first, rest)) => match self.0.get(first) {
                None => false,
                Some(node) if rest.is_empty() => node.member,
                Some(node) => node.children.contains(rest),
            },
        }
    }

    /// Drops `path` as a member (its children stay).
    pub fn remove_member(&mut self, path: &[Pe]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let Some(node) = self.0.get_mut(first) else {
            return;
        };
        if rest.is_empty() {
            node.member = false;
        } else {
            node.children.remove_member(rest);
        }
        if !node.member && node.children.is_empty() {
            self.0.remove(first);
        }
    }

    /// Whether `path` or anything below it is in the set.
    pub fn touches(&self, path: &[Pe]) -> bool {
        match path.split_first() {
            None => !self.is_empty(),
            Some((first, rest)) => self.0.get(first).is_some_and(|node| {
                if rest.is_empty() {
                    node.member || !node.children.is_empty()
                } else {
                    node.children.touches(rest)
                }
            }),
        }
    }

    /// Every member path, in upstream's iteration order (a member before its children).
    pub fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        for (pe, node) in &self.0 {
            prefix.push(pe.clone());
            if node.member {
                out.push(prefix.clone());
            }
            node.children.collect(prefix, out);
            prefix.pop();
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        for path in other.paths() {
            out.insert(&path);
        }
        out
    }

    pub fn difference(&self, other: &Set) -> Set {
        self.filter(|p| !other.contains(p))
    }

    pub fn intersection(&self, other: &Set) -> Set {
        self.filter(|p| other.contains(p))
    }

    fn filter(&self, keep: impl Fn(&[Pe]) -> bool) -> Set {
        let mut out = Set::default();
        for path in self.paths() {
            if keep(&path) {
                out.insert(&path);
            }
        }
        out
    }

    /// The `fieldsV1` object.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (pe, node) in &self.0 {
            let mut inner = match node.children.to_fields_v1() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if node.member && !inner.is_empty() {
                let mut with_dot = Map::new();
                with_dot.insert(".".to_string(), Value::Object(Map::new()));
                with_dot.extend(inner);
                inner = with_dot;
            }
            map.insert(pe.encode(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// Parses `fieldsV1`; entries that do not parse are skipped rather than failing the write
    /// (upstream resets unparsable managedFields too).
    pub fn from_fields_v1(v: &Value) -> Set {
        let mut out = Set::default();
        if let Value::Object(map) = v {
            for (k, child) in map {
                if k == "." {
                    continue;
                }
                let Some(pe) = Pe::decode(k) else { continue };
                let children = Set::from_fields_v1(child);
                let empty = child.as_object().is_none_or(Map::is_empty);
                let member = empty || child.get(".").is_some();
                out.0.insert(pe, Node { member, children });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                "f:selector": {}
            },
            "f:metadata2": {"f:finalizers": {"v:\"a\"": {}}}
        });
        let set = Set::from_fields_v1(&v);
        assert!(set.contains(&[Pe::Field("spec".into()), Pe::Field("selector".into())]));
        assert!(set.contains(&[Pe::Field("metadata".into()), Pe::Field("labels".into())]));
        assert!(!set.contains(&[Pe::Field("spec".into())]));
        assert_eq!(set.to_fields_v1(), v);
        let key = r#"{"port":80,"protocol":"TCP"}"#.to_string();
        assert!(set.contains(&[
            Pe::Field("spec".into()),
            Pe::Field("ports".into()),
            Pe::Key(key.clone())
        ]));
        let path = [
            Pe::Field("spec".into()),
            Pe::Field("ports".into()),
            Pe::Key(key),
            Pe::Field("targetPort".into()),
        ];
        assert_eq!(
            PathDisplay(&path).to_string(),
            r#".spec.ports[port=80,protocol="TCP"].targetPort"#
        );
    }

    #[test]
    fn hand_written_keys_are_normalized() {
        let set = Set::from_fields_v1(&json!({"k:{\"protocol\": \"TCP\", \"port\": 80}": {}}));
        assert!(set.contains(&[Pe::Key(key_json(vec![
            ("port".into(), json!(80)),
            ("protocol".into(), json!("TCP"))
        ]))]));
    }

    #[test]
    fn set_algebra() {
        let p = |s: &str| -> Vec<Pe> { s.split('.').map(|f| Pe::Field(f.to_string())).collect() };
        let mut a = Set::default();
        a.insert(&p("spec.a"));
        a.insert(&p("spec.b"));
        let mut b = Set::default();
        b.insert(&p("spec.b"));
        b.insert(&p("spec.c"));
        assert_eq!(a.intersection(&b).paths(), vec![p("spec.b")]);
        assert_eq!(a.difference(&b).paths(), vec![p("spec.a")]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.touches(&p("spec")));
        assert!(!a.touches(&p("status")));
        assert!(a.difference(&a).is_empty());
    }
}
