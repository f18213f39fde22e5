//! The sandbox cluster's Nodes: one per mock-cloud instance, shaped like what a kubelet plus a
//! cloud-controller-manager would have registered (labels, providerID, addresses, Ready
//! conditions, capacity, nodeInfo), so a controller reading them sees a normal cluster.

use chrono::Utc;
use serde_json::{Value, json};

use crate::state::Instance;

const OS_IMAGE: &str = "Ubuntu 24.04.1 LTS";
const KERNEL_VERSION: &str = "6.8.0-1021";
const CONTAINER_RUNTIME: &str = "containerd://1.7.24";

/// A Ready Node for `instance`. Identity fields (UUIDs, pod CIDR, instance type) are derived
/// from the instance, so the same instance always gives the same Node apart from the condition
/// timestamps; metadata the store owns (uid, resourceVersion, creationTimestamp) is left out.
pub fn node_object(instance: &Instance, kubelet_version: &str) -> Value {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let name = &instance.name;
    let ip = instance.private_ip.to_string();
    let ordinal = ordinal(instance);
    let pod_cidr = format!("10.{}.{}.0/24", 244 + (ordinal / 256) % 12, ordinal % 256);
    let scheme = instance.provider_id.split("://").next().unwrap_or_default();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": status,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        })
    };
    let capacity = json!({
        "cpu": "4",
        "ephemeral-storage": "101430960Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "16373492Ki",
        "pods": "110",
    });
    let allocatable = json!({
        "cpu": "3920m",
        "ephemeral-storage": "93478772582",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "15335156Ki",
        "pods": "110",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": instance_type(scheme),
                "beta.kubernetes.io/os": "linux",
                "failure-domain.beta.kubernetes.io/region": region(&instance.zone),
                "failure-domain.beta.kubernetes.io/zone": instance.zone,
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": instance_type(scheme),
                "topology.kubernetes.io/region": region(&instance.zone),
                "topology.kubernetes.io/zone": instance.zone,
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": pod_cidr,
            "podCIDRs": [pod_cidr],
            "providerID": instance.provider_id,
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": pseudo_uuid(&format!("boot/{}", instance.id)),
                "containerRuntimeVersion": CONTAINER_RUNTIME,
                "kernelVersion": KERNEL_VERSION,
                "kubeProxyVersion": kubelet_version,
                "kubeletVersion": kubelet_version,
                "machineID": pseudo_uuid(&format!("machine/{}", instance.id)).replace('-', ""),
                "operatingSystem": "linux",
                "osImage": OS_IMAGE,
                "systemUUID": pseudo_uuid(&format!("system/{}", instance.id)),
            },
        },
    })
}

/// `node-7` -> 7; otherwise a stable number from the id (only used to spread pod CIDRs).
fn ordinal(instance: &Instance) -> u64 {
    instance
        .name
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fnv1a64(instance.id.as_bytes()) % 3000)
}

/// A typical instance type of the cloud the providerID scheme names.
fn instance_type(scheme: &str) -> &'static str {
    match scheme {
        "aws" => "m5.xlarge",
        "gce" => "e2-standard-4",
        "azure" => "Standard_D4s_v3",
        _ => "mock.standard-4",
    }
}

/// The region a zone belongs to: `us-east-1a` -> `us-east-1`, `europe-west1-b` ->
/// `europe-west1`, `eastus-2` -> `eastus`; the mock cloud's `zone-a` style -> `mock-region-1`.
fn region(zone: &str) -> String {
    if zone.starts_with("zone-") {
        return "mock-region-1".into();
    }
    if let Some((prefix, last)) = zone.rsplit_once('-')
        && (last.len() == 1 || last.bytes().all(|b| b.is_ascii_digit()))
    {
        return prefix.to_string();
    }
    match zone.as_bytes().last() {
        Some(b) if b.is_ascii_lowercase() && zone.len() > 1 => zone[..zone.len() - 1].to_string(),
        _ => zone.to_string(),
    }
}

fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A UUID-shaped, stable identifier derived from `seed`.
fn pseudo_uuid(seed: &str) -> String {
    let a = fnv1a64(seed.as_bytes());
    let b = fnv1a64(format!("{seed}#").as_bytes());
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn inst(n: u32, zone: &str, scheme: &str) -> Instance {
        let id = format!("i-{n:017x}");
        Instance {
            provider_id: format!("{scheme}:///{zone}/{id}"),
            id,
            name: format!("node-{n}"),
            zone: zone.into(),
            private_ip: Ipv4Addr::new(10, 0, 0, 10 + n as u8),
        }
    }

    #[test]
    fn node_is_ready_and_identified() {
        let i = inst(2, "zone-b", "mock");
        let n = node_object(&i, "v1.32.4");
        assert_eq!(n["kind"], "Node");
        assert_eq!(n["apiVersion"], "v1");
        assert_eq!(n["metadata"]["name"], "node-2");
        let labels = &n["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], "node-2");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-b");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(
            labels["node.kubernetes.io/instance-type"],
            "mock.standard-4"
        );
        assert_eq!(
            n["spec"]["providerID"],
            "mock:///zone-b/i-00000000000000002"
        );
        assert_eq!(n["spec"]["podCIDR"], "10.244.2.0/24");
        assert_eq!(
            n["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "10.0.0.12"}, {"type": "Hostname", "address": "node-2"}])
        );
        let conds = n["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ready = conds
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert!(
            conds
                .iter()
                .filter(|c| c["type"] != "Ready")
                .all(|c| c["status"] == "False")
        );
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.32.4");
        assert_eq!(n["status"]["capacity"]["pods"], "110");
        assert_eq!(n["status"]["allocatable"]["cpu"], "3920m");
        assert!(n["metadata"].get("uid").is_none());
    }

    #[test]
    fn identity_is_stable_and_distinct() {
        let a = node_object(&inst(1, "zone-a", "aws"), "v1.32.4");
        let b = node_object(&inst(1, "zone-a", "aws"), "v1.32.4");
        let c = node_object(&inst(3, "zone-c", "aws"), "v1.32.4");
        assert_eq!(a["status"]["nodeInfo"], b["status"]["nodeInfo"]);
        assert_ne!(
            a["status"]["nodeInfo"]["systemUUID"],
            c["status"]["nodeInfo"]["systemUUID"]
        );
        assert_eq!(
            a["status"]["nodeInfo"]["systemUUID"].as_str().map(str::len),
            Some(36)
        );
        assert_eq!(
            a["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "m5.xlarge"
        );
    }

    #[test]
    fn regions() {
        let cases = [
            ("us-east-1a", "us-east-1"),
            ("europe-west1-b", "europe-west1"),
            ("eastus-2", "eastus"),
            ("zone-a", "mock-region-1"),
            ("x", "x"),
        ];
        for (zone, want) in cases {
            assert_eq!(region(zone), want, "{zone}");
        }
        let types = [
            ("aws", "m5.xlarge"),
            ("gce", "e2-standard-4"),
            ("azure", "Standard_D4s_v3"),
            ("mock", "mock.standard-4"),
        ];
        for (scheme, want) in types {
            assert_eq!(instance_type(scheme), want);
        }
    }
}
