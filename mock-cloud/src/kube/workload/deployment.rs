//! The Deployment controller's status bookkeeping: counts and the Available / Progressing
//! conditions, from the pods the Deployment will have after this reconcile.

use serde_json::{Map, Value, json};

use super::pods::{Desired, TEMPLATE_HASH_LABEL, controlling_deployment, update_status};
use super::{Action, arr, condition_true, deleting, labels, str_at};

/// The Deployment's status given the pods it will have; `None` when it already says so.
pub(super) fn status(d: &Desired, projected: &[Value], now: &str) -> Option<Action> {
    let deploy = d.deployment;
    let dname = str_at(deploy, "/metadata/name");
    let owned: Vec<&Value> = projected
        .iter()
        .filter(|p| !deleting(p) && controlling_deployment(p) == Some(dname))
        .collect();
    let want = d.names.len() as i64;
    let replicas = owned.len() as i64;
    let updated = owned
        .iter()
        .filter(|p| labels(p).get(TEMPLATE_HASH_LABEL).and_then(Value::as_str) == Some(&d.hash))
        .count() as i64;
    let ready = owned.iter().filter(|p| condition_true(p, "Ready")).count() as i64;
    let available = ready;
    let old = deploy.get("status").cloned().unwrap_or_else(|| json!({}));
    let rs_name = format!("{dname}-{}", d.hash);
    let complete = available >= want && updated >= want && replicas == want;
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        let prev = arr(&old, "/conditions")
            .iter()
            .find(|c| str_at(c, "/type") == type_)
            .cloned();
        let same_status = prev
            .as_ref()
            .is_some_and(|c| str_at(c, "/status") == status);
        let same_all = same_status
            && prev.as_ref().is_some_and(|c| {
                str_at(c, "/reason") == reason && str_at(c, "/message") == message
            });
        let keep = |field: &str, keep: bool| {
            prev.as_ref()
                .filter(|_| keep)
                .map(|c| str_at(c, field).to_string())
                .filter(|t| !t.is_empty())
        };
        json!({
            "type": type_,
            "status": status,
            "lastUpdateTime": keep("/lastUpdateTime", same_all).unwrap_or_else(|| now.to_string()),
            "lastTransitionTime": keep("/lastTransitionTime", same_status).unwrap_or_else(|| now.to_string()),
            "reason": reason,
            "message": message,
        })
    };
    let available_cond = if available >= want {
        cond(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let progressing = if complete {
        cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        cond(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let mut status = Map::new();
    if let Some(g) = deploy
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
    {
        status.insert("observedGeneration".into(), json!(g));
    }
    // Zero counts are omitted on the wire upstream (`omitempty`).
    for (k, v) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", (want - available).max(0)),
    ] {
        if v != 0 {
            status.insert(k.into(), json!(v));
        }
    }
    status.insert("conditions".into(), json!([available_cond, progressing]));
    let status = Value::Object(status);
    if old == status {
        return None;
    }
    let mut next = deploy.clone();
    next["status"] = status;
    Some(update_status("apps".into(), "deployments".into(), next))
}
