//! Who announces an address: a pure function of what every speaker sees in the API, so all
//! speakers compute the same answer without any per-Service write.
//!
//! Per address: find its pool, the L2Advertisements covering that pool, the nodes those
//! advertisements select (minus excluded, `NetworkUnavailable` and dead speakers, and for
//! `externalTrafficPolicy: Local` minus nodes without a ready endpoint), then rendezvous
//! hashing: the candidate with the highest `sha256(node "#" address)` wins. Removing a node
//! that does not win an address never moves that address; adding one moves only the
//! addresses it now wins.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::crd::LabelSelector;
use crate::ranges::AddrRange;
use crate::request::selector_matches;

/// A node as the election sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub labels: BTreeMap<String, String>,
    /// Labelled `node.kubernetes.io/exclude-from-external-load-balancers`, being deleted, or
    /// marked for removal by the autoscaler.
    pub excluded: bool,
    /// Condition `NetworkUnavailable=True`.
    pub network_unavailable: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ranges: Vec<AddrRange>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdView {
    pub name: String,
    pub pools: Vec<String>,
    pub pool_selectors: Vec<LabelSelector>,
    pub node_selectors: Vec<LabelSelector>,
    pub interfaces: Vec<String>,
}

/// A LoadBalancer Service with at least one ingress address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceView {
    /// `namespace/name`.
    pub key: String,
    pub ips: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// Nodes hosting a ready (or terminating-but-serving) endpoint.
    pub endpoint_nodes: BTreeSet<String>,
    /// Some endpoint anywhere is serving (an endpoint without a node counts).
    pub has_endpoints: bool,
}

/// Everything the election reads.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub nodes: BTreeMap<String, NodeView>,
    pub pools: Vec<PoolView>,
    pub ads: Vec<AdView>,
    /// Nodes whose speaker is alive (its Lease renewed recently).
    pub alive: BTreeSet<String>,
    /// Interfaces each speaker can answer on (from its Lease); a node absent here counts as
    /// having every interface.
    pub interfaces: BTreeMap<String, BTreeSet<String>>,
}

/// Where an address is announced, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Announce {
        node: String,
        /// `None`: every usable interface; otherwise only these.
        interfaces: Option<BTreeSet<String>>,
    },
    NotAnnounced(Reason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The address lies in no pool.
    NoPool,
    /// No L2Advertisement covers the address's pool.
    NoAdvertisement,
    /// The Service has no serving endpoint (for `Local`: none on an eligible node).
    NoEndpoints,
    /// No node is selected, included and alive.
    NoEligibleNode,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPool => "NoPool",
            Reason::NoAdvertisement => "NoAdvertisement",
            Reason::NoEndpoints => "NoEndpoints",
            Reason::NoEligibleNode => "NoEligibleNode",
        }
    }
}

/// The rendezvous score of `node` for `ip`: the first 8 bytes of `sha256(node "#" ip)`.
pub fn score(node: &str, ip: IpAddr) -> u64 {
    let digest = Sha256::digest(format!("{node}#{ip}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The highest-scoring candidate; ties (astronomically unlikely) go to the smaller name.
pub fn winner<'a>(candidates: impl IntoIterator<Item = &'a str>, ip: IpAddr) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|n| (score(n, ip), std::cmp::Reverse(n), n))
        .max()
        .map(|(_, _, n)| n)
}

fn ad_covers_pool(ad: &AdView, pool: &PoolView) -> bool {
    if ad.pools.is_empty() && ad.pool_selectors.is_empty() {
        return true;
    }
    ad.pools.contains(&pool.name)
        || ad
            .pool_selectors
            .iter()
            .any(|s| selector_matches(s, &pool.labels))
}

/// Can `node` announce for `ad`: it has one of the ad's interfaces (when the ad names any).
/// Unlike MetalLB, a node lacking the interface is not elected (and then silent).
fn ad_reaches(ad: &AdView, ifaces: Option<&BTreeSet<String>>) -> bool {
    ad.interfaces.is_empty()
        || ifaces.is_none_or(|have| ad.interfaces.iter().any(|i| have.contains(i)))
}

