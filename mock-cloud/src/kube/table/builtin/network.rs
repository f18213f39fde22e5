//! Service, Endpoints and EndpointSlice printers.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Now, arr, format_labels, int_at, name, or_none};
use crate::kube::table::{object_age, str_at};

/// External-IP cell (wide form: never clipped).
fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = arr(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(obj, "/spec/type") {
        "" | "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            // A sorted set, like upstream's sets.String.
            let lb: BTreeSet<&str> = arr(obj, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    let ip = str_at(i, "/ip");
                    let host = str_at(i, "/hostname");
                    if !ip.is_empty() {
                        Some(ip)
                    } else if !host.is_empty() {
                        Some(host)
                    } else {
                        None
                    }
                })
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(obj: &Value) -> String {
    let pieces: Vec<String> = arr(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    or_none(pieces.join(","))
}

pub(super) fn service_cells(obj: &Value, now: Now) -> Vec<Value> {
    let svc_type = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cluster_ip = arr(obj, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_at(obj, "/spec/clusterIP"))
        .to_string();
    vec![
        name(obj),
        json!(svc_type),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(obj)),
        json!(service_ports(obj)),
        json!(object_age(obj, now)),
        json!(format_labels(obj.pointer("/spec/selector"))),
    ]
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Up to three entries, then ` + N more...`; `empty` when there are none.
fn list_with_more(list: Vec<String>, count: usize, empty: &str) -> String {
    const MAX: usize = 3;
    if count > MAX {
        return format!("{} + {} more...", list[..MAX].join(","), count - MAX);
    }
    if list.is_empty() {
        empty.to_string()
    } else {
        list.join(",")
    }
}

pub(super) fn endpoints_cells(obj: &Value, now: Now) -> Vec<Value> {
    let subsets = arr(obj, "/subsets");
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list = Vec::new();
        for ss in subsets {
            let addrs: Vec<&str> = arr(ss, "/addresses")
                .iter()
                .map(|a| str_at(a, "/ip"))
                .collect();
            let ports = arr(ss, "/ports");
            if ports.is_empty() {
                list.extend(addrs.iter().map(|a| a.to_string()));
            } else {
                for p in ports {
                    list.extend(addrs.iter().map(|a| join_host_port(a, int_at(p, "/port"))));
                }
            }
        }
        let count = list.len();
        list_with_more(list, count, "")
    };
    vec![name(obj), json!(cell), json!(object_age(obj, now))]
}

pub(super) fn endpoint_slice_cells(obj: &Value, now: Now) -> Vec<Value> {
    let ports: Vec<String> = arr(obj, "/ports")
        .iter()
        .map(|p| {
            match (
                p.get("port").and_then(Value::as_i64),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addrs: Vec<String> = arr(obj, "/endpoints")
        .iter()
        .flat_map(|e| {
            arr(e, "/addresses")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let (pc, ac) = (ports.len(), addrs.len());
    vec![
        name(obj),
        json!(str_at(obj, "/addressType")),
        json!(list_with_more(ports, pc, "<unset>")),
        json!(list_with_more(addrs, ac, "<unset>")),
        json!(object_age(obj, now)),
    ]
}
