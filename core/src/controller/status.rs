//! What the controller writes to `Service.status`: the ingress addresses and one condition that
//! says what is happening and why. Pure: builds the patch, or nothing when nothing changed.

use k8s_openapi::api::core::v1::{LoadBalancerIngress, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::provider::{IpMode, LoadBalancerStatus};

/// The one condition frontdesk owns on a Service.
pub const CONDITION_TYPE: &str = "LoadBalancerReady";

pub mod reason {
    /// The cloud load balancer serves and the address is published.
    pub const READY: &str = "Provisioned";
    /// Work is under way (first creation, spec change, cloud still provisioning).
    pub const PROVISIONING: &str = "Provisioning";
    /// The Service asks for something impossible; it must change before we retry.
    pub const INVALID: &str = "InvalidSpec";
    /// Deleting the cloud resources (type changed or Service deleted).
    pub const DELETING: &str = "Deleting";
}

/// The condition we want on the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(ready: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            ready,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Converts a provider status into the Kubernetes shape.
pub fn to_ingress(status: &LoadBalancerStatus) -> Vec<LoadBalancerIngress> {
    status
        .ingress
        .iter()
        .map(|i| LoadBalancerIngress {
            ip: i.ip.map(|ip| ip.to_string()),
            hostname: i.hostname.clone(),
            ip_mode: i.ip.and(i.ip_mode).map(|m| match m {
                IpMode::Vip => "VIP".to_string(),
                IpMode::Proxy => "Proxy".to_string(),
            }),
            ..Default::default()
        })
        .collect()
}

/// Upstream's `LoadBalancerStatusEqual`: same order, ip, hostname and ipMode; ports ignored.
fn ingress_equal(a: &[LoadBalancerIngress], b: &[LoadBalancerIngress]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.ip == y.ip && x.hostname == y.hostname && x.ip_mode == y.ip_mode)
}

/// Conditions other writers own; a merge patch replaces the whole list, so they are resent.
fn other_conditions(svc: &Service) -> Vec<Condition> {
    svc.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != CONDITION_TYPE)
        .collect()
}

pub fn current_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == CONDITION_TYPE)
}

pub fn current_ingress(svc: &Service) -> Vec<LoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
}

/// The merge patch for `/status`, or `None` when the Service already says all of it.
/// `ingress: None` leaves the addresses as they are.
pub fn status_patch(
    svc: &Service,
    ingress: Option<&[LoadBalancerIngress]>,
    condition: Option<&DesiredCondition>,
) -> Option<Value> {
    let mut status = serde_json::Map::new();
    if let Some(wanted) = ingress
        && !ingress_equal(&current_ingress(svc), wanted)
    {
        status.insert("loadBalancer".to_string(), json!({ "ingress": wanted }));
    }
    if let Some(want) = condition {
        let generation = svc.metadata.generation;
        let existing = current_condition(svc);
        let want_status = if want.ready { "True" } else { "False" };
        let unchanged = existing.is_some_and(|c| {
            c.status == want_status
                && c.reason == want.reason
                && c.message == want.message
                && c.observed_generation == generation
        });
        if !unchanged {
            let transition = match existing {
                Some(c) if c.status == want_status => c.last_transition_time.clone(),
                _ => Time(Timestamp::now()),
            };
            let ours = Condition {
                type_: CONDITION_TYPE.to_string(),
                status: want_status.to_string(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation: generation,
                last_transition_time: transition,
            };
            let mut all = other_conditions(svc);
            all.push(ours);
            status.insert("conditions".to_string(), json!(all));
        }
    }
    if status.is_empty() {
        None
    } else {
        Some(json!({ "status": status }))
    }
}

/// The patch that removes everything frontdesk wrote to `/status` (after cleanup of a Service
/// that is no longer a claimed LoadBalancer), or `None` when there is nothing to remove.
pub fn clear_patch(svc: &Service) -> Option<Value> {
    let had_ingress = !current_ingress(svc).is_empty();
    let had_condition = current_condition(svc).is_some();
    if !had_ingress && !had_condition {
        return None;
    }
    let others = other_conditions(svc);
    let conditions = if others.is_empty() {
        Value::Null
    } else {
        json!(others)
    };
    Some(json!({"status": {"loadBalancer": {"ingress": null}, "conditions": conditions}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Ingress;
    use k8s_openapi::api::core::v1::{LoadBalancerStatus as K8sLbStatus, ServiceStatus};

    fn svc_with(ingress: Vec<LoadBalancerIngress>, conditions: Vec<Condition>) -> Service {
        Service {
            metadata: kube::api::ObjectMeta {
                generation: Some(3),
                ..Default::default()
            },
            status: Some(ServiceStatus {
                load_balancer: Some(K8sLbStatus {
                    ingress: Some(ingress),
                }),
                conditions: Some(conditions),
            }),
            ..Default::default()
        }
    }

    fn lb(ip: &str) -> Vec<LoadBalancerIngress> {
        to_ingress(&LoadBalancerStatus {
            ingress: vec![Ingress {
                ip: Some(ip.parse().unwrap()),
                hostname: None,
                ip_mode: Some(IpMode::Vip),
            }],
        })
    }

    #[test]
    fn no_patch_when_nothing_changes() {
        let ready = DesiredCondition::new(true, reason::READY, "ok");
        let first = status_patch(
            &svc_with(vec![], vec![]),
            Some(&lb("203.0.113.5")),
            Some(&ready),
        )
        .unwrap();
        let conds: Vec<Condition> =
            serde_json::from_value(first["status"]["conditions"].clone()).unwrap();
        let svc = svc_with(lb("203.0.113.5"), conds);
        assert_eq!(
            status_patch(&svc, Some(&lb("203.0.113.5")), Some(&ready)),
            None
        );
        // A different address is a change; the condition is untouched.
        let p = status_patch(&svc, Some(&lb("203.0.113.6")), Some(&ready)).unwrap();
        assert!(p["status"].get("conditions").is_none());
        assert_eq!(
            p["status"]["loadBalancer"]["ingress"][0]["ip"],
            "203.0.113.6"
        );
        assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    }

    #[test]
    fn other_conditions_survive_and_transition_time_is_kept() {
        let foreign = Condition {
            type_: "LoadBalancerPortsError".into(),
            status: "False".into(),
            reason: "x".into(),
            message: "y".into(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        };
        let mine = Condition {
            type_: CONDITION_TYPE.into(),
            status: "False".into(),
            reason: reason::PROVISIONING.into(),
            message: "creating".into(),
            observed_generation: Some(3),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        };
        let svc = svc_with(vec![], vec![foreign.clone(), mine]);
        let want = DesiredCondition::new(false, "Throttled", "slow down");
        let p = status_patch(&svc, None, Some(&want)).unwrap();
        let conds: Vec<Condition> =
            serde_json::from_value(p["status"]["conditions"].clone()).unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0], foreign);
        // Still False: the transition time does not move.
        assert_eq!(conds[1].last_transition_time, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(conds[1].reason, "Throttled");
    }

    #[test]
    fn clear_removes_only_ours() {
        assert_eq!(clear_patch(&svc_with(vec![], vec![])), None);
        let p = clear_patch(&svc_with(lb("203.0.113.1"), vec![])).unwrap();
        assert_eq!(p["status"]["loadBalancer"]["ingress"], Value::Null);
    }
}
