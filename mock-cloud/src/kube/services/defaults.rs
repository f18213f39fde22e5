//! Defaulting and the registry's field fix-ups around allocation: `SetDefaults_Service`,
//! `normalizeClusterIPs`, `patchAllocatedValues` (resubmitted manifests keep what was
//! allocated) and `dropTypeDependentFields` (type changes wipe what no longer applies).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::model::{CLUSTER, CLUSTER_IP, LOAD_BALANCER, NODE_PORT, NONE, Spec, TargetPort};

/// `spec.sessionAffinityConfig.clientIP.timeoutSeconds` default (3 hours).
const DEFAULT_CLIENT_IP_TIMEOUT: i64 = 10800;

/// `SetDefaults_Service` (v1 defaulting, applied on every decode).
pub fn set_defaults(spec: &mut Spec) {
    if spec.session_affinity.is_empty() {
        spec.session_affinity = NONE.to_string();
    }
    if spec.session_affinity == NONE {
        spec.session_affinity_config = None;
    }
    if spec.session_affinity == "ClientIP" {
        let has_timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
            .is_some_and(|v| !v.is_null());
        if !has_timeout {
            spec.session_affinity_config =
                Some(json!({"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}));
        }
    }
    if spec.type_.is_empty() {
        spec.type_ = CLUSTER_IP.to_string();
    }
    for p in &mut spec.ports {
        if p.protocol.is_empty() {
            p.protocol = "TCP".to_string();
        }
        let unset = match &p.target_port {
            TargetPort::Unset => true,
            TargetPort::Int(v) => *v == 0,
            TargetPort::Str(s) => s.is_empty(),
        };
        if unset {
            p.target_port = TargetPort::Int(p.port);
        }
    }
    if spec.externally_accessible() && spec.external_traffic_policy.is_empty() {
        spec.external_traffic_policy = CLUSTER.to_string();
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(spec.type_.as_str(), CLUSTER_IP | NODE_PORT | LOAD_BALANCER)
    {
        spec.internal_traffic_policy = Some(CLUSTER.to_string());
    }
    if spec.type_ == LOAD_BALANCER && spec.allocate_lb_node_ports.is_none() {
        spec.allocate_lb_node_ports = Some(true);
    }
}

/// Defaults `status.loadBalancer.ingress[].ipMode` to `VIP` where an `ip` is set
/// (LoadBalancerIPMode is GA in 1.32).
pub fn default_ingress_ip_mode(obj: &mut Value) {
    if let Some(Value::Array(ingress)) = obj.pointer_mut("/status/loadBalancer/ingress") {
        for ing in ingress.iter_mut().filter_map(Value::as_object_mut) {
            let has_ip = ing
                .get("ip")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            let has_mode = ing.get("ipMode").is_some_and(|v| !v.is_null());
            if has_ip && !has_mode {
                ing.insert("ipMode".to_string(), json!("VIP"));
            }
        }
    }
}

/// `normalizeClusterIPs`: keep `clusterIP` and `clusterIPs` in sync for clients that only
/// know the singular field.
pub fn normalize_cluster_ips(new: &mut Spec, old: Option<&Spec>) {
    let Some(old) = old else {
        if !new.cluster_ip.is_empty() && new.cluster_ips.is_empty() {
            new.cluster_ips = vec![new.cluster_ip.clone()];
        }
        return;
    };
    if !old.cluster_ips.is_empty() && new.cluster_ips.is_empty() && old.cluster_ip == new.cluster_ip
    {
        new.cluster_ips = old.cluster_ips.clone();
    }
    if old.cluster_ip != new.cluster_ip {
        let same_plural = old.cluster_ips == new.cluster_ips;
        if !old.cluster_ip.is_empty() && new.cluster_ip.is_empty() {
            if same_plural {
                new.cluster_ips.clear();
            }
        } else if same_plural {
            new.cluster_ips = vec![new.cluster_ip.clone()];
        }
    }
}

/// `patchAllocatedValues`: a PUT of the original manifest (no clusterIP, no nodePorts) keeps
/// what was allocated; nodePorts are matched by port *name*.
pub fn patch_allocated_values(new: &mut Spec, old: &Spec) {
    if old.needs_cluster_ip() && new.needs_cluster_ip() {
        if new.cluster_ip.is_empty() {
            new.cluster_ip = old.cluster_ip.clone();
        }
        if new.cluster_ips.is_empty() && !old.cluster_ips.is_empty() {
            new.cluster_ips = old.cluster_ips.clone();
        }
    }
    if old.needs_node_port() && new.needs_node_port() {
        let old_used: HashSet<i64> = old.node_ports().into_iter().collect();
        // Values held by the old object and still explicitly used in the new one.
        let used: HashSet<i64> = new
            .node_ports()
            .into_iter()
            .filter(|n| old_used.contains(n))
            .collect();
        let mut by_name = std::collections::HashMap::new();
        for p in &old.ports {
            by_name.insert(p.name.as_str(), p.node_port);
        }
        for p in &mut new.ports {
            if p.node_port == 0 {
                let old_val = by_name.get(p.name.as_str()).copied().unwrap_or(0);
                if !used.contains(&old_val) {
                    p.node_port = old_val;
                }
            }
        }
    }
    if old.needs_hc_node_port() && new.needs_hc_node_port() && new.health_check_node_port == 0 {
        new.health_check_node_port = old.health_check_node_port;
    }
}

/// `dropTypeDependentFields`: on a type change, wipe fields that no longer apply and that
/// the user did not change in the same request (a changed value is left for validation to
/// reject). Returns true when `status.loadBalancer` must be cleared.
pub fn drop_type_dependent_fields(new: &mut Spec, old: &Spec) -> bool {
    if old.needs_cluster_ip() && !new.needs_cluster_ip() {
        if old.cluster_ip == new.cluster_ip && old.cluster_ips == new.cluster_ips {
            new.cluster_ip.clear();
            new.cluster_ips.clear();
        }
        if old.ip_families == new.ip_families {
            new.ip_families.clear();
        }
        if old.ip_family_policy == new.ip_family_policy {
            new.ip_family_policy = None;
        }
    }
    if old.needs_node_port() && !new.needs_node_port() {
        // Users may add, remove or modify ports as long as no net-new nodePort appears.
        let old_set: HashSet<i64> = old.node_ports().into_iter().collect();
        if new.node_ports().iter().all(|n| old_set.contains(n)) {
            for p in &mut new.ports {
                p.node_port = 0;
            }
        }
    }
    if old.needs_hc_node_port()
        && !new.needs_hc_node_port()
        && old.health_check_node_port == new.health_check_node_port
    {
        new.health_check_node_port = 0;
    }
    if old.type_ == LOAD_BALANCER && new.type_ != LOAD_BALANCER {
        if let (Some(a), Some(b)) = (old.allocate_lb_node_ports, new.allocate_lb_node_ports)
            && a == b
        {
            new.allocate_lb_node_ports = None;
        }
        if old.load_balancer_class == new.load_balancer_class {
            new.load_balancer_class = None;
        }
    }
    if old.externally_accessible()
        && !new.externally_accessible()
        && old.external_traffic_policy == new.external_traffic_policy
    {
        new.external_traffic_policy.clear();
    }
    new.type_ != LOAD_BALANCER
}

#[cfg(test)]
mod tests {
    use super::super::model::{EXTERNAL_NAME, Port};
    use super::*;

    fn port(name: &str, port: i64, node_port: i64) -> Port {
        Port {
            name: name.to_string(),
            protocol: "TCP".to_string(),
            port,
            target_port: TargetPort::Int(port),
            node_port,
            ..Port::default()
        }
    }

    fn spec(type_: &str, ports: Vec<Port>) -> Spec {
        let mut s = Spec {
            type_: type_.to_string(),
            ports,
            ..Spec::default()
        };
        set_defaults(&mut s);
        s
    }

    #[test]
    fn defaults_per_type() {
        // (type, externalTrafficPolicy, internalTrafficPolicy, allocateLoadBalancerNodePorts)
        let cases = [
            ("", "", Some("Cluster"), None),
            ("NodePort", "Cluster", Some("Cluster"), None),
            ("LoadBalancer", "Cluster", Some("Cluster"), Some(true)),
            ("ExternalName", "", None, None),
        ];
        for (t, etp, itp, alloc) in cases {
            let s = spec(
                t,
                vec![Port {
                    port: 80,
                    ..Port::default()
                }],
            );
            assert_eq!(s.external_traffic_policy, etp, "{t}");
            assert_eq!(s.internal_traffic_policy.as_deref(), itp, "{t}");
            assert_eq!(s.allocate_lb_node_ports, alloc, "{t}");
            assert_eq!(s.session_affinity, "None");
            assert_eq!(s.ports[0].protocol, "TCP");
            assert_eq!(s.ports[0].target_port, TargetPort::Int(80));
        }
        let mut s = Spec {
            session_affinity: "ClientIP".into(),
            ..Spec::default()
        };
        set_defaults(&mut s);
        assert_eq!(
            s.session_affinity_config,
            Some(json!({"clientIP": {"timeoutSeconds": 10800}}))
        );
    }

    #[test]
    fn patch_keeps_node_ports_by_name() {
        let old = spec(
            "NodePort",
            vec![port("http", 80, 30080), port("https", 443, 30443)],
        );
        // Same manifest without nodePorts, ports reordered, plus one explicit reuse.
        let mut new = spec("NodePort", vec![port("https", 443, 0), port("http", 80, 0)]);
        patch_allocated_values(&mut new, &old);
        assert_eq!(new.node_ports(), [30443, 30080]);

        // A value the new object uses explicitly elsewhere is not patched in twice.
        let mut new = spec(
            "NodePort",
            vec![port("http", 80, 0), port("other", 81, 30080)],
        );
        patch_allocated_values(&mut new, &old);
        assert_eq!(new.node_ports(), [30080]);
        assert_eq!(new.ports[0].node_port, 0);
    }

    #[test]
    fn normalize_cases() {
        let mut s = Spec {
            cluster_ip: "10.96.0.5".into(),
            ..Spec::default()
        };
        normalize_cluster_ips(&mut s, None);
        assert_eq!(s.cluster_ips, ["10.96.0.5"]);

        let old = Spec {
            cluster_ip: "10.96.0.5".into(),
            cluster_ips: vec!["10.96.0.5".into()],
            ..Spec::default()
        };
        // Old client changes only the singular field: plural follows.
        let mut s = Spec {
            cluster_ip: "10.96.0.6".into(),
            cluster_ips: vec!["10.96.0.5".into()],
            ..Spec::default()
        };
        normalize_cluster_ips(&mut s, Some(&old));
        assert_eq!(s.cluster_ips, ["10.96.0.6"]);
        // Clearing the singular field clears an unchanged plural.
        let mut s = Spec {
            cluster_ip: String::new(),
            cluster_ips: vec!["10.96.0.5".into()],
            ..Spec::default()
        };
        normalize_cluster_ips(&mut s, Some(&old));
        assert!(s.cluster_ips.is_empty());
    }

    #[test]
    fn drop_on_type_change() {
        let mut old = spec("LoadBalancer", vec![port("http", 80, 30080)]);
        old.external_traffic_policy = "Local".into();
        old.health_check_node_port = 30500;
        old.cluster_ip = "10.96.0.9".into();
        old.cluster_ips = vec!["10.96.0.9".into()];
        let mut new = old.clone();
        new.type_ = CLUSTER_IP.into();
        assert!(drop_type_dependent_fields(&mut new, &old));
        assert_eq!(new.node_ports(), Vec::<i64>::new());
        assert_eq!(new.health_check_node_port, 0);
        assert_eq!(new.allocate_lb_node_ports, None);
        assert_eq!(new.external_traffic_policy, "");
        assert_eq!(new.cluster_ip, "10.96.0.9");

        let mut new = old.clone();
        new.type_ = EXTERNAL_NAME.into();
        drop_type_dependent_fields(&mut new, &old);
        assert!(new.cluster_ips.is_empty() && new.cluster_ip.is_empty());

        // A net-new nodePort on the way to ClusterIP is left for validation to reject.
        let mut new = old.clone();
        new.type_ = CLUSTER_IP.into();
        new.ports[0].node_port = 30081;
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new.node_ports(), [30081]);
    }
}
