//! Rules in the nodes' security groups. An NLB with a security group sends client traffic and
//! health checks from that group, so the instances accept them only when their own group lets
//! the NLB's group in on the NodePorts (and the health check port). frontdesk adds exactly those
//! rules (source = the NLB's group, one per port and protocol), keeps them in step with the
//! Service's ports, and removes them before it deletes the NLB's group (AWS refuses to delete a
//! group another group's rule still names).
//!
//! Which group of an instance is "the node group" follows the upstream AWS provider: the
//! instance's only group, else the one tagged `kubernetes.io/cluster/<cluster>`.

use std::collections::{BTreeMap, BTreeSet};

use frontdesk_core::provider::ProviderError;

use crate::api::Api;
use crate::desired::{Desired, SgRule, delta};
use crate::ec2;

/// The rules one NLB needs in each node group: every target group's NodePort per protocol,
/// plus the health check port (health checks are TCP, HTTP or HTTPS: always TCP).
pub fn wanted(d: &Desired, lb_sg: &str) -> BTreeSet<SgRule> {
    let rule = |protocol: &str, port: u16| SgRule {
        protocol: protocol.to_string(),
        port,
        peer: lb_sg.to_string(),
    };
    let mut out = BTreeSet::new();
    for tg in &d.tgs {
        for p in tg.protocol.ip_protocols() {
            out.insert(rule(p, tg.node_port));
        }
        let health_port = tg.health.port.parse::<u16>().unwrap_or(tg.node_port);
        out.insert(rule("tcp", health_port));
    }
    out
}

/// Pick the node group of each instance; instances with several groups and none (or more than
/// one) tagged for the cluster are skipped with a warning, as upstream does.
pub fn pick_node_groups(
    instances: &BTreeMap<String, Vec<String>>,
    tags: &BTreeMap<String, BTreeMap<String, String>>,
    cluster: &str,
) -> BTreeSet<String> {
    let key = format!("kubernetes.io/cluster/{cluster}");
    let mut out = BTreeSet::new();
    for (instance, groups) in instances {
        if let [only] = groups.as_slice() {
            out.insert(only.clone());
            continue;
        }
        let tagged: Vec<&String> = groups
            .iter()
            .filter(|g| tags.get(*g).is_some_and(|t| t.contains_key(&key)))
            .collect();
        match tagged.as_slice() {
            [one] => {
                out.insert((*one).clone());
            }
            _ => tracing::warn!(
                %instance,
                "instance has several security groups and not exactly one tagged {key}; \
                 its group gets no NLB rule (tag the node group)"
            ),
        }
    }
    out
}

/// Bring the node groups of `instances` to exactly `want` for `lb_sg`; rules naming `lb_sg` in
/// groups that are no node group any more are removed.
pub async fn converge(
    api: &Api,
    instances: &[String],
    cluster: &str,
    lb_sg: &str,
    want: &BTreeSet<SgRule>,
) -> Result<(), ProviderError> {
    let by_instance = ec2::instance_groups(api, instances).await?;
    let several = by_instance.values().any(|g| g.len() > 1);
    let tags = if several {
        let ids: BTreeSet<String> = by_instance.values().flatten().cloned().collect();
        ec2::security_groups(api, vec![("group-id", ids.into_iter().collect())])
            .await?
            .into_iter()
            .map(|g| (g.id, g.tags))
            .collect()
    } else {
        BTreeMap::new()
    };
    let node_groups = pick_node_groups(&by_instance, &tags, cluster);
    let referencing = ec2::security_groups(
        api,
        vec![("ip-permission.group-id", vec![lb_sg.to_string()])],
    )
    .await?;
    let current = |id: &str| -> BTreeSet<SgRule> {
        referencing
            .iter()
            .filter(|g| g.id == id)
            .flat_map(|g| g.rules.iter().filter(|r| r.peer == lb_sg).cloned())
            .collect()
    };
    for group in &node_groups {
        let (add, remove) = delta(&current(group), want);
        if !add.is_empty() {
            ec2::authorize(api, group, &add).await?;
        }
        if !remove.is_empty() {
            ec2::revoke(api, group, &remove).await?;
        }
    }
    for g in referencing.iter().filter(|g| !node_groups.contains(&g.id)) {
        let stale: Vec<SgRule> = current(&g.id).into_iter().collect();
        if !stale.is_empty() {
            ec2::revoke(api, &g.id, &stale).await?;
        }
    }
    Ok(())
}

/// Remove every rule that names `lb_sg` as its source (before `lb_sg` is deleted).
pub async fn release(api: &Api, lb_sg: &str) -> Result<(), ProviderError> {
    let referencing = ec2::security_groups(
        api,
        vec![("ip-permission.group-id", vec![lb_sg.to_string()])],
    )
    .await?;
    for g in referencing {
        let rules: Vec<SgRule> = g.rules.into_iter().filter(|r| r.peer == lb_sg).collect();
        if !rules.is_empty() {
            ec2::revoke(api, &g.id, &rules).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (instance, its groups).
    type Instances<'a> = &'a [(&'a str, &'a [&'a str])];

    fn map(rows: Instances<'_>) -> BTreeMap<String, Vec<String>> {
        rows.iter()
            .map(|(i, g)| (i.to_string(), g.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn node_group_choice_follows_upstream() {
        let tags: BTreeMap<String, BTreeMap<String, String>> = [
            (
                "sg-tagged".to_string(),
                BTreeMap::from([(
                    "kubernetes.io/cluster/prod".to_string(),
                    "owned".to_string(),
                )]),
            ),
            ("sg-other".to_string(), BTreeMap::new()),
        ]
        .into();
        let cases: &[(Instances<'_>, &[&str])] = &[
            // The only group, tagged or not.
            (&[("i-1", &["sg-a"])], &["sg-a"]),
            // Several: the one tagged for the cluster.
            (&[("i-1", &["sg-other", "sg-tagged"])], &["sg-tagged"]),
            // Several, none tagged: skipped.
            (&[("i-1", &["sg-other", "sg-x"])], &[]),
            // No group at all: skipped.
            (&[("i-1", &[])], &[]),
            (
                &[("i-1", &["sg-a"]), ("i-2", &["sg-tagged", "sg-other"])],
                &["sg-a", "sg-tagged"],
            ),
        ];
        for (instances, want) in cases {
            let got = pick_node_groups(&map(instances), &tags, "prod");
            let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, want, "{instances:?}");
        }
    }
}
