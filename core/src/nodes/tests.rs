use super::*;
use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

#[derive(Default, Clone)]
struct N {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    taints: &'static [(&'static str, &'static str)],
    provider_id: Option<&'static str>,
    addresses: &'static [(&'static str, &'static str)],
    deleting: bool,
    ready: bool,
    unschedulable: bool,
}

fn node(n: &N) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(n.name.to_owned()),
            labels: Some(
                n.labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            deletion_timestamp: n.deleting.then(|| Time(Default::default())),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: n.provider_id.map(str::to_owned),
            taints: Some(
                n.taints
                    .iter()
                    .map(|(key, effect)| Taint {
                        key: (*key).to_owned(),
                        effect: (*effect).to_owned(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            unschedulable: Some(n.unschedulable),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(
                n.addresses
                    .iter()
                    .map(|(t, a)| NodeAddress {
                        type_: (*t).to_owned(),
                        address: (*a).to_owned(),
                    })
                    .collect(),
            ),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if n.ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

const EX: &str = EXCLUDE_BALANCER_LABEL;

#[test]
fn eligibility_matches_stable_node_set_predicates() {
    let base = N {
        name: "n",
        ready: true,
        provider_id: Some("mock://n"),
        ..Default::default()
    };
    let cases: Vec<(&str, N, bool)> = vec![
        ("plain", base.clone(), true),
        (
            "label absent",
            N {
                labels: &[("other", "true")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude true",
            N {
                labels: &[(EX, "true")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude True",
            N {
                labels: &[(EX, "True")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude TRUE",
            N {
                labels: &[(EX, "TRUE")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude 1",
            N {
                labels: &[(EX, "1")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude t",
            N {
                labels: &[(EX, "t")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude T",
            N {
                labels: &[(EX, "T")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude false",
            N {
                labels: &[(EX, "false")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude False",
            N {
                labels: &[(EX, "False")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude FALSE",
            N {
                labels: &[(EX, "FALSE")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude 0",
            N {
                labels: &[(EX, "0")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude f",
            N {
                labels: &[(EX, "f")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude F",
            N {
                labels: &[(EX, "F")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude empty value",
            N {
                labels: &[(EX, "")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude yes",
            N {
                labels: &[(EX, "yes")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude on",
            N {
                labels: &[(EX, "on")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude excluded",
            N {
                labels: &[(EX, "excluded")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude padded false",
            N {
                labels: &[(EX, " false")],
                ..base.clone()
            },
            false,
        ),
        (
            "autoscaler taint NoSchedule",
            N {
                taints: &[(TAINT_TO_BE_DELETED, "NoSchedule")],
                ..base.clone()
            },
            false,
        ),
        (
            "autoscaler taint PreferNoSchedule",
            N {
                taints: &[(TAINT_TO_BE_DELETED, "PreferNoSchedule")],
                ..base.clone()
            },
            false,
        ),
        (
            "other taint",
            N {
                taints: &[("node.kubernetes.io/not-ready", "NoExecute")],
                ..base.clone()
            },
            true,
        ),
        (
            "deleting",
            N {
                deleting: true,
                ..base.clone()
            },
            false,
        ),
        (
            "not ready",
            N {
                ready: false,
                ..base.clone()
            },
            true,
        ),
        (
            "cordoned",
            N {
                unschedulable: true,
                ..base.clone()
            },
            true,
        ),
        (
            "no providerID",
            N {
                provider_id: None,
                ..base.clone()
            },
            true,
        ),
        (
            "control plane",
            N {
                labels: &[("node-role.kubernetes.io/control-plane", "")],
                taints: &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
                ..base.clone()
            },
            true,
        ),
    ];
    for (name, n, want) in cases {
        assert_eq!(is_eligible(&node(&n)), want, "case {name}");
    }
    assert!(
        is_eligible(&Node::default()),
        "an empty node has nothing excluding it"
    );
}

#[test]
fn conversion_orders_addresses_and_reads_zone() {
    let n = node(&N {
        name: "a",
        provider_id: Some("aws:///us-east-1a/i-1"),
        labels: &[(ZONE_LABEL, "us-east-1a"), (LEGACY_ZONE_LABEL, "old")],
        addresses: &[
            ("Hostname", "a.internal"),
            ("ExternalIP", "203.0.113.5"),
            ("InternalIP", "10.0.0.5"),
            ("InternalIP", "fd00::5"),
            ("InternalIP", "10.0.0.5"),
            ("ExternalIP", "not-an-ip"),
        ],
        ..Default::default()
    });
    let b = to_backend(&n);
    assert_eq!(b.name, "a");
    assert_eq!(b.provider_id.as_deref(), Some("aws:///us-east-1a/i-1"));
    let ips: Vec<String> = b.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(ips, ["10.0.0.5", "fd00::5", "203.0.113.5"]);
    assert_eq!(b.zone.as_deref(), Some("us-east-1a"));

    let legacy = to_backend(&node(&N {
        labels: &[(LEGACY_ZONE_LABEL, "z1")],
        ..Default::default()
    }));
    assert_eq!(legacy.zone.as_deref(), Some("z1"));
    let bare = to_backend(&node(&N {
        provider_id: Some(""),
        ..Default::default()
    }));
    assert_eq!(
        (bare.provider_id, bare.zone, bare.addresses.len()),
        (None, None, 0)
    );
}

#[test]
fn eligible_nodes_sorted_filtered_converted() {
    let nodes: Vec<Node> = [
        N {
            name: "c",
            provider_id: Some("p://c"),
            ..Default::default()
        },
        N {
            name: "a",
            labels: &[(EX, "true")],
            ..Default::default()
        },
        N {
            name: "b",
            provider_id: None,
            ..Default::default()
        },
        N {
            name: "d",
            taints: &[(TAINT_TO_BE_DELETED, "NoSchedule")],
            ..Default::default()
        },
        N {
            name: "a2",
            ready: false,
            ..Default::default()
        },
        N {
            name: "",
            ..Default::default()
        },
    ]
    .iter()
    .map(node)
    .collect();
    let got: Vec<(String, Option<String>)> = eligible_nodes(&nodes)
        .into_iter()
        .map(|b| (b.name, b.provider_id))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a2".into(), None),
            ("b".into(), None),
            ("c".into(), Some("p://c".into()))
        ]
    );
    assert!(eligible_nodes(&[]).is_empty());
}

#[test]
fn node_updates_that_trigger_sync() {
    let base = N {
        name: "n",
        ready: true,
        provider_id: Some("p://n"),
        addresses: &[("InternalIP", "10.0.0.1")],
        labels: &[(ZONE_LABEL, "z1")],
        ..Default::default()
    };
    let cases: Vec<(&str, N, bool)> = vec![
        ("no change", base.clone(), false),
        (
            "readiness flip",
            N {
                ready: false,
                ..base.clone()
            },
            false,
        ),
        (
            "cordoned",
            N {
                unschedulable: true,
                ..base.clone()
            },
            false,
        ),
        (
            "autoscaler taint",
            N {
                taints: &[(TAINT_TO_BE_DELETED, "NoSchedule")],
                ..base.clone()
            },
            false,
        ),
        (
            "deletion started",
            N {
                deleting: true,
                ..base.clone()
            },
            false,
        ),
        (
            "unrelated label",
            N {
                labels: &[(ZONE_LABEL, "z1"), ("x", "y")],
                ..base.clone()
            },
            false,
        ),
        (
            "excluded",
            N {
                labels: &[(ZONE_LABEL, "z1"), (EX, "true")],
                ..base.clone()
            },
            true,
        ),
        (
            "exclude=false is no flip",
            N {
                labels: &[(ZONE_LABEL, "z1"), (EX, "false")],
                ..base.clone()
            },
            false,
        ),
        (
            "exclude=garbage flips",
            N {
                labels: &[(ZONE_LABEL, "z1"), (EX, "")],
                ..base.clone()
            },
            true,
        ),
        (
            "providerID set later",
            N {
                provider_id: Some("p://n2"),
                ..base.clone()
            },
            true,
        ),
        (
            "providerID removed",
            N {
                provider_id: None,
                ..base.clone()
            },
            true,
        ),
        (
            "address change",
            N {
                addresses: &[("InternalIP", "10.0.0.2")],
                ..base.clone()
            },
            true,
        ),
        (
            "zone change",
            N {
                labels: &[(ZONE_LABEL, "z2")],
                ..base.clone()
            },
            true,
        ),
    ];
    let old = node(&base);
    for (name, n, want) in cases {
        let new = node(&n);
        assert_eq!(backend_set_changed(&old, &new), want, "case {name}");
        assert_eq!(
            backend_set_changed(&new, &old),
            want,
            "case {name} (reversed)"
        );
    }
    let mut excluded = base.clone();
    excluded.labels = &[(EX, "true")];
    let mut still = base.clone();
    still.labels = &[(EX, "yes")];
    assert!(
        !backend_set_changed(&node(&excluded), &node(&still)),
        "both excluded"
    );
}
