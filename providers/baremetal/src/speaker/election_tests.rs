#![allow(clippy::unwrap_used)]

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        ..Default::default()
    }
}

/// Three alive nodes (`rack` a/a/b), one pool 192.0.2.0/24 + 2001:db8::/120, one ad for all.
fn cluster() -> ClusterView {
    let mut nodes = BTreeMap::new();
    for (n, rack) in [("node-1", "a"), ("node-2", "a"), ("node-3", "b")] {
        nodes.insert(
            n.to_string(),
            NodeView {
                labels: labels(&[("rack", rack)]),
                ..Default::default()
            },
        );
    }
    ClusterView {
        alive: nodes.keys().cloned().collect(),
        nodes,
        pools: vec![PoolView {
            name: "pool-a".into(),
            labels: labels(&[("tier", "gold")]),
            ranges: vec![
                AddrRange::parse("192.0.2.0/24").unwrap(),
                AddrRange::parse("2001:db8::/120").unwrap(),
            ],
        }],
        ads: vec![AdView {
            name: "all".into(),
            ..Default::default()
        }],
        interfaces: BTreeMap::new(),
    }
}

fn svc(ips: &[&str]) -> ServiceView {
    ServiceView {
        key: "default/web".into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
        local: false,
        endpoint_nodes: BTreeSet::new(),
        has_endpoints: true,
    }
}

fn node_of(d: &Decision) -> Option<&str> {
    match d {
        Decision::Announce { node, .. } => Some(node),
        Decision::NotAnnounced(_) => None,
    }
}

#[test]
fn winner_is_deterministic_and_independent_of_order() {
    let a = ip("192.0.2.10");
    let w1 = winner(["node-1", "node-2", "node-3"], a);
    let w2 = winner(["node-3", "node-1", "node-2"], a);
    assert_eq!(w1, w2);
    assert!(w1.is_some());
    assert_eq!(winner(Vec::<&str>::new(), a), None);
}

#[test]
fn addresses_spread_over_nodes() {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for last in 0..=255u8 {
        let a = IpAddr::from([192, 0, 2, last]);
        *counts
            .entry(winner(["node-1", "node-2", "node-3"], a).unwrap())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|c| *c > 40), "{counts:?}");
}

#[test]
fn removing_a_non_winner_never_moves_an_address() {
    let nodes = ["node-1", "node-2", "node-3", "node-4"];
    for last in 0..=255u8 {
        let a = IpAddr::from([192, 0, 2, last]);
        let w = winner(nodes, a).unwrap();
        for gone in nodes.iter().filter(|n| **n != w) {
            let rest = nodes.iter().copied().filter(|n| n != gone);
            assert_eq!(winner(rest, a), Some(w), "{a} after removing {gone}");
        }
    }
}

const NODES3: [&str; 3] = ["node-1", "node-2", "node-3"];

type Edit = Box<dyn Fn(&mut ClusterView, &mut ServiceView)>;

