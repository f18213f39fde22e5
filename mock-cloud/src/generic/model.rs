//! Wire types of the generic cloud's JSON API and their validation.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An error answer: HTTP status plus the JSON body `{"code", "message", "field"?, "existing_id"?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// On a duplicate-name 409: the id of the load balancer that holds the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
            existing_id: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(400, "InvalidParameter", message)
        }
    }

    pub fn not_found(name: &str) -> Self {
        Self::new(404, "NotFound", format!("load balancer {name:?} not found"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    External,
    Internal,
}

/// Listener protocol. Kept as a string on the wire so an unsupported one (SCTP) is answered
/// with a 400 naming the field instead of a generic parse error.
pub const PROTOCOLS: [&str; 2] = ["TCP", "UDP"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    pub protocol: String,
    /// The NodePort traffic is forwarded to on every backend instance.
    pub backend_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `TCP` or `HTTP`.
    pub protocol: String,
    pub port: u16,
    /// HTTP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type")]
pub enum SessionAffinity {
    #[default]
    None,
    #[serde(rename = "ClientIP")]
    ClientIp { timeout_seconds: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbState {
    Provisioning,
    Active,
}

/// A load balancer as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: String,
    pub name: String,
    pub scheme: Scheme,
    pub address: IpAddr,
    pub tags: BTreeMap<String, String>,
    pub listeners: Vec<Listener>,
    pub health_check: HealthCheck,
    pub source_ranges: Vec<String>,
    pub session_affinity: SessionAffinity,
    /// Instance ids, sorted.
    pub backends: Vec<String>,
    pub state: LbState,
    pub created_at: String,
}

/// `POST /v1/loadbalancers`. Backends are added separately (like real clouds' target
/// registration), so they are not part of the create body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub name: String,
    #[serde(default)]
    pub scheme: Scheme,
    /// A requested address: honoured if free and inside the scheme's pool, else 409 / 400.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub listeners: Vec<Listener>,
    pub health_check: HealthCheck,
    #[serde(default)]
    pub source_ranges: Vec<String>,
    #[serde(default)]
    pub session_affinity: SessionAffinity,
}

/// `PUT /v1/loadbalancers/{name}`: replaces the configuration, never the backends, scheme or
/// address. Tags are replaced only when given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    pub listeners: Vec<Listener>,
    pub health_check: HealthCheck,
    #[serde(default)]
    pub source_ranges: Vec<String>,
    #[serde(default)]
    pub session_affinity: SessionAffinity,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `POST /v1/loadbalancers/{name}/backends`: a delta; both lists optional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackendsRequest {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `GET /v1/loadbalancers` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    pub loadbalancers: Vec<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

const MAX_NAME: usize = 63;
const MAX_TAGS: usize = 50;

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars || name.starts_with('-') {
        return Err(ApiError::invalid(
            "name",
            format!("{name:?}: 1-{MAX_NAME} characters of [a-z0-9-], not starting with '-'"),
        ));
    }
    Ok(())
}

pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    if let Some(key) = tags
        .keys()
        .find(|k| k.is_empty() || k.len() > 128 || k.contains('='))
    {
        return Err(ApiError::invalid(
            "tags",
            format!("invalid tag key {key:?}"),
        ));
    }
    Ok(())
}

/// Listeners, health check, source ranges and affinity: the part create and update share.
pub fn validate_config(
    listeners: &[Listener],
    health_check: &HealthCheck,
    source_ranges: &[String],
) -> Result<(), ApiError> {
    if listeners.is_empty() {
        return Err(ApiError::invalid(
            "listeners",
            "at least one listener is required",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in listeners.iter().enumerate() {
        if !PROTOCOLS.contains(&l.protocol.as_str()) {
            return Err(ApiError::invalid(
                format!("listeners[{i}].protocol"),
                format!(
                    "unsupported protocol {:?} (supported: TCP, UDP)",
                    l.protocol
                ),
            ));
        }
        if l.port == 0 {
            return Err(ApiError::invalid(
                format!("listeners[{i}].port"),
                "must be 1-65535",
            ));
        }
        if l.backend_port == 0 {
            return Err(ApiError::invalid(
                format!("listeners[{i}].backend_port"),
                "must be 1-65535",
            ));
        }
        if !seen.insert((l.port, l.protocol.as_str())) {
            return Err(ApiError::invalid(
                format!("listeners[{i}]"),
                format!("duplicate listener {}/{}", l.port, l.protocol),
            ));
        }
    }
    match health_check.protocol.as_str() {
        "TCP" => {}
        "HTTP" => {
            if !health_check
                .path
                .as_deref()
                .is_some_and(|p| p.starts_with('/'))
            {
                return Err(ApiError::invalid(
                    "health_check.path",
                    "HTTP health checks need a path starting with '/'",
                ));
            }
        }
        other => {
            return Err(ApiError::invalid(
                "health_check.protocol",
                format!("unsupported protocol {other:?} (supported: TCP, HTTP)"),
            ));
        }
    }
    if health_check.port == 0 {
        return Err(ApiError::invalid("health_check.port", "must be 1-65535"));
    }
    for (i, r) in source_ranges.iter().enumerate() {
        if r.parse::<IpNet>().is_err() {
            return Err(ApiError::invalid(
                format!("source_ranges[{i}]"),
                format!("{r:?} is not a CIDR"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc() -> HealthCheck {
        HealthCheck {
            protocol: "TCP".into(),
            port: 30080,
            path: None,
        }
    }

    fn listener(port: u16, protocol: &str) -> Listener {
        Listener {
            port,
            protocol: protocol.into(),
            backend_port: 30080,
        }
    }

    #[test]
    fn names() {
        let table = [
            ("a", true),
            ("fd-abc-123", true),
            ("", false),
            ("-a", false),
            ("A", false),
            ("a_b", false),
        ];
        for (name, ok) in table {
            assert_eq!(validate_name(name).is_ok(), ok, "{name}");
        }
        assert!(validate_name(&"a".repeat(64)).is_err());
    }

    type ConfigCase = (
        Vec<Listener>,
        HealthCheck,
        Vec<String>,
        Option<&'static str>,
    );

    #[test]
    fn config_errors_name_the_field() {
        let http_no_path = HealthCheck {
            protocol: "HTTP".into(),
            port: 1,
            path: None,
        };
        let table: Vec<ConfigCase> = vec![
            (vec![listener(80, "TCP")], hc(), vec![], None),
            (
                vec![listener(80, "TCP"), listener(80, "UDP")],
                hc(),
                vec!["10.0.0.0/8".into()],
                None,
            ),
            (vec![], hc(), vec![], Some("listeners")),
            (
                vec![listener(80, "SCTP")],
                hc(),
                vec![],
                Some("listeners[0].protocol"),
            ),
            (
                vec![listener(80, "TCP"), listener(80, "TCP")],
                hc(),
                vec![],
                Some("listeners[1]"),
            ),
            (
                vec![listener(0, "TCP")],
                hc(),
                vec![],
                Some("listeners[0].port"),
            ),
            (
                vec![listener(80, "TCP")],
                http_no_path,
                vec![],
                Some("health_check.path"),
            ),
            (
                vec![listener(80, "TCP")],
                hc(),
                vec!["nope".into()],
                Some("source_ranges[0]"),
            ),
        ];
        for (listeners, hc, ranges, want) in table {
            let got = validate_config(&listeners, &hc, &ranges)
                .err()
                .and_then(|e| e.field);
            assert_eq!(got.as_deref(), want);
        }
    }

    #[test]
    fn affinity_wire_format() {
        let a: SessionAffinity =
            serde_json::from_str(r#"{"type":"ClientIP","timeout_seconds":10}"#).unwrap();
        assert_eq!(
            a,
            SessionAffinity::ClientIp {
                timeout_seconds: 10
            }
        );
        assert_eq!(
            serde_json::to_string(&SessionAffinity::None).unwrap(),
            r#"{"type":"None"}"#
        );
    }
}
