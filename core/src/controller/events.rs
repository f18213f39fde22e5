//! Events on Services, with the upstream service controller's reasons and messages.
//!
//! Written as core/v1 Events (what `kubectl describe` and `kubectl get events` read). Repeats of
//! the same reason and message on the same object bump `count` and `lastTimestamp` instead of
//! creating a new Event, as client-go's recorder does.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;
use serde_json::json;
use tracing::{debug, warn};

type EventKey = (String, String, String);

/// The controller's event source; the speaker reports as [`SPEAKER_COMPONENT`].
pub const COMPONENT: &str = "frontdesk-controller";
pub const SPEAKER_COMPONENT: &str = "frontdesk-speaker";

pub const ENSURING: &str = "EnsuringLoadBalancer";
pub const ENSURED: &str = "EnsuredLoadBalancer";
pub const SYNC_FAILED: &str = "SyncLoadBalancerFailed";
pub const DELETING: &str = "DeletingLoadBalancer";
pub const DELETED: &str = "DeletedLoadBalancer";
pub const UPDATED: &str = "UpdatedLoadBalancer";
pub const UPDATE_FAILED: &str = "UpdateLoadBalancerFailed";
pub const UNAVAILABLE: &str = "UnAvailableLoadBalancer";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Cap on remembered (object, reason, message) triples; beyond it the memory is dropped and a
/// repeat just creates a fresh Event.
const CACHE_LIMIT: usize = 20_000;

pub struct Recorder {
    client: Client,
    host: String,
    component: &'static str,
    /// (object uid, reason, message) -> (event name, count).
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: Client, host: &str) -> Self {
        Self::for_component(client, host, COMPONENT)
    }

    /// A recorder whose Events name `component` as their source (`kubectl describe`'s From).
    pub fn for_component(client: Client, host: &str, component: &'static str) -> Self {
        Self {
            client,
            host: host.to_string(),
            component,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Record an event; failures are logged, never returned (an event is not worth a retry).
    pub async fn publish(&self, svc: &Service, kind: EventType, reason: &str, message: &str) {
        let ns = svc.namespace().unwrap_or_else(|| "default".to_string());
        let uid = svc.uid().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Time(Timestamp::now());
        let cache_key = (uid.clone(), reason.to_string(), message.to_string());
        let previous = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.get(&cache_key).cloned()
        };
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(cache_key, name, count + 1);
                    return;
                }
                Err(e) => debug!(error = %e, "event aggregation failed; creating a new event"),
            }
        }
        let suffix: u64 = rand::rng().random();
        let name = format!("{}.{:016x}", svc.name_any(), suffix);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Service".to_string()),
                name: Some(svc.name_any()),
                namespace: Some(ns),
                uid: Some(uid),
                resource_version: svc.resource_version(),
                ..Default::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(kind.as_str().to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(self.host.clone()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.remember(cache_key, name, 1),
            Err(e) => warn!(error = %e, reason, "could not record event"),
        }
    }

    fn remember(&self, key: EventKey, name: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CACHE_LIMIT {
            seen.clear();
        }
        seen.insert(key, (name, count));
    }
}

/// Upstream's node list in `UpdateLoadBalancerFailed`: the first 20 names, sorted, then
/// `<K more>`, rendered like a Go slice.
pub fn node_names_for_event(mut names: Vec<String>) -> String {
    const LIMIT: usize = 20;
    names.sort();
    let total = names.len();
    let mut shown: Vec<String> = names.into_iter().take(LIMIT).collect();
    if total > LIMIT {
        shown.push(format!("<{} more>", total - LIMIT));
    }
    format!(
        "[{}] [node names limited, total number of nodes: {total}]",
        shown.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_limited_like_upstream() {
        assert_eq!(
            node_names_for_event(vec!["b".into(), "a".into()]),
            "[a b] [node names limited, total number of nodes: 2]"
        );
        let many: Vec<String> = (0..25).map(|i| format!("n{i:02}")).collect();
        let s = node_names_for_event(many);
        assert!(s.starts_with("[n00 n01"), "{s}");
        assert!(s.contains("n19 <5 more>]"), "{s}");
        assert!(s.ends_with("total number of nodes: 25]"), "{s}");
    }
}
