//! Shared state of the offline cloud account: the instances (which the sandbox cluster shows as
//! Nodes) and, in the per-cloud modules, each cloud's resources.

use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// A virtual machine in the mock cloud. The sandbox's Nodes are these instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Cloud id, e.g. `i-0a1b2c3d4e5f60001`.
    pub id: String,
    /// Node name, e.g. `node-1`.
    pub name: String,
    /// Availability zone, e.g. `zone-a`.
    pub zone: String,
    pub private_ip: Ipv4Addr,
    /// What the Node's `spec.providerID` says, e.g. `mock:///zone-a/i-0a1b2c3d4e5f60001`.
    pub provider_id: String,
}

/// Zones instances are spread over, round robin.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Zones of the AWS front's region (`us-east-1`), so providerIDs look like AWS's own
/// (`aws:///us-east-1a/i-...`) and match the seeded subnets.
pub const AWS_ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// The zones instances of a providerID scheme are spread over.
pub fn zones_for(provider_scheme: &str) -> &'static [&'static str] {
    match provider_scheme {
        "aws" => &AWS_ZONES,
        _ => &ZONES,
    }
}

/// The instance registry shared by every front of the mock cloud and by the sandbox cluster.
#[derive(Clone, Debug)]
pub struct Instances {
    inner: Arc<RwLock<Vec<Instance>>>,
    /// Bumped on every launch or termination, so the sandbox can keep its Nodes in step.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Instances ever launched: ids and addresses are never reused.
    launched: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Instances {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
            launched: Arc::default(),
        }
    }
}

impl Instances {
    /// `count` instances named `node-1..=node-count` with private IPs from 10.0.0.0/16 and
    /// providerIDs of the given scheme (`mock`, `aws`, `gce`, `azure`).
    pub fn with_count(count: usize, provider_scheme: &str) -> Self {
        let me = Self::default();
        for _ in 0..count {
            me.add(provider_scheme);
        }
        me
    }

    /// Launch one more instance and return it.
    pub fn add(&self, provider_scheme: &str) -> Instance {
        let mut list = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let n = self
            .launched
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let zones = zones_for(provider_scheme);
        let zone = zones[(n - 1) % zones.len()].to_string();
        let id = format!("i-{n:017x}");
        // 10.0.<hi>.<lo>, skipping .0 and .255 host bytes would be overkill: n < 65000.
        let private_ip = Ipv4Addr::new(10, 0, ((n + 10) / 250) as u8, ((n + 10) % 250) as u8 + 1);
        let provider_id = format!("{provider_scheme}:///{zone}/{id}");
        let inst = Instance {
            id,
            name: format!("node-{n}"),
            zone,
            private_ip,
            provider_id,
        };
        list.push(inst.clone());
        drop(list);
        self.changes.send_modify(|g| *g += 1);
        inst
    }

    /// Wakes whenever an instance is launched or terminated.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn list(&self) -> Vec<Instance> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Instance> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.id == id)
            .cloned()
    }

    /// Terminate an instance (its Node goes away too).
    pub fn remove(&self, id: &str) -> Option<Instance> {
        let mut list = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let pos = list.iter().position(|i| i.id == id)?;
        let gone = list.remove(pos);
        drop(list);
        self.changes.send_modify(|g| *g += 1);
        Some(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_unique_and_spread() {
        let reg = Instances::with_count(600, "mock");
        let list = reg.list();
        let mut ips: Vec<_> = list.iter().map(|i| i.private_ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 600);
        assert_eq!(list[0].name, "node-1");
        assert_eq!(list[0].zone, "zone-a");
        assert_eq!(list[1].zone, "zone-b");
        assert!(list[0].provider_id.starts_with("mock:///zone-a/i-"));
        assert!(reg.get(&list[5].id).is_some());
        assert!(reg.remove(&list[5].id).is_some());
        assert!(reg.get(&list[5].id).is_none());
        // A new instance never reuses a terminated one's id or address.
        let next = reg.add("mock");
        assert_eq!(next.name, "node-601");
        assert!(!ips.contains(&next.private_ip));
    }

    #[test]
    fn aws_instances_live_in_us_east_1() {
        let reg = Instances::with_count(2, "aws");
        let list = reg.list();
        assert_eq!(list[0].zone, "us-east-1a");
        assert!(list[1].provider_id.starts_with("aws:///us-east-1b/i-"));
    }
}
