//! The EC2 calls the provider makes (subnets, security groups, instances' groups), one small
//! function per call, each through `Api::call`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types as ec2t;
use frontdesk_core::naming::TAG_SERVICE_UID;
use frontdesk_core::provider::ProviderError;

use crate::api::Api;
use crate::desired::SgRule;

/// A subnet chosen for the load balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    pub vpc: String,
    pub tags: BTreeMap<String, String>,
}

/// The security groups of each instance (instances that no longer exist are left out).
pub async fn instance_groups(
    api: &Api,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>, ProviderError> {
    let mut out = BTreeMap::new();
    // At most 200 filter values per call.
    for chunk in ids.chunks(200) {
        let mut token = None;
        loop {
            let page = api
                .call(
                    "DescribeInstances",
                    api.ec2
                        .describe_instances()
                        .filters(filter("instance-id", chunk))
                        .set_next_token(token.take())
                        .send(),
                )
                .await?;
            for inst in page.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = inst.instance_id() else {
                    continue;
                };
                let groups = inst
                    .security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(String::from))
                    .collect();
                out.insert(id.to_string(), groups);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(out)
}

fn filter(name: &str, values: &[String]) -> ec2t::Filter {
    ec2t::Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

fn subnet_of(s: &ec2t::Subnet) -> Subnet {
    Subnet {
        id: s.subnet_id().unwrap_or_default().to_string(),
        az: s.availability_zone().unwrap_or_default().to_string(),
        vpc: s.vpc_id().unwrap_or_default().to_string(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect(),
    }
}

pub async fn subnets(api: &Api, filters: Vec<ec2t::Filter>) -> Result<Vec<Subnet>, ProviderError> {
    let out = api
        .call(
            "DescribeSubnets",
            api.ec2.describe_subnets().set_filters(Some(filters)).send(),
        )
        .await?;
    Ok(out.subnets().iter().map(subnet_of).collect())
}

pub fn subnet_filter(name: &str, values: &[String]) -> ec2t::Filter {
    filter(name, values)
}

/// An owned security group: id, name, its uid tag and its single-port ingress rules.
#[derive(Clone, Debug)]
pub struct OwnedSg {
    pub id: String,
    pub name: String,
    pub uid: Option<String>,
    pub rules: BTreeSet<SgRule>,
    pub tags: BTreeMap<String, String>,
}

fn owned_sg(g: &ec2t::SecurityGroup) -> OwnedSg {
    let tag = |k: &str| {
        g.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value().map(String::from))
    };
    let mut rules = BTreeSet::new();
    for p in g.ip_permissions() {
        let (Some(proto), Some(from), Some(to)) = (p.ip_protocol(), p.from_port(), p.to_port())
        else {
            continue;
        };
        let Ok(port) = u16::try_from(from) else {
            continue;
        };
        if from != to || !(proto == "tcp" || proto == "udp") {
            continue;
        }
        let v4 = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
        let v6 = p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
        let groups = p.user_id_group_pairs().iter().filter_map(|g| g.group_id());
        for peer in v4.chain(v6).chain(groups) {
            rules.insert(SgRule {
                protocol: proto.to_string(),
                port,
                peer: peer.to_string(),
            });
        }
    }
    OwnedSg {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        uid: tag(TAG_SERVICE_UID),
        rules,
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
    }
}

pub async fn security_groups(
    api: &Api,
    filters: Vec<(&str, Vec<String>)>,
) -> Result<Vec<OwnedSg>, ProviderError> {
    let filters = filters.iter().map(|(n, v)| filter(n, v)).collect();
    let out = api
        .call(
            "DescribeSecurityGroups",
            api.ec2
                .describe_security_groups()
                .set_filters(Some(filters))
                .send(),
        )
        .await?;
    Ok(out.security_groups().iter().map(owned_sg).collect())
}

pub async fn create_sg(
    api: &Api,
    name: &str,
    vpc: &str,
    tags: &BTreeMap<String, String>,
) -> Result<String, ProviderError> {
    let spec = ec2t::TagSpecification::builder()
        .resource_type(ec2t::ResourceType::SecurityGroup)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| ec2t::Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let out = api
        .call(
            "CreateSecurityGroup",
            api.ec2
                .create_security_group()
                .group_name(name)
                .description("frontdesk: client access to one Network Load Balancer")
                .vpc_id(vpc)
                .tag_specifications(spec)
                .send(),
        )
        .await?;
    out.group_id()
        .map(String::from)
        .ok_or_else(|| ProviderError::transient("CreateSecurityGroup: answer has no group id"))
}

/// Description of the node security group rules that let one NLB's security group in.
pub const NODE_RULE_DESCRIPTION: &str = "frontdesk: NodePort traffic and health checks from an NLB";

fn permissions(rules: &[SgRule]) -> Vec<ec2t::IpPermission> {
    rules
        .iter()
        .map(|r| {
            let b = ec2t::IpPermission::builder()
                .ip_protocol(&r.protocol)
                .from_port(i32::from(r.port))
                .to_port(i32::from(r.port));
            if r.peer.starts_with("sg-") {
                let pair = ec2t::UserIdGroupPair::builder()
                    .group_id(&r.peer)
                    .description(NODE_RULE_DESCRIPTION)
                    .build();
                b.user_id_group_pairs(pair).build()
            } else if r.peer.contains(':') {
                b.ipv6_ranges(ec2t::Ipv6Range::builder().cidr_ipv6(&r.peer).build())
                    .build()
            } else {
                b.ip_ranges(ec2t::IpRange::builder().cidr_ip(&r.peer).build())
                    .build()
            }
        })
        .collect()
}

pub async fn authorize(api: &Api, sg: &str, rules: &[SgRule]) -> Result<(), ProviderError> {
    match api
        .call(
            "AuthorizeSecurityGroupIngress",
            api.ec2
                .authorize_security_group_ingress()
                .group_id(sg)
                .set_ip_permissions(Some(permissions(rules)))
                .send(),
        )
        .await
    {
        // Already there (our lost answer): the goal state.
        Ok(_) => Ok(()),
        Err(ProviderError::Conflict(m)) if m.contains("InvalidPermission.Duplicate") => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn revoke(api: &Api, sg: &str, rules: &[SgRule]) -> Result<(), ProviderError> {
    match api
        .call(
            "RevokeSecurityGroupIngress",
            api.ec2
                .revoke_security_group_ingress()
                .group_id(sg)
                .set_ip_permissions(Some(permissions(rules)))
                .send(),
        )
        .await
    {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn delete_sg(api: &Api, id: &str) -> Result<(), ProviderError> {
    match api
        .call(
            "DeleteSecurityGroup",
            api.ec2.delete_security_group().group_id(id).send(),
        )
        .await
    {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
