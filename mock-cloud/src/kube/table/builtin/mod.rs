//! Printers of the built-in kinds, after upstream `pkg/printers/internalversion/printers.go`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

mod event;
mod network;
mod pod;

use event::{event_cells, events_v1_cells};
use network::{endpoint_slice_cells, endpoints_cells, service_cells};
use pod::{pod_cells, pod_conditions};

use super::{AGE_COLUMN, Column, NAME_COLUMN, desc, object_age, str_at};

type Now = DateTime<Utc>;
type CellsFn = fn(&Value, Now) -> Vec<Value>;

pub(super) struct Printer {
    pub columns: &'static [Column],
    pub cells: CellsFn,
    /// Row conditions (upstream marks finished pods `Completed`).
    pub conditions: fn(&Value) -> Option<Value>,
}

const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    "Names of each container in the template.",
)
.wide();
const IMAGES: Column = Column::new(
    "Images",
    "string",
    "Images referenced by each container in the template.",
)
.wide();

static POD: [Column; 9] = [
    NAME_COLUMN,
    Column::new(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::new(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    Column::new(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE_COLUMN,
    Column::new("IP", "string", desc::POD_STATUS_POD_IP).wide(),
    Column::new("Node", "string", desc::POD_SPEC_NODE_NAME).wide(),
    Column::new(
        "Nominated Node",
        "string",
        desc::POD_STATUS_NOMINATED_NODE_NAME,
    )
    .wide(),
    Column::new("Readiness Gates", "string", desc::POD_SPEC_READINESS_GATES).wide(),
];

static SERVICE: [Column; 7] = [
    NAME_COLUMN,
    Column::new("Type", "string", desc::SERVICE_SPEC_TYPE),
    Column::new("Cluster-IP", "string", desc::SERVICE_SPEC_CLUSTER_IP),
    Column::new("External-IP", "string", desc::SERVICE_SPEC_EXTERNAL_IPS),
    Column::new("Port(s)", "string", desc::SERVICE_SPEC_PORTS),
    AGE_COLUMN,
    Column::new("Selector", "string", desc::SERVICE_SPEC_SELECTOR).wide(),
];

static ENDPOINTS: [Column; 3] = [
    NAME_COLUMN,
    Column::new("Endpoints", "string", desc::ENDPOINTS_SUBSETS),
    AGE_COLUMN,
];

static ENDPOINT_SLICE: [Column; 5] = [
    NAME_COLUMN,
    Column::new("AddressType", "string", desc::ENDPOINT_SLICE_ADDRESS_TYPE),
    Column::new("Ports", "string", desc::ENDPOINT_SLICE_PORTS),
    Column::new("Endpoints", "string", desc::ENDPOINT_SLICE_ENDPOINTS),
    AGE_COLUMN,
];

static EVENT: [Column; 10] = [
    Column::new("Last Seen", "string", desc::EVENT_LAST_TIMESTAMP),
    Column::new("Type", "string", desc::EVENT_TYPE),
    Column::new("Reason", "string", desc::EVENT_REASON),
    Column::new("Object", "string", desc::EVENT_INVOLVED_OBJECT),
    Column::new("Subobject", "string", desc::OBJECT_REFERENCE_FIELD_PATH).wide(),
    Column::new("Source", "string", desc::EVENT_SOURCE).wide(),
    Column::new("Message", "string", desc::EVENT_MESSAGE),
    Column::new("First Seen", "string", desc::EVENT_FIRST_TIMESTAMP).wide(),
    Column::new("Count", "string", desc::EVENT_COUNT).wide(),
    NAME_COLUMN.wide(),
];

static NAMESPACE: [Column; 3] = [
    NAME_COLUMN,
    Column::new("Status", "string", "The status of the namespace"),
    AGE_COLUMN,
];

static CONFIG_MAP: [Column; 3] = [
    NAME_COLUMN,
    Column::new("Data", "string", desc::CONFIG_MAP_DATA),
    AGE_COLUMN,
];

static SECRET: [Column; 4] = [
    NAME_COLUMN,
    Column::new("Type", "string", desc::SECRET_TYPE),
    Column::new("Data", "string", desc::SECRET_DATA),
    AGE_COLUMN,
];

static SERVICE_ACCOUNT: [Column; 3] = [
    NAME_COLUMN,
    Column::new("Secrets", "string", desc::SERVICE_ACCOUNT_SECRETS),
    AGE_COLUMN,
];

static NODE: [Column; 10] = [
    NAME_COLUMN,
    Column::new("Status", "string", "The status of the node"),
    Column::new("Roles", "string", "The roles of the node"),
    AGE_COLUMN,
    Column::new("Version", "string", desc::NODE_SYSTEM_INFO_KUBELET_VERSION),
    Column::new("Internal-IP", "string", desc::NODE_STATUS_ADDRESSES).wide(),
    Column::new("External-IP", "string", desc::NODE_STATUS_ADDRESSES).wide(),
    Column::new("OS-Image", "string", desc::NODE_SYSTEM_INFO_OS_IMAGE).wide(),
    Column::new(
        "Kernel-Version",
        "string",
        desc::NODE_SYSTEM_INFO_KERNEL_VERSION,
    )
    .wide(),
    Column::new(
        "Container-Runtime",
        "string",
        desc::NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
    )
    .wide(),
];

static DEPLOYMENT: [Column; 8] = [
    NAME_COLUMN,
    Column::new("Ready", "string", "Number of the pod with ready state"),
    Column::new(
        "Up-to-date",
        "string",
        desc::DEPLOYMENT_STATUS_UPDATED_REPLICAS,
    ),
    Column::new(
        "Available",
        "string",
        desc::DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
    ),
    AGE_COLUMN,
    CONTAINERS,
    IMAGES,
    Column::new("Selector", "string", desc::DEPLOYMENT_SPEC_SELECTOR).wide(),
];

static LEASE: [Column; 3] = [
    NAME_COLUMN,
    Column::new("Holder", "string", desc::LEASE_SPEC_HOLDER_IDENTITY),
    AGE_COLUMN,
];

/// Upstream's default convertor, used for kinds without a printer (CRDs among them).
static DEFAULT: [Column; 2] = [
    NAME_COLUMN,
    Column::new("Created At", "date", desc::OBJECT_META_CREATION_TIMESTAMP),
];

fn no_conditions(_: &Value) -> Option<Value> {
    None
}

pub(super) fn printer_for(group: &str, kind: &str) -> Printer {
    let (columns, cells): (&'static [Column], CellsFn) = match (group, kind) {
        ("", "Pod") => {
            return Printer {
                columns: &POD,
                cells: pod_cells,
                conditions: pod_conditions,
            };
        }
        ("", "Service") => (&SERVICE, service_cells),
        ("", "Endpoints") => (&ENDPOINTS, endpoints_cells),
        ("discovery.k8s.io", "EndpointSlice") => (&ENDPOINT_SLICE, endpoint_slice_cells),
        ("", "Event") => (&EVENT, event_cells),
        ("events.k8s.io", "Event") => (&EVENT, events_v1_cells),
        ("", "Namespace") => (&NAMESPACE, namespace_cells),
        ("", "ConfigMap") => (&CONFIG_MAP, config_map_cells),
        ("", "Secret") => (&SECRET, secret_cells),
        ("", "ServiceAccount") => (&SERVICE_ACCOUNT, service_account_cells),
        ("", "Node") => (&NODE, node_cells),
        ("apps", "Deployment") => (&DEPLOYMENT, deployment_cells),
        ("coordination.k8s.io", "Lease") => (&LEASE, lease_cells),
        _ => (&DEFAULT, default_cells),
    };
    Printer {
        columns,
        cells,
        conditions: no_conditions,
    }
}

pub(super) fn name(obj: &Value) -> Value {
    json!(str_at(obj, "/metadata/name"))
}

pub(super) fn len_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

pub(super) fn arr<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(super) fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "<none>".into();
    };
    let mut pairs: Vec<(&String, &str)> = m
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or_none(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key; an absent
/// selector selects nothing (`<none>`), an empty one everything (``).
fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "<none>".into();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for expr in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(expr, "/key");
        let mut values: Vec<&str> = arr(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match str_at(expr, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<invalid>".into(),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

fn containers_and_images(obj: &Value, pointer: &str) -> (String, String) {
    let cs = arr(obj, pointer);
    let names: Vec<&str> = cs.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn namespace_cells(obj: &Value, now: Now) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, "/status/phase")),
        json!(object_age(obj, now)),
    ]
}

fn config_map_cells(obj: &Value, now: Now) -> Vec<Value> {
    let n = len_of(obj.get("data")) + len_of(obj.get("binaryData"));
    vec![name(obj), json!(n), json!(object_age(obj, now))]
}

fn secret_cells(obj: &Value, now: Now) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, "/type")),
        json!(len_of(obj.get("data"))),
        json!(object_age(obj, now)),
    ]
}

