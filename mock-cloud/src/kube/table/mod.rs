//! Server-side printing: `meta.k8s.io/v1` `Table` replies for `kubectl get`.
//!
//! Columns and cells follow upstream's printers (`pkg/printers/internalversion`) for the kinds
//! the sandbox serves, the CRD table convertor for custom resources, and upstream's default
//! convertor (`Name`, `Created At`) for everything else. Like the real apiserver, cells are
//! always generated in wide form; kubectl hides priority-1 columns unless `-o wide`.

mod builtin;
mod custom;
mod desc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::resources::ResourceInfo;

/// One column definition as it goes on the wire (every field present, like upstream).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i64,
}

impl Column {
    pub(crate) const fn new(
        name: &'static str,
        type_: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }

    pub(crate) const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    pub(crate) const fn format(mut self, format: &'static str) -> Self {
        self.format = format;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub(crate) const NAME_COLUMN: Column =
    Column::new("Name", "string", desc::OBJECT_META_NAME).format("name");
pub(crate) const AGE_COLUMN: Column =
    Column::new("Age", "string", desc::OBJECT_META_CREATION_TIMESTAMP);

/// Build the Table for `objects` (already filtered and paged by the caller).
///
/// `include_object`: `includeObject=Object` (kubectl `--sort-by`) puts the full object in each
/// row instead of its `PartialObjectMetadata`. `with_columns = false` leaves
/// `columnDefinitions` null, which is what upstream sends on every watch event after the first.
pub fn to_table(
    info: &ResourceInfo,
    objects: &[&Value],
    resource_version: &str,
    include_object: bool,
    with_columns: bool,
) -> Value {
    to_table_at(
        info,
        objects,
        resource_version,
        include_object,
        with_columns,
        Utc::now(),
    )
}

/// [`to_table`] at a given time (ages are relative to `now`).
pub(crate) fn to_table_at(
    info: &ResourceInfo,
    objects: &[&Value],
    resource_version: &str,
    include_object: bool,
    with_columns: bool,
    now: DateTime<Utc>,
) -> Value {
    let (columns, rows): (Vec<Value>, Vec<Value>) = if info.custom {
        let cols = custom::columns(info);
        let rows = objects
            .iter()
            .map(|o| row(info, o, custom::cells(&cols, o, now), include_object))
            .collect();
        (cols.iter().map(custom::CrColumn::to_json).collect(), rows)
    } else {
        let printer = builtin::printer_for(&info.group, &info.kind);
        let rows = objects
            .iter()
            .map(|o| {
                let mut r = row(info, o, (printer.cells)(o, now), include_object);
                if let Some(conds) = (printer.conditions)(o) {
                    r["conditions"] = conds;
                }
                r
            })
            .collect();
        (printer.columns.iter().map(Column::to_json).collect(), rows)
    };
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(resource_version));
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { Value::Array(columns) } else { Value::Null },
        "rows": rows,
    })
}

fn row(info: &ResourceInfo, obj: &Value, cells: Vec<Value>, include_object: bool) -> Value {
    let object = if include_object {
        let mut full = obj.clone();
        // List items may lack type meta; a row object must say what it is.
        if let Value::Object(m) = &mut full {
            m.entry("apiVersion")
                .or_insert_with(|| json!(info.api_version()));
            m.entry("kind").or_insert_with(|| json!(info.kind));
        }
        full
    } else {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    };
    json!({"cells": cells, "object": object})
}

/// kubectl's `HumanDuration` of the time since `created_rfc3339` (upstream
/// `k8s.io/apimachinery/pkg/util/duration`): exact seconds below 2 minutes, `XmYs` below 10
/// minutes, whole minutes below 3 hours, `XhYm` below 8 hours, hours below 2 days, `XdYh` below
/// 8 days, days below 2 years, `XyYd` below 8 years, then years. An unparsable or missing
/// timestamp is `<unknown>`; more than a second in the future is `<invalid>`.
pub fn age(created_rfc3339: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(created_rfc3339) {
        Ok(t) => human_duration(now.signed_duration_since(t.with_timezone(&Utc))),
        Err(_) => "<unknown>".to_string(),
    }
}

/// `HumanDuration` itself, on a signed duration.
pub(crate) fn human_duration(d: chrono::TimeDelta) -> String {
    // Go truncates toward zero (`int(d.Seconds())`), and so does num_seconds.
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age cell of an object: `<unknown>` when it has no creation timestamp.
pub(crate) fn object_age(obj: &Value, now: DateTime<Utc>) -> String {
    timestamp_since(obj.pointer("/metadata/creationTimestamp"), now)
}

/// `translateTimestampSince` on an optional JSON timestamp.
pub(crate) fn timestamp_since(ts: Option<&Value>, now: DateTime<Utc>) -> String {
    match ts.and_then(Value::as_str) {
        Some(s) if !s.is_empty() => age(s, now),
        _ => "<unknown>".to_string(),
    }
}

/// String at a JSON pointer, or "".
pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
