//! A typed view of the Service fields this module reasons about, read from and written back
//! to the JSON object so that every other field (and its order) is left untouched.

use serde_json::{Map, Value, json};

use crate::kube::errors::ApiError;

pub const CLUSTER_IP: &str = "ClusterIP";
pub const NODE_PORT: &str = "NodePort";
pub const LOAD_BALANCER: &str = "LoadBalancer";
pub const EXTERNAL_NAME: &str = "ExternalName";
pub const NONE: &str = "None";
pub const LOCAL: &str = "Local";
pub const CLUSTER: &str = "Cluster";
pub const SINGLE_STACK: &str = "SingleStack";
pub const PREFER_DUAL_STACK: &str = "PreferDualStack";
pub const REQUIRE_DUAL_STACK: &str = "RequireDualStack";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TargetPort {
    #[default]
    Unset,
    Int(i64),
    Str(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub app_protocol: Option<String>,
    pub port: i64,
    pub target_port: TargetPort,
    pub node_port: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spec {
    pub type_: String,
    pub ports: Vec<Port>,
    pub selector: Option<Map<String, Value>>,
    pub cluster_ip: String,
    pub cluster_ips: Vec<String>,
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub external_ips: Vec<String>,
    pub external_name: String,
    pub session_affinity: String,
    pub session_affinity_config: Option<Value>,
    pub external_traffic_policy: String,
    pub internal_traffic_policy: Option<String>,
    pub health_check_node_port: i64,
    pub allocate_lb_node_ports: Option<bool>,
    pub load_balancer_class: Option<String>,
    pub load_balancer_source_ranges: Vec<String>,
    pub traffic_distribution: Option<String>,
}

/// Upstream fails decoding a mistyped field with this 400; mirror its shape.
fn decode_error(field: &str, found: &Value, go_type: &str) -> ApiError {
    let json_kind = match found {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    ApiError::bad_request(format!(
        "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal {json_kind} into Go struct field {field} of type {go_type}"
    ))
}

fn get_str(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(decode_error(field, other, "string")),
    }
}

fn get_int(obj: &Map<String, Value>, key: &str, field: &str) -> Result<i64, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|v| i32::try_from(*v).is_ok())
            .ok_or_else(|| decode_error(field, &Value::Number(n.clone()), "int32")),
        Some(other) => Err(decode_error(field, other, "int32")),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(decode_error(field, other, "bool")),
    }
}

fn get_strings(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| decode_error(field, v, "string"))
            })
            .collect(),
        Some(other) => Err(decode_error(field, other, "[]string")),
    }
}

fn parse_port(v: &Value) -> Result<Port, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(decode_error(
            "ServiceSpec.spec.ports",
            v,
            "core.ServicePort",
        ));
    };
    let target_port = match obj.get("targetPort") {
        None | Some(Value::Null) => TargetPort::Unset,
        Some(Value::String(s)) => TargetPort::Str(s.clone()),
        Some(Value::Number(n)) => TargetPort::Int(n.as_i64().unwrap_or(-1)),
        Some(other) => {
            return Err(decode_error(
                "ServicePort.spec.ports.targetPort",
                other,
                "intstr.IntOrString",
            ));
        }
    };
    Ok(Port {
        name: get_str(obj, "name", "ServicePort.spec.ports.name")?.unwrap_or_default(),
        protocol: get_str(obj, "protocol", "ServicePort.spec.ports.protocol")?.unwrap_or_default(),
        app_protocol: get_str(obj, "appProtocol", "ServicePort.spec.ports.appProtocol")?,
        port: get_int(obj, "port", "ServicePort.spec.ports.port")?,
        target_port,
        node_port: get_int(obj, "nodePort", "ServicePort.spec.ports.nodePort")?,
    })
}