#[test]
fn decisions_table() {
    let v4 = "192.0.2.10";
    let base = cluster();
    let all_win = node_of(&decide(&base, &svc(&[v4]), ip(v4)))
        .unwrap()
        .to_string();

    struct Case {
        name: &'static str,
        edit: Edit,
        want: Result<&'static [&'static str], Reason>,
    }
    let w = all_win.clone();
    let w2 = all_win.clone();
    let w3 = all_win.clone();
    let cases = vec![
        Case {
            name: "address outside every pool",
            edit: Box::new(|_, s| s.ips = vec![ip("198.51.100.1")]),
            want: Err(Reason::NoPool),
        },
        Case {
            name: "no advertisement",
            edit: Box::new(|c, _| c.ads.clear()),
            want: Err(Reason::NoAdvertisement),
        },
        Case {
            name: "advertisement for another pool",
            edit: Box::new(|c, _| c.ads[0].pools = vec!["pool-b".into()]),
            want: Err(Reason::NoAdvertisement),
        },
        Case {
            name: "advertisement by pool selector",
            edit: Box::new(|c, _| c.ads[0].pool_selectors = vec![sel(&[("tier", "gold")])]),
            want: Ok(&["node-1", "node-2", "node-3"]),
        },
        Case {
            name: "advertisement by non-matching pool selector",
            edit: Box::new(|c, _| c.ads[0].pool_selectors = vec![sel(&[("tier", "lead")])]),
            want: Err(Reason::NoAdvertisement),
        },
        Case {
            name: "no endpoints",
            edit: Box::new(|_, s| s.has_endpoints = false),
            want: Err(Reason::NoEndpoints),
        },
        Case {
            name: "node selector: rack b only",
            edit: Box::new(|c, _| c.ads[0].node_selectors = vec![sel(&[("rack", "b")])]),
            want: Ok(&["node-3"]),
        },
        Case {
            name: "winner excluded",
            edit: Box::new(move |c, _| c.nodes.get_mut(&w).unwrap().excluded = true),
            want: Ok(&["node-1", "node-2", "node-3"]),
        },
        Case {
            name: "winner's network unavailable",
            edit: Box::new(move |c, _| c.nodes.get_mut(&w2).unwrap().network_unavailable = true),
            want: Ok(&["node-1", "node-2", "node-3"]),
        },
        Case {
            name: "winner's speaker dead",
            edit: Box::new(move |c, _| {
                c.alive.remove(&w3);
            }),
            want: Ok(&["node-1", "node-2", "node-3"]),
        },
        Case {
            name: "ad interface only on node-3",
            edit: Box::new(|c, _| {
                c.ads[0].interfaces = vec!["eth1".into()];
                for (n, i) in [("node-1", "eth0"), ("node-2", "eth0"), ("node-3", "eth1")] {
                    c.interfaces.insert(n.into(), [i.to_string()].into());
                }
            }),
            want: Ok(&["node-3"]),
        },
        Case {
            name: "ad interface nowhere",
            edit: Box::new(|c, _| {
                c.ads[0].interfaces = vec!["eth9".into()];
                for n in NODES3 {
                    c.interfaces.insert(n.into(), ["eth0".to_string()].into());
                }
            }),
            want: Err(Reason::NoEligibleNode),
        },
        Case {
            name: "no speaker alive",
            edit: Box::new(|c, _| c.alive.clear()),
            want: Err(Reason::NoEligibleNode),
        },
        Case {
            name: "Local: only the node with the endpoint",
            edit: Box::new(|_, s| {
                s.local = true;
                s.endpoint_nodes = ["node-2".to_string()].into();
            }),
            want: Ok(&["node-2"]),
        },
        Case {
            name: "Local: endpoint on an excluded node only",
            edit: Box::new(|c, s| {
                s.local = true;
                s.endpoint_nodes = ["node-2".to_string()].into();
                c.nodes.get_mut("node-2").unwrap().excluded = true;
            }),
            want: Err(Reason::NoEndpoints),
        },
    ];
    for case in cases {
        let mut c = base.clone();
        let mut s = svc(&[v4]);
        (case.edit)(&mut c, &mut s);
        let d = decide(&c, &s, s.ips[0]);
        match case.want {
            Err(reason) => assert_eq!(d, Decision::NotAnnounced(reason), "{}", case.name),
            Ok(allowed) => {
                let node = node_of(&d).unwrap_or_else(|| panic!("{}: {d:?}", case.name));
                assert!(allowed.contains(&node), "{}: {node}", case.name);
                if case.name.starts_with("winner") {
                    assert_ne!(node, all_win, "{}", case.name);
                }
            }
        }
    }
}

#[test]
fn interfaces_are_the_union_of_the_ads_selecting_the_winner() {
    let mut c = cluster();
    c.ads = vec![
        AdView {
            name: "a".into(),
            interfaces: vec!["eth0".into()],
            ..Default::default()
        },
        AdView {
            name: "b".into(),
            interfaces: vec!["eth1".into()],
            ..Default::default()
        },
    ];
    let s = svc(&["192.0.2.10"]);
    let Decision::Announce { interfaces, .. } = decide(&c, &s, s.ips[0]) else {
        panic!("announced")
    };
    assert_eq!(
        interfaces,
        Some(["eth0".to_string(), "eth1".to_string()].into())
    );
    c.ads.push(AdView {
        name: "c".into(),
        ..Default::default()
    });
    let Decision::Announce { interfaces, .. } = decide(&c, &s, s.ips[0]) else {
        panic!("announced")
    };
    assert_eq!(interfaces, None, "an ad without interfaces means every one");
}

#[test]
fn owned_by_splits_addresses_between_nodes_and_covers_ipv6() {
    let c = cluster();
    let services: Vec<ServiceView> = (1..=30u8)
        .map(|i| ServiceView {
            key: format!("default/s{i}"),
            ips: vec![
                IpAddr::from([192, 0, 2, i]),
                format!("2001:db8::{i:x}").parse().unwrap(),
            ],
            has_endpoints: true,
            ..Default::default()
        })
        .collect();
    let mut total = 0;
    let mut seen = BTreeSet::new();
    for n in ["node-1", "node-2", "node-3"] {
        let owned = owned_by(&c, &services, n);
        assert!(!owned.is_empty(), "{n} owns something");
        for (a, o) in &owned {
            assert!(seen.insert(*a), "{a} owned twice");
            assert_eq!(o.interfaces, None);
            assert_eq!(o.services.len(), 1);
        }
        total += owned.len();
    }
    assert_eq!(total, 60, "every address has exactly one owner");
}
