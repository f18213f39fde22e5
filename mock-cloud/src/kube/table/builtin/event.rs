//! Event printers (core and events.k8s.io share one: upstream stores them together).

use serde_json::{Value, json};

use super::{Now, int_at, name};
use crate::kube::table::{str_at, timestamp_since};

/// `formatEventSource`: component (or reportingController), then `, host` if any.
fn event_source(component: &str, host: &str) -> String {
    if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    }
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// Core `Event` cells, wide form.
pub(super) fn event_cells(obj: &Value, now: Now) -> Vec<Value> {
    let present = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let first_seen = if present("/firstTimestamp") {
        timestamp_since(obj.pointer("/firstTimestamp"), now)
    } else {
        timestamp_since(obj.pointer("/eventTime"), now)
    };
    let mut last_seen = if present("/lastTimestamp") {
        timestamp_since(obj.pointer("/lastTimestamp"), now)
    } else {
        first_seen.clone()
    };
    let mut count = int_at(obj, "/count");
    if obj.get("series").is_some_and(|s| !s.is_null()) {
        last_seen = timestamp_since(obj.pointer("/series/lastObservedTime"), now);
        count = int_at(obj, "/series/count");
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = str_at(obj, "/involvedObject/kind").to_lowercase();
    let target_name = str_at(obj, "/involvedObject/name");
    let target = if target_name.is_empty() {
        kind
    } else {
        format!("{kind}/{target_name}")
    };
    let source = event_source(
        first_non_empty(
            str_at(obj, "/source/component"),
            str_at(obj, "/reportingComponent"),
        ),
        first_non_empty(
            str_at(obj, "/source/host"),
            str_at(obj, "/reportingInstance"),
        ),
    );
    vec![
        json!(last_seen),
        json!(str_at(obj, "/type")),
        json!(str_at(obj, "/reason")),
        json!(target),
        json!(str_at(obj, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(obj, "/message").trim()),
        json!(first_seen),
        json!(count),
        name(obj),
    ]
}

/// `events.k8s.io/v1` Events are the same objects upstream (one storage), printed by the core
/// printer after conversion; map the renamed fields back and reuse it.
pub(super) fn events_v1_cells(obj: &Value, now: Now) -> Vec<Value> {
    let get = |k: &str| obj.get(k).cloned().unwrap_or(Value::Null);
    let core = json!({
        "metadata": get("metadata"),
        "involvedObject": get("regarding"),
        "reason": get("reason"),
        "message": get("note"),
        "type": get("type"),
        "source": get("deprecatedSource"),
        "firstTimestamp": get("deprecatedFirstTimestamp"),
        "lastTimestamp": get("deprecatedLastTimestamp"),
        "count": get("deprecatedCount"),
        "eventTime": get("eventTime"),
        "series": get("series"),
        "reportingComponent": get("reportingController"),
        "reportingInstance": get("reportingInstance"),
    });
    event_cells(&core, now)
}
