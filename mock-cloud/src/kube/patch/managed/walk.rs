//! Schema-aware walks over objects: which fields a value sets, what changed between two
//! versions, apply's merge, and removal of fields an applier gave up.

use serde_json::{Map, Value};

use super::super::schema::{self, Field, ListKind, Ty};
use super::fieldset::{Pe, Set, key_json};

/// Metadata fields never tracked in managedFields (upstream's strip set).
const UNTRACKED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
    // Upstream never runs the field manager on deletion; these only change there.
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

pub fn is_untracked_meta(key: &str) -> bool {
    UNTRACKED_META.contains(&key)
}

/// Removes what field ownership ignores, so sets and comparisons need no special cases.
pub fn strip(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Value::Object(map) = &mut out {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for f in UNTRACKED_META {
                meta.remove(*f);
            }
        }
    }
    out
}

/// The schema of a list item (an object of the list's item type).
fn item_field(list: Field) -> Field {
    Field {
        ty: list.ty,
        list: ListKind::Atomic,
        atomic: false,
        always_present: false,
    }
}

/// The path element of a list-map item, filling key defaults (`protocol: TCP`). `None` when
/// the item is not an object.
pub fn key_of(item: &Value, keys: &[&str]) -> Option<Pe> {
    let obj = item.as_object()?;
    let fields = keys
        .iter()
        .filter_map(|k| {
            obj.get(*k)
                .cloned()
                .or_else(|| schema::key_default(k))
                .map(|v| (k.to_string(), v))
        })
        .collect();
    Some(Pe::Key(key_json(fields)))
}

fn element_of(item: &Value, field: Field) -> Option<Pe> {
    match field.list {
        ListKind::Map { ssa_keys, .. } => key_of(item, ssa_keys),
        ListKind::Set => Some(Pe::Value(item.to_string())),
        ListKind::Atomic => None,
    }
}

/// Whether a value is walked into (rather than owned as one leaf).
fn granular(v: &Value, field: Field) -> bool {
    match v {
        Value::Object(m) => !field.atomic && !m.is_empty(),
        Value::Array(items) => {
            field.list != ListKind::Atomic
                && !items.is_empty()
                && items.iter().all(|i| element_of(i, field).is_some())
        }
        _ => false,
    }
}

/// Every field `obj` sets (apply's `ToFieldSet`): leaves, atomic values and list items.
pub fn field_set(obj: &Value, root: Ty) -> Set {
    let mut out = Set::default();
    let mut path = Vec::new();
    if let Value::Object(map) = obj {
        fields_of_map(map, root, &mut path, &mut out);
    }
    // `metadata: {}` (all its content untracked) is no field anyone owns.
    out.remove_member(&[Pe::Field("metadata".to_string())]);
    out
}

fn fields_of_map(map: &Map<String, Value>, ty: Ty, path: &mut Vec<Pe>, out: &mut Set) {
    for (k, v) in map {
        path.push(Pe::Field(k.clone()));
        fields_of_value(v, ty.field(k), path, out);
        path.pop();
    }
}