fn service_account_cells(obj: &Value, now: Now) -> Vec<Value> {
    vec![
        name(obj),
        json!(len_of(obj.get("secrets"))),
        json!(object_age(obj, now)),
    ]
}

fn node_cells(obj: &Value, now: Now) -> Vec<Value> {
    let mut status: Vec<String> = arr(obj, "/status/conditions")
        .iter()
        .filter(|c| str_at(c, "/type") == "Ready")
        .take(1)
        .map(|c| {
            if str_at(c, "/status") == "True" {
                "Ready".into()
            } else {
                "NotReady".into()
            }
        })
        .collect();
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    if let Some(Value::Object(labels)) = obj.pointer("/metadata/labels") {
        for (k, v) in labels {
            if let Some(role) = k
                .strip_prefix("node-role.kubernetes.io/")
                .filter(|r| !r.is_empty())
            {
                roles.insert(role.to_string());
            } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
                roles.insert(v.as_str().unwrap_or_default().to_string());
            }
        }
    }
    let address = |t: &str| {
        arr(obj, "/status/addresses")
            .iter()
            .find(|a| str_at(a, "/type") == t)
            .map(|a| str_at(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |k: &str| {
        let v = str_at(obj, &format!("/status/nodeInfo/{k}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name(obj),
        json!(status.join(",")),
        json!(or_none(roles.into_iter().collect::<Vec<_>>().join(","))),
        json!(object_age(obj, now)),
        json!(str_at(obj, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn deployment_cells(obj: &Value, now: Now) -> Vec<Value> {
    let desired = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(obj, "/spec/template/spec/containers");
    vec![
        name(obj),
        json!(format!(
            "{}/{desired}",
            int_at(obj, "/status/readyReplicas")
        )),
        json!(int_at(obj, "/status/updatedReplicas")),
        json!(int_at(obj, "/status/availableReplicas")),
        json!(object_age(obj, now)),
        json!(containers),
        json!(images),
        json!(format_label_selector(obj.pointer("/spec/selector"))),
    ]
}

fn lease_cells(obj: &Value, now: Now) -> Vec<Value> {
    vec![
        name(obj),
        json!(str_at(obj, "/spec/holderIdentity")),
        json!(object_age(obj, now)),
    ]
}

/// Upstream's default convertor: the creation time itself in RFC 3339, not an age.
fn default_cells(obj: &Value, _now: Now) -> Vec<Value> {
    let created = str_at(obj, "/metadata/creationTimestamp");
    let cell = DateTime::parse_from_rfc3339(created)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string());
    vec![name(obj), json!(cell)]
}

#[cfg(test)]
pub(super) fn label_selector_for_tests(sel: &Value) -> String {
    format_label_selector(Some(sel))
}
