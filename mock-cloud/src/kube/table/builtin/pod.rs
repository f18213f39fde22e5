//! The Pod printer (`printPod`): readiness, the aggregate status reason, restarts.

use serde_json::{Value, json};

use super::{Now, arr, int_at, name, or_none};
use crate::kube::table::{object_age, str_at};

pub(super) fn pod_conditions(obj: &Value) -> Option<Value> {
    let (reason, message) = match str_at(obj, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

fn is_restartable_init(obj: &Value, container: &str) -> bool {
    arr(obj, "/spec/initContainers")
        .iter()
        .any(|c| str_at(c, "/name") == container && str_at(c, "/restartPolicy") == "Always")
}

pub(super) fn pod_cells(obj: &Value, now: Now) -> Vec<Value> {
    let mut total = arr(obj, "/spec/containers").len();
    total += arr(obj, "/spec/initContainers")
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always")
        .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut last_restart: Option<String> = None;
    let note_restart = |status: &Value, last: &mut Option<String>| {
        if let Some(t) = status
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && last.as_deref().is_none_or(|l| l < t)
        {
            *last = Some(t.to_string());
        }
    };
    let mut reason = str_at(obj, "/status/phase").to_string();
    if let Some(r) = obj
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        reason = r.to_string();
    }
    if arr(obj, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_statuses = arr(obj, "/status/initContainerStatuses");
    let init_count = arr(obj, "/spec/initContainers").len();
    let mut initializing = false;
    let mut sidecar_restarts = 0i64;
    let mut sidecar_last: Option<String> = None;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int_at(c, "/restartCount");
        note_restart(c, &mut last_restart);
        let sidecar = is_restartable_init(obj, str_at(c, "/name"));
        if sidecar {
            sidecar_restarts += int_at(c, "/restartCount");
            note_restart(c, &mut sidecar_last);
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = str_at(c, "/state/waiting/reason");
        if terminated.is_some() && int_at(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = str_at(t, "/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if int_at(t, "/signal") != 0 {
                format!("Init:Signal:{}", int_at(t, "/signal"))
            } else {
                format!("Init:ExitCode:{}", int_at(t, "/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{init_count}");
        }
        initializing = true;
        break;
    }

    let initialized = arr(obj, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "Initialized" && str_at(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = sidecar_last;
        let mut has_running = false;
        for c in arr(obj, "/status/containerStatuses").iter().rev() {
            restarts += int_at(c, "/restartCount");
            note_restart(c, &mut last_restart);
            let waiting = str_at(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                let r = str_at(t, "/reason");
                reason = if !r.is_empty() {
                    r.to_string()
                } else if int_at(t, "/signal") != 0 {
                    format!("Signal:{}", int_at(t, "/signal"))
                } else {
                    format!("ExitCode:{}", int_at(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(obj, "/status/conditions")
                .iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let phase = str_at(obj, "/status/phase");
    if deleting && str_at(obj, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match &last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", crate::kube::table::age(t, now)),
        _ => restarts.to_string(),
    };
    let ip = arr(obj, "/status/podIPs")
        .first()
        .map(|p| str_at(p, "/ip").to_string())
        .unwrap_or_else(|| str_at(obj, "/status/podIP").to_string());
    let gates = arr(obj, "/spec/readinessGates");
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(obj, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                conds
                    .iter()
                    .find(|c| str_at(c, "/type") == str_at(g, "/conditionType"))
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(obj),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(object_age(obj, now)),
        json!(or_none(ip)),
        json!(or_none(str_at(obj, "/spec/nodeName").to_string())),
        json!(or_none(
            str_at(obj, "/status/nominatedNodeName").to_string()
        )),
        json!(gates_cell),
    ]
}
