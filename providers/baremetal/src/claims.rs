//! Claim objects <-> the allocator's index, and kube error classification.

use std::net::IpAddr;

use frontdesk_core::provider::{Protocol, ProviderError};
use kube::api::ObjectMeta;

use crate::alloc::{Holding, User};
use crate::crd::{ClaimUser, IPAddressClaim, IPAddressClaimSpec, claim_labels, claim_name};

pub fn port_text(p: &(Protocol, u16)) -> String {
    format!("{}/{}", p.0.as_str(), p.1)
}

fn parse_port(s: &str) -> Option<(Protocol, u16)> {
    let (proto, port) = s.split_once('/')?;
    let proto = match proto {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => return None,
    };
    Some((proto, port.parse().ok()?))
}

pub fn user_of_claim(u: &ClaimUser) -> User {
    User {
        uid: u.uid.clone(),
        namespace: u.namespace.clone(),
        name: u.name.clone(),
        ports: u.ports.iter().filter_map(|p| parse_port(p)).collect(),
        backend_key: u.backend_key.clone(),
    }
}

pub fn claim_user(u: &User) -> ClaimUser {
    ClaimUser {
        namespace: u.namespace.clone(),
        name: u.name.clone(),
        uid: u.uid.clone(),
        ports: u.ports.iter().map(port_text).collect(),
        backend_key: u.backend_key.clone(),
    }
}

/// The index entry for a claim; `None` for an object whose address does not parse.
pub fn holding_of(claim: &IPAddressClaim) -> Option<(IpAddr, Holding)> {
    let ip: IpAddr = claim.spec.address.parse().ok()?;
    Some((
        ip,
        Holding {
            pool: claim.spec.pool.clone(),
            sharing_key: claim.spec.sharing_key.clone(),
            users: claim.spec.users.iter().map(user_of_claim).collect(),
        },
    ))
}

/// A new claim object for `ip` as `holding` describes it.
pub fn claim_object(cluster: &str, ip: IpAddr, holding: &Holding) -> IPAddressClaim {
    let users: Vec<ClaimUser> = holding.users.iter().map(claim_user).collect();
    IPAddressClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(ip)),
            labels: Some(claim_labels(cluster, &holding.pool, &users)),
            ..Default::default()
        },
        spec: IPAddressClaimSpec {
            address: ip.to_string(),
            pool: holding.pool.clone(),
            sharing_key: holding.sharing_key.clone(),
            users,
        },
    }
}

/// Classify a kube API error at the provider edge.
pub fn classify(what: &str, e: kube::Error) -> ProviderError {
    if let kube::Error::Api(status) = &e {
        if status.is_not_found() {
            return ProviderError::NotFound(format!("{what}: {}", status.message));
        }
        if status.is_already_exists() || status.is_conflict() {
            return ProviderError::Conflict(format!("{what}: {}", status.message));
        }
        if status.code == 429 {
            return ProviderError::Throttled {
                message: format!("{what}: {}", status.message),
                retry_after: None,
            };
        }
    }
    ProviderError::Transient {
        message: format!("{what}: {e}"),
        source: Some(Box::new(e)),
    }
}

pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() && !s.is_already_exists())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claim_round_trip() {
        let h = Holding {
            pool: "p".into(),
            sharing_key: Some("k".into()),
            users: vec![User {
                uid: "u1".into(),
                namespace: "ns".into(),
                name: "a".into(),
                ports: vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)],
                backend_key: String::new(),
            }],
        };
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let c = claim_object("c1", ip, &h);
        assert_eq!(c.metadata.name.as_deref(), Some("v4-192-0-2-7"));
        let labels = c.metadata.labels.clone().unwrap();
        assert_eq!(labels["uid.frontdesk.dev/u1"], "true");
        assert_eq!(labels["frontdesk.dev/cluster"], "c1");
        assert_eq!(c.spec.users[0].ports, vec!["TCP/80", "UDP/53"]);
        assert_eq!(holding_of(&c).unwrap(), (ip, h));
    }
}