impl Spec {
    /// Reads `obj.spec`; a field of the wrong JSON type is a 400 like upstream's decoder's.
    pub fn parse(obj: &Value) -> Result<Self, ApiError> {
        let empty = Map::new();
        let spec = match obj.get("spec") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => return Err(decode_error("Service.spec", other, "core.ServiceSpec")),
        };
        let f = |k: &str| format!("ServiceSpec.spec.{k}");
        let ports = match spec.get("ports") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(parse_port).collect::<Result<_, _>>()?,
            Some(other) => return Err(decode_error(&f("ports"), other, "[]core.ServicePort")),
        };
        let selector = match spec.get("selector") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => return Err(decode_error(&f("selector"), other, "map[string]string")),
        };
        let session_affinity_config = spec
            .get("sessionAffinityConfig")
            .filter(|v| !v.is_null())
            .cloned();
        Ok(Self {
            type_: get_str(spec, "type", &f("type"))?.unwrap_or_default(),
            ports,
            selector,
            cluster_ip: get_str(spec, "clusterIP", &f("clusterIP"))?.unwrap_or_default(),
            cluster_ips: get_strings(spec, "clusterIPs", &f("clusterIPs"))?,
            ip_families: get_strings(spec, "ipFamilies", &f("ipFamilies"))?,
            ip_family_policy: get_str(spec, "ipFamilyPolicy", &f("ipFamilyPolicy"))?,
            external_ips: get_strings(spec, "externalIPs", &f("externalIPs"))?,
            external_name: get_str(spec, "externalName", &f("externalName"))?.unwrap_or_default(),
            session_affinity: get_str(spec, "sessionAffinity", &f("sessionAffinity"))?
                .unwrap_or_default(),
            session_affinity_config,
            external_traffic_policy: get_str(
                spec,
                "externalTrafficPolicy",
                &f("externalTrafficPolicy"),
            )?
            .unwrap_or_default(),
            internal_traffic_policy: get_str(
                spec,
                "internalTrafficPolicy",
                &f("internalTrafficPolicy"),
            )?,
            health_check_node_port: get_int(
                spec,
                "healthCheckNodePort",
                &f("healthCheckNodePort"),
            )?,
            allocate_lb_node_ports: get_bool(
                spec,
                "allocateLoadBalancerNodePorts",
                &f("allocateLoadBalancerNodePorts"),
            )?,
            load_balancer_class: get_str(spec, "loadBalancerClass", &f("loadBalancerClass"))?,
            load_balancer_source_ranges: get_strings(
                spec,
                "loadBalancerSourceRanges",
                &f("loadBalancerSourceRanges"),
            )?,
            traffic_distribution: get_str(spec, "trafficDistribution", &f("trafficDistribution"))?,
        })
    }

    /// Writes the managed fields back into `obj.spec`, keeping everything else as it was.
    pub fn write(&self, obj: &mut Value) {
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        let spec = root.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        let Some(spec) = spec.as_object_mut() else {
            return;
        };

        if let Some(Value::Array(items)) = spec.get_mut("ports") {
            for (item, port) in items.iter_mut().zip(&self.ports) {
                let Some(m) = item.as_object_mut() else {
                    continue;
                };
                set_str(m, "protocol", &port.protocol);
                match &port.target_port {
                    TargetPort::Unset => {
                        m.shift_remove("targetPort");
                    }
                    TargetPort::Int(v) => {
                        m.insert("targetPort".into(), json!(v));
                    }
                    TargetPort::Str(s) => {
                        m.insert("targetPort".into(), json!(s));
                    }
                }
                set_int(m, "nodePort", port.node_port);
            }
        }
        set_str(spec, "clusterIP", &self.cluster_ip);
        set_list(spec, "clusterIPs", &self.cluster_ips);
        set_str(spec, "type", &self.type_);
        set_str(spec, "sessionAffinity", &self.session_affinity);
        set_opt(
            spec,
            "sessionAffinityConfig",
            self.session_affinity_config.clone(),
        );
        set_str(spec, "externalTrafficPolicy", &self.external_traffic_policy);
        set_int(spec, "healthCheckNodePort", self.health_check_node_port);
        set_list(spec, "ipFamilies", &self.ip_families);
        set_opt(
            spec,
            "ipFamilyPolicy",
            self.ip_family_policy.clone().map(Value::String),
        );
        set_opt(
            spec,
            "allocateLoadBalancerNodePorts",
            self.allocate_lb_node_ports.map(Value::Bool),
        );
        set_opt(
            spec,
            "loadBalancerClass",
            self.load_balancer_class.clone().map(Value::String),
        );
        set_opt(
            spec,
            "internalTrafficPolicy",
            self.internal_traffic_policy.clone().map(Value::String),
        );
    }

    pub fn is_headless(&self) -> bool {
        self.cluster_ips.len() == 1 && self.cluster_ips[0] == NONE
    }

    /// `ExternallyAccessible`: reachable from outside through node ports or external IPs.
    pub fn externally_accessible(&self) -> bool {
        self.type_ == LOAD_BALANCER
            || self.type_ == NODE_PORT
            || (self.type_ == CLUSTER_IP && !self.external_ips.is_empty())
    }

    pub fn needs_cluster_ip(&self) -> bool {
        self.type_ != EXTERNAL_NAME
    }

    pub fn needs_node_port(&self) -> bool {
        self.type_ == NODE_PORT || self.type_ == LOAD_BALANCER
    }

    /// `NeedsHealthCheck`: LoadBalancer with `externalTrafficPolicy: Local`.
    pub fn needs_hc_node_port(&self) -> bool {
        self.type_ == LOAD_BALANCER && self.external_traffic_policy == LOCAL
    }

    /// Whether ports without an explicit `nodePort` get one.
    pub fn should_allocate_node_ports(&self) -> bool {
        match self.type_.as_str() {
            NODE_PORT => true,
            LOAD_BALANCER => self.allocate_lb_node_ports.unwrap_or(true),
            _ => false,
        }
    }

    /// Every non-zero nodePort, in port order (duplicates kept, as upstream collects them).
    pub fn node_ports(&self) -> Vec<i64> {
        self.ports
            .iter()
            .map(|p| p.node_port)
            .filter(|&n| n != 0)
            .collect()
    }
}

fn set_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if v.is_empty() {
        m.shift_remove(key);
    } else {
        m.insert(key.to_string(), Value::String(v.to_string()));
    }
}

fn set_int(m: &mut Map<String, Value>, key: &str, v: i64) {
    if v == 0 {
        m.shift_remove(key);
    } else {
        m.insert(key.to_string(), json!(v));
    }
}

fn set_list(m: &mut Map<String, Value>, key: &str, v: &[String]) {
    if v.is_empty() {
        m.shift_remove(key);
    } else {
        m.insert(key.to_string(), json!(v));
    }
}

fn set_opt(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    match v {
        None => {
            m.shift_remove(key);
        }
        Some(v) => {
            m.insert(key.to_string(), v);
        }
    }
}