fn fields_of_value(v: &Value, field: Field, path: &mut Vec<Pe>, out: &mut Set) {
    if !granular(v, field) {
        out.insert(path);
        return;
    }
    match v {
        Value::Object(m) => fields_of_map(m, field.ty, path, out),
        Value::Array(items) => {
            for item in items {
                let Some(pe) = element_of(item, field) else {
                    continue;
                };
                path.push(pe);
                out.insert(path);
                if let Value::Object(m) = item {
                    fields_of_map(m, field.ty, path, out);
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// What changed from `old` to `new` (structured-merge-diff's `Compare`). Containers that
/// appear or disappear are listed themselves too (that is where `.` entries come from),
/// except Go structs that always exist.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn changed(&self) -> Set {
        self.added.union(&self.modified)
    }
}

pub fn compare(old: &Value, new: &Value, root: Ty) -> Comparison {
    let mut c = Comparison::default();
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    compare_maps(o, n, root, &mut Vec::new(), &mut c);
    c
}

fn compare_maps(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    ty: Ty,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let keys: Vec<&String> = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
        .collect();
    for k in keys {
        path.push(Pe::Field(k.clone()));
        compare_values(old.get(k), new.get(k), ty.field(k), path, c);
        path.pop();
    }
}

fn compare_values(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Field,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    // Null and absent are the same to a Go object.
    let old = old.filter(|v| !v.is_null());
    let new = new.filter(|v| !v.is_null());
    let empty = Value::Object(Map::new());
    let (old, new) = if field.always_present {
        (old.or(Some(&empty)), new.or(Some(&empty)))
    } else {
        (old, new)
    };
    match (old, new) {
        (None, None) => {}
        (None, Some(n)) => {
            c.added.insert(path);
            walk_one_side(n, field, path, &mut c.added);
        }
        (Some(o), None) => {
            c.removed.insert(path);
            walk_one_side(o, field, path, &mut c.removed);
        }
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if granular_pair(o.is_empty(), n.is_empty(), field.atomic) =>
        {
            compare_maps(o, n, field.ty, path, c);
        }
        (Some(o @ Value::Array(oi)), Some(n @ Value::Array(ni)))
            if granular_pair(oi.is_empty(), ni.is_empty(), false)
                && (oi.is_empty() || granular(o, field))
                && (ni.is_empty() || granular(n, field)) =>
        {
            compare_lists(oi, ni, field, path, c);
        }
        (Some(o), Some(n)) => {
            if o != n {
                c.modified.insert(path);
            }
        }
    }
}

/// Two containers are compared field by field unless atomic or both empty (then the pair is
/// one leaf, which keeps `{}` vs absent distinguishable, as upstream does).
fn granular_pair(old_empty: bool, new_empty: bool, atomic: bool) -> bool {
    !(atomic || old_empty && new_empty)
}

fn compare_lists(
    old: &[Value],
    new: &[Value],
    field: Field,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    let index = |items: &[Value]| -> Vec<(Pe, Value)> {
        let mut out: Vec<(Pe, Value)> = Vec::new();
        for item in items {
            if let Some(pe) = element_of(item, field) {
                // Duplicates: the first one counts.
                if !out.iter().any(|(p, _)| *p == pe) {
                    out.push((pe, item.clone()));
                }
            }
        }
        out
    };
    let old_items = index(old);
    let new_items = index(new);
    let find = |items: &[(Pe, Value)], pe: &Pe| {
        items.iter().find(|(p, _)| p == pe).map(|(_, v)| v.clone())
    };
    let mut seen: Vec<Pe> = Vec::new();
    for (pe, _) in old_items.iter().chain(new_items.iter()) {
        if seen.contains(pe) {
            continue;
        }
        seen.push(pe.clone());
        let o = find(&old_items, pe);
        let n = find(&new_items, pe);
        path.push(pe.clone());
        compare_values(o.as_ref(), n.as_ref(), item_field(field), path, c);
        path.pop();
    }
}

/// All paths below a container that appeared or disappeared.
fn walk_one_side(v: &Value, field: Field, path: &mut Vec<Pe>, out: &mut Set) {
    if granular(v, field) {
        let mut below = Set::default();
        fields_of_value(v, field, path, &mut below);
        for p in below.paths() {
            out.insert(&p);
        }
    }
}

/// Apply's merge of the applied configuration into the live object: objects merge field by
/// field, list maps and sets item by item (live-only items keep their place, applied items
/// follow the applied order), everything else is replaced. `null` removes.
pub fn merge(live: Option<&Value>, applied: &Value, field: Field) -> Option<Value> {
    match (live, applied) {
        (_, Value::Null) => None,
        (live, Value::Object(a)) if !field.atomic => {
            let mut out = match live {
                Some(Value::Object(l)) => l.clone(),
                _ => Map::new(),
            };
            for (k, av) in a {
                match merge(out.get(k), av, field.ty.field(k)) {
                    Some(v) => {
                        out.insert(k.clone(), v);
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            Some(Value::Object(out))
        }
        (Some(Value::Array(l)), Value::Array(a))
            if granular(applied, field) && l.iter().all(|i| element_of(i, field).is_some()) =>
        {
            Some(Value::Array(merge_lists(l, a, field)))
        }
        (_, Value::Array(a)) if granular(applied, field) => {
            Some(Value::Array(merge_lists(&[], a, field)))
        }
        _ => Some(applied.clone()),
    }
}

fn merge_lists(live: &[Value], applied: &[Value], field: Field) -> Vec<Value> {
    let item = item_field(field);
    let live_keys: Vec<Option<Pe>> = live.iter().map(|i| element_of(i, field)).collect();
    let applied_keys: Vec<Option<Pe>> = applied.iter().map(|i| element_of(i, field)).collect();
    let merged_item = |k: &Option<Pe>, a: &Value| {
        let l = live_keys
            .iter()
            .position(|lk| lk == k)
            .and_then(|i| live.get(i));
        merge(l, a, item).unwrap_or(Value::Null)
    };
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let mut emitted: Vec<Option<Pe>> = Vec::new();
    let (mut l, mut r) = (0, 0);
    while l < live.len() || r < applied.len() {
        if l < live.len() && r < applied.len() && live_keys[l] == applied_keys[r] {
            out.push(merge_item(live.get(l), &applied[r], item));
            emitted.push(applied_keys[r].clone());
            l += 1;
            r += 1;
            continue;
        }
        if l < live.len() {
            let k = &live_keys[l];
            if !applied_keys.contains(k) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            if emitted.contains(k) || r >= applied.len() {
                l += 1;
                continue;
            }
        }
        if r < applied.len() {
            out.push(merged_item(&applied_keys[r], &applied[r]));
            emitted.push(applied_keys[r].clone());
            r += 1;
        }
    }
    out
}

fn merge_item(live: Option<&Value>, applied: &Value, item: Field) -> Value {
    merge(live, applied, item).unwrap_or(Value::Null)
}

/// Removes the field at `path` from `obj`. Containers left empty by the removal go too when
/// `omit_empty` (Go's `omitempty` drops empty maps and slices from built-in objects), except
/// structs that always exist.
pub fn remove(obj: &mut Value, path: &[Pe], root: Ty, omit_empty: bool) {
    let field = Field {
        ty: root,
        list: ListKind::Atomic,
        atomic: false,
        always_present: true,
    };
    remove_at(obj, path, field, omit_empty);
}

fn remove_at(v: &mut Value, path: &[Pe], field: Field, omit_empty: bool) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (v, first) {
        (Value::Object(map), Pe::Field(name)) => {
            let child_field = field.ty.field(name);
            if rest.is_empty() {
                map.remove(name);
                return;
            }
            let Some(child) = map.get_mut(name) else {
                return;
            };
            remove_at(child, rest, child_field, omit_empty);
            if omit_empty && !child_field.always_present && is_empty_container(child) {
                map.remove(name);
            }
        }
        (Value::Array(items), pe) => {
            let Some(i) = items.iter().position(|item| match pe {
                Pe::Index(_) => false,
                _ => element_of(item, field).as_ref() == Some(pe),
            }) else {
                return;
            };
            if rest.is_empty() {
                items.remove(i);
                return;
            }
            // Key fields identify the item: removing them would orphan what others still own.
            if let (Pe::Key(key), [Pe::Field(name)]) = (pe, rest)
                && key.contains(&format!("\"{name}\":"))
            {
                return;
            }
            remove_at(&mut items[i], rest, item_field(field), omit_empty);
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}
