//! The generic cloud's JSON shapes, as this client sees them. Written independently of the
//! mock cloud's own types on purpose: the provider reaches the cloud only over HTTP, the way it
//! would reach a real one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: String,
    pub backend_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub protocol: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionAffinity {
    None,
    #[serde(rename = "ClientIP")]
    ClientIp {
        timeout_seconds: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    External,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: String,
    pub name: String,
    pub scheme: Scheme,
    pub address: IpAddr,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub listeners: Vec<Listener>,
    pub health_check: HealthCheck,
    #[serde(default)]
    pub source_ranges: Vec<String>,
    pub session_affinity: SessionAffinity,
    #[serde(default)]
    pub backends: Vec<String>,
    /// `provisioning` or `active`.
    pub state: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CreateRequest<'a> {
    pub name: &'a str,
    pub scheme: Scheme,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub tags: &'a BTreeMap<String, String>,
    pub listeners: &'a [Listener],
    pub health_check: &'a HealthCheck,
    pub source_ranges: &'a [String],
    pub session_affinity: SessionAffinity,
}

#[derive(Clone, Debug, Serialize)]
pub struct UpdateRequest<'a> {
    pub listeners: &'a [Listener],
    pub health_check: &'a HealthCheck,
    pub source_ranges: &'a [String],
    pub session_affinity: SessionAffinity,
    pub tags: &'a BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendsRequest {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// What a listing needs of a load balancer: its name and tags. The rest of each entry
/// (above all `backends`, one id per node: 5,000 strings per load balancer on a big cluster)
/// is skipped by the parser without being stored.
#[derive(Clone, Debug, Deserialize)]
pub struct LoadBalancerSummary {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ListResponse {
    pub loadbalancers: Vec<LoadBalancerSummary>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// Error body `{"code", "message", "field"?}`; every field optional so a proxy's odd answer
/// still classifies by status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}
