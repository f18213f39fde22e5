//! Test Services, shared by the spec tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const UID: &str = "6f1a0b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b";

/// `shop/web`, type LoadBalancer, one TCP port 80 -> nodePort 30080, IPv4.
pub fn service() -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web".into()),
            uid: Some(UID.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![port("http", "TCP", 80, Some(30080))]),
            ip_families: Some(vec!["IPv4".into()]),
            cluster_ip: Some("10.96.0.10".into()),
            external_traffic_policy: Some("Cluster".into()),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn port(name: &str, protocol: &str, port: i32, node_port: Option<i32>) -> ServicePort {
    ServicePort {
        name: (!name.is_empty()).then(|| name.to_owned()),
        protocol: Some(protocol.to_owned()),
        port,
        node_port,
        target_port: Some(IntOrString::Int(8080)),
        app_protocol: None,
    }
}

/// The fixture with `edit` applied to its spec.
pub fn with_spec(edit: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut svc = service();
    if let Some(spec) = svc.spec.as_mut() {
        edit(spec);
    }
    svc
}

/// The fixture with these annotations.
pub fn with_annotations(pairs: &[(&str, &str)]) -> Service {
    let mut svc = service();
    svc.metadata.annotations = Some(annotations(pairs));
    svc
}

pub fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
