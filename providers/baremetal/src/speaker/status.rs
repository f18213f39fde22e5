//! The announcing node, made visible: a Service condition and an Event, written only by the
//! node that wins the address and only when what they say changes.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info};

use frontdesk_core::controller::events::{EventType, Recorder, SPEAKER_COMPONENT};

/// Condition type on `Service.status.conditions`.
pub const CONDITION: &str = "L2Announced";
pub const REASON: &str = "Announcing";
/// MetalLB's event reason, so existing alerts and habits carry over.
pub const EVENT_REASON: &str = "nodeAssigned";

pub fn message(node: &str) -> String {
    format!("announcing from node {node} with protocol layer2")
}

/// Does the Service already say `node` announces it?
pub fn says(svc: &Service, node: &str) -> bool {
    let want = message(node);
    svc.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == CONDITION && c.status == "True" && c.message == want)
        })
}

/// The strategic-merge patch setting our condition (merge key `type`, so the controller's
/// conditions stay).
pub fn condition_patch(svc: &Service, node: &str, now: Timestamp) -> Value {
    json!({"status": {"conditions": [{
        "type": CONDITION,
        "status": "True",
        "reason": REASON,
        "message": message(node),
        "lastTransitionTime": now.to_string(),
        "observedGeneration": svc.metadata.generation.unwrap_or(0),
    }]}})
}

/// The patch saying nobody announces the Service any more, and why (`NoPool`,
/// `NoAdvertisement`, `NoEndpoints`, `NoEligibleNode`).
pub fn withdrawn_patch(svc: &Service, reason: &str, now: Timestamp) -> Value {
    json!({"status": {"conditions": [{
        "type": CONDITION,
        "status": "False",
        "reason": reason,
        "message": format!("not announced: {}", explain(reason)),
        "lastTransitionTime": now.to_string(),
        "observedGeneration": svc.metadata.generation.unwrap_or(0),
    }]}})
}

fn explain(reason: &str) -> &'static str {
    match reason {
        "NoPool" => "the address is in no IPAddressPool",
        "NoAdvertisement" => "no L2Advertisement covers the address's pool",
        "NoEndpoints" => "no ready endpoint (for externalTrafficPolicy Local: on an eligible node)",
        _ => "no node is selected by an L2Advertisement, included and running a live speaker",
    }
}

pub struct Announcer {
    client: Client,
    events: Recorder,
    node: String,
}

impl Announcer {
    pub fn new(client: Client, node: &str) -> Self {
        Self {
            events: Recorder::for_component(client.clone(), node, SPEAKER_COMPONENT),
            client,
            node: node.to_string(),
        }
    }

    /// This node's condition on a Service nobody announces any more: say why. (Only the node
    /// the condition names writes this, so one speaker does.)
    pub async fn withdraw(&self, svc: &Service, reason: &str) -> Result<(), kube::Error> {
        let api: Api<Service> =
            Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
        let patch = withdrawn_patch(svc, reason, Timestamp::now());
        match api
            .patch_status(
                &svc.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Write condition + Event for a Service this node now announces, unless the Service
    /// already says so. Returns whether it wrote.
    pub async fn record(&self, svc: &Service) -> Result<bool, kube::Error> {
        if says(svc, &self.node) {
            return Ok(false);
        }
        let ns = svc.namespace().unwrap_or_default();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let patch = condition_patch(svc, &self.node, Timestamp::now());
        match api
            .patch_status(
                &svc.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                debug!(service = %svc.name_any(), "service gone before its condition was written");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        self.events
            .publish(svc, EventType::Normal, EVENT_REASON, &message(&self.node))
            .await;
        info!(service = %format!("{ns}/{}", svc.name_any()), node = %self.node, "announcing");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn condition_is_written_only_when_it_names_another_node() {
        let mut svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 3},
            "status": {"conditions": [
                {"type": "LoadBalancerReady", "status": "True", "reason": "Ready",
                 "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}
        }))
        .unwrap();
        assert!(!says(&svc, "node-1"));
        let patch = condition_patch(&svc, "node-1", Timestamp::UNIX_EPOCH);
        let cond = &patch["status"]["conditions"][0];
        assert_eq!(cond["type"], CONDITION);
        assert_eq!(cond["observedGeneration"], 3);
        assert_eq!(
            cond["message"],
            "announcing from node node-1 with protocol layer2"
        );
        // Apply it the way the API server would (merge key `type`).
        let c: k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition =
            serde_json::from_value(cond.clone()).unwrap();
        svc.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(c);
        assert!(says(&svc, "node-1"));
        assert!(!says(&svc, "node-2"));
    }

    #[test]
    fn withdrawal_says_why_for_every_reason() {
        let svc = Service::default();
        for (reason, words) in [
            ("NoPool", "no IPAddressPool"),
            ("NoAdvertisement", "no L2Advertisement"),
            ("NoEndpoints", "no ready endpoint"),
            ("NoEligibleNode", "live speaker"),
        ] {
            let p = withdrawn_patch(&svc, reason, Timestamp::UNIX_EPOCH);
            let c = &p["status"]["conditions"][0];
            assert_eq!(
                (c["status"].as_str(), c["reason"].as_str()),
                (Some("False"), Some(reason))
            );
            assert!(
                c["message"].as_str().unwrap().contains(words),
                "{reason}: {c}"
            );
        }
    }
}