fn ad_selects_node(ad: &AdView, node: &NodeView) -> bool {
    ad.node_selectors.is_empty()
        || ad
            .node_selectors
            .iter()
            .any(|s| selector_matches(s, &node.labels))
}

/// Who announces `ip` of `svc`.
pub fn decide(cluster: &ClusterView, svc: &ServiceView, ip: IpAddr) -> Decision {
    let Some(pool) = cluster
        .pools
        .iter()
        .find(|p| p.ranges.iter().any(|r| r.contains(ip)))
    else {
        return Decision::NotAnnounced(Reason::NoPool);
    };
    let ads: Vec<&AdView> = cluster
        .ads
        .iter()
        .filter(|a| ad_covers_pool(a, pool))
        .collect();
    if ads.is_empty() {
        return Decision::NotAnnounced(Reason::NoAdvertisement);
    }
    if !svc.has_endpoints {
        return Decision::NotAnnounced(Reason::NoEndpoints);
    }
    let candidates: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|(name, node)| {
            !node.excluded
                && !node.network_unavailable
                && cluster.alive.contains(*name)
                && ads.iter().any(|a| {
                    ad_selects_node(a, node) && ad_reaches(a, cluster.interfaces.get(*name))
                })
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if candidates.is_empty() {
        return Decision::NotAnnounced(Reason::NoEligibleNode);
    }
    let candidates: Vec<&str> = if svc.local {
        let with_endpoints: Vec<&str> = candidates
            .into_iter()
            .filter(|n| svc.endpoint_nodes.contains(*n))
            .collect();
        if with_endpoints.is_empty() {
            return Decision::NotAnnounced(Reason::NoEndpoints);
        }
        with_endpoints
    } else {
        candidates
    };
    let Some(node) = winner(candidates, ip) else {
        return Decision::NotAnnounced(Reason::NoEligibleNode);
    };
    // Interfaces: the union over the advertisements that select the winner; one of them
    // without a list means "every interface".
    let winner_view = cluster.nodes.get(node);
    let mut interfaces = BTreeSet::new();
    let mut any = false;
    for ad in ads
        .iter()
        .filter(|a| winner_view.is_some_and(|n| ad_selects_node(a, n)))
    {
        if ad.interfaces.is_empty() {
            any = true;
        }
        interfaces.extend(ad.interfaces.iter().cloned());
    }
    Decision::Announce {
        node: node.to_string(),
        interfaces: if any { None } else { Some(interfaces) },
    }
}

/// The announcing node of every address (the first Service's decision for a shared one).
pub fn winners(cluster: &ClusterView, services: &[ServiceView]) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for svc in services {
        for ip in &svc.ips {
            if let Decision::Announce { node, .. } = decide(cluster, svc, *ip) {
                out.entry(*ip).or_insert(node);
            }
        }
    }
    out
}

/// What one node announces: address → interfaces (`None` = every usable one) and the
/// Services using the address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    pub interfaces: Option<BTreeSet<String>>,
    pub services: BTreeSet<String>,
}

/// Every address `me` announces. An address shared by Services whose decisions differ (only
/// possible for `Local` Services with different endpoints) is announced if any of them elects
/// `me`; the interface lists are merged.
pub fn owned_by(
    cluster: &ClusterView,
    services: &[ServiceView],
    me: &str,
) -> BTreeMap<IpAddr, Owned> {
    let mut out: BTreeMap<IpAddr, Owned> = BTreeMap::new();
    for svc in services {
        for ip in &svc.ips {
            if let Decision::Announce { node, interfaces } = decide(cluster, svc, *ip)
                && node == me
            {
                let entry = out.entry(*ip).or_insert_with(|| Owned {
                    interfaces: Some(BTreeSet::new()),
                    services: BTreeSet::new(),
                });
                entry.services.insert(svc.key.clone());
                entry.interfaces = match (entry.interfaces.take(), interfaces) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
