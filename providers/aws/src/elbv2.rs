//! The ELBv2 and EC2 calls the provider makes, one small function per call, each through
//! `Api::call`. "Not found" answers become `None` where the caller can act on absence.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::types as ec2t;
use aws_sdk_elasticloadbalancingv2::types as t;
use frontdesk_core::naming::TAG_SERVICE_UID;
use frontdesk_core::provider::ProviderError;

use crate::api::Api;
use crate::desired::{CurrentListener, Desired, HealthSpec, SgRule, TgSpec};
use crate::options::HcProtocol;

/// A subnet chosen for the load balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    pub vpc: String,
    pub tags: BTreeMap<String, String>,
}

fn elb_tags(tags: &BTreeMap<String, String>) -> Vec<t::Tag> {
    tags.iter()
        .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
        .collect()
}

fn not_found_is_none<T>(r: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ProviderError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn find_lb(api: &Api, name: &str) -> Result<Option<t::LoadBalancer>, ProviderError> {
    let out = not_found_is_none(
        api.call(
            "DescribeLoadBalancers",
            api.elb.describe_load_balancers().names(name).send(),
        )
        .await,
    )?;
    Ok(out.and_then(|o| o.load_balancers().first().cloned()))
}

/// All load balancers, page by page.
pub async fn all_lbs(api: &Api) -> Result<Vec<t::LoadBalancer>, ProviderError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = api
            .call(
                "DescribeLoadBalancers",
                api.elb
                    .describe_load_balancers()
                    .set_marker(marker.clone())
                    .page_size(400)
                    .send(),
            )
            .await?;
        out.extend(page.load_balancers().iter().cloned());
        match page.next_marker() {
            Some(m) if !m.is_empty() && Some(m) != marker.as_deref() => marker = Some(m.into()),
            _ => return Ok(out),
        }
    }
}

/// Tags of up to 20 resources per call.
pub async fn tags_of(
    api: &Api,
    arns: &[String],
) -> Result<HashMap<String, BTreeMap<String, String>>, ProviderError> {
    let mut out = HashMap::new();
    for chunk in arns.chunks(20) {
        let res = api
            .call(
                "DescribeTags",
                api.elb
                    .describe_tags()
                    .set_resource_arns(Some(chunk.to_vec()))
                    .send(),
            )
            .await?;
        for d in res.tag_descriptions() {
            let tags = d
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    Ok(out)
}

pub async fn add_tags(
    api: &Api,
    arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    api.call(
        "AddTags",
        api.elb
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(elb_tags(tags)))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn create_lb(
    api: &Api,
    d: &Desired,
    subnets: &[Subnet],
    security_groups: &[String],
) -> Result<t::LoadBalancer, ProviderError> {
    let o = &d.options;
    let mappings = subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            t::SubnetMapping::builder()
                .subnet_id(&s.id)
                .set_allocation_id(o.eip_allocations.as_ref().and_then(|e| e.get(i).cloned()))
                .set_private_ipv4_address(
                    o.private_ipv4
                        .as_ref()
                        .and_then(|p| p.get(i).map(ToString::to_string)),
                )
                .build()
        })
        .collect::<Vec<_>>();
    let mut req = api
        .elb
        .create_load_balancer()
        .name(&d.lb_name)
        .r#type(t::LoadBalancerTypeEnum::Network)
        .scheme(t::LoadBalancerSchemeEnum::from(d.scheme_str()))
        .set_subnet_mappings(Some(mappings))
        .set_tags(Some(elb_tags(&d.tags)))
        .ip_address_type(t::IpAddressType::from(o.ip_address_type.as_str()));
    if !security_groups.is_empty() {
        req = req.set_security_groups(Some(security_groups.to_vec()));
    }
    match api.call("CreateLoadBalancer", req.send()).await {
        Ok(out) => out.load_balancers().first().cloned().ok_or_else(|| {
            ProviderError::transient("CreateLoadBalancer: answer names no load balancer")
        }),
        // Our own earlier attempt (answer lost) made it, with other parameters: adopt it by
        // name; ensure converges the rest.
        Err(ProviderError::Conflict(m)) => find_lb(api, &d.lb_name)
            .await?
            .ok_or(ProviderError::Conflict(m)),
        Err(e) => Err(e),
    }
}

pub async fn delete_lb(api: &Api, arn: &str) -> Result<(), ProviderError> {
    match api
        .call(
            "DeleteLoadBalancer",
            api.elb.delete_load_balancer().load_balancer_arn(arn).send(),
        )
        .await
    {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn set_security_groups(
    api: &Api,
    arn: &str,
    sgs: &[String],
) -> Result<(), ProviderError> {
    api.call(
        "SetSecurityGroups",
        api.elb
            .set_security_groups()
            .load_balancer_arn(arn)
            .set_security_groups(Some(sgs.to_vec()))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn set_ip_address_type(api: &Api, arn: &str, ty: &str) -> Result<(), ProviderError> {
    api.call(
        "SetIpAddressType",
        api.elb
            .set_ip_address_type()
            .load_balancer_arn(arn)
            .ip_address_type(t::IpAddressType::from(ty))
            .send(),
    )
    .await
    .map(|_| ())
}

/// The wanted attributes whose current value differs (LB and target-group attributes are
/// both plain key/value lists; keys we do not manage are left alone).
fn attribute_changes<'a>(
    have: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
    want: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    let have: BTreeMap<&str, &str> = have
        .filter_map(|(k, v)| Some((k?, v.unwrap_or(""))))
        .collect();
    want.iter()
        .filter(move |(k, v)| have.get(k.as_str()) != Some(&v.as_str()))
}

/// Bring the managed LB attributes to `want` (other keys are left alone).
pub async fn converge_lb_attributes(
    api: &Api,
    arn: &str,
    want: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    if want.is_empty() {
        return Ok(());
    }
    let cur = api
        .call(
            "DescribeLoadBalancerAttributes",
            api.elb
                .describe_load_balancer_attributes()
                .load_balancer_arn(arn)
                .send(),
        )
        .await?;
    let have = cur.attributes().iter().map(|a| (a.key(), a.value()));
    let change: Vec<t::LoadBalancerAttribute> = attribute_changes(have, want)
        .map(|(k, v)| t::LoadBalancerAttribute::builder().key(k).value(v).build())
        .collect();
    if change.is_empty() {
        return Ok(());
    }
    api.call(
        "ModifyLoadBalancerAttributes",
        api.elb
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .set_attributes(Some(change))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn tgs_of_lb(api: &Api, lb_arn: &str) -> Result<Vec<t::TargetGroup>, ProviderError> {
    let out = not_found_is_none(
        api.call(
            "DescribeTargetGroups",
            api.elb
                .describe_target_groups()
                .load_balancer_arn(lb_arn)
                .send(),
        )
        .await,
    )?;
    Ok(out.map(|o| o.target_groups().to_vec()).unwrap_or_default())
}

pub async fn find_tg(api: &Api, name: &str) -> Result<Option<t::TargetGroup>, ProviderError> {
    let out = not_found_is_none(
        api.call(
            "DescribeTargetGroups",
            api.elb.describe_target_groups().names(name).send(),
        )
        .await,
    )?;
    Ok(out.and_then(|o| o.target_groups().first().cloned()))
}

/// The health check as the cloud reports it, in the shape `HealthSpec` compares.
pub fn health_of(tg: &t::TargetGroup) -> HealthSpec {
    let protocol = match tg.health_check_protocol().map(|p| p.as_str()) {
        Some("HTTP") => HcProtocol::Http,
        Some("HTTPS") => HcProtocol::Https,
        _ => HcProtocol::Tcp,
    };
    HealthSpec {
        protocol,
        port: tg.health_check_port().unwrap_or("traffic-port").to_string(),
        path: match protocol {
            HcProtocol::Tcp => None,
            _ => tg.health_check_path().map(String::from),
        },
        interval: tg.health_check_interval_seconds().unwrap_or_default(),
        timeout: tg.health_check_timeout_seconds().unwrap_or_default(),
        healthy: tg.healthy_threshold_count().unwrap_or_default(),
        unhealthy: tg.unhealthy_threshold_count().unwrap_or_default(),
    }
}

pub async fn create_tg(
    api: &Api,
    tg: &TgSpec,
    vpc: &str,
    tags: &BTreeMap<String, String>,
) -> Result<t::TargetGroup, ProviderError> {
    let h = &tg.health;
    let req = api
        .elb
        .create_target_group()
        .name(&tg.name)
        .protocol(t::ProtocolEnum::from(tg.protocol.as_str()))
        .port(i32::from(tg.node_port))
        .vpc_id(vpc)
        .target_type(t::TargetTypeEnum::Instance)
        .health_check_enabled(true)
        .health_check_protocol(t::ProtocolEnum::from(h.protocol.as_str()))
        .health_check_port(&h.port)
        .set_health_check_path(h.path.clone())
        .health_check_interval_seconds(h.interval)
        .health_check_timeout_seconds(h.timeout)
        .healthy_threshold_count(h.healthy)
        .unhealthy_threshold_count(h.unhealthy)
        .set_tags(Some(elb_tags(tags)));
    match api.call("CreateTargetGroup", req.send()).await {
        Ok(out) => out.target_groups().first().cloned().ok_or_else(|| {
            ProviderError::transient("CreateTargetGroup: answer names no target group")
        }),
        // Made by an earlier attempt whose answer was lost (or the LB was recreated): adopt.
        Err(ProviderError::Conflict(m)) => find_tg(api, &tg.name)
            .await?
            .ok_or(ProviderError::Conflict(m)),
        Err(e) => Err(e),
    }
}

pub async fn modify_tg_health(api: &Api, arn: &str, h: &HealthSpec) -> Result<(), ProviderError> {
    api.call(
        "ModifyTargetGroup",
        api.elb
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_protocol(t::ProtocolEnum::from(h.protocol.as_str()))
            .health_check_port(&h.port)
            .set_health_check_path(h.path.clone())
            .health_check_interval_seconds(h.interval)
            .health_check_timeout_seconds(h.timeout)
            .healthy_threshold_count(h.healthy)
            .unhealthy_threshold_count(h.unhealthy)
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn converge_tg_attributes(
    api: &Api,
    arn: &str,
    want: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    if want.is_empty() {
        return Ok(());
    }
    let cur = api
        .call(
            "DescribeTargetGroupAttributes",
            api.elb
                .describe_target_group_attributes()
                .target_group_arn(arn)
                .send(),
        )
        .await?;
    let have = cur.attributes().iter().map(|a| (a.key(), a.value()));
    let change: Vec<t::TargetGroupAttribute> = attribute_changes(have, want)
        .map(|(k, v)| t::TargetGroupAttribute::builder().key(k).value(v).build())
        .collect();
    if change.is_empty() {
        return Ok(());
    }
    api.call(
        "ModifyTargetGroupAttributes",
        api.elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .set_attributes(Some(change))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn delete_tg(api: &Api, arn: &str) -> Result<(), ProviderError> {
    match api
        .call(
            "DeleteTargetGroup",
            api.elb.delete_target_group().target_group_arn(arn).send(),
        )
        .await
    {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn listeners(api: &Api, lb_arn: &str) -> Result<Vec<CurrentListener>, ProviderError> {
    let out = api
        .call(
            "DescribeListeners",
            api.elb
                .describe_listeners()
                .load_balancer_arn(lb_arn)
                .send(),
        )
        .await?;
    Ok(out
        .listeners()
        .iter()
        .map(|l| CurrentListener {
            arn: l.listener_arn().unwrap_or_default().to_string(),
            port: l.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            protocol: l
                .protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            target_group_arn: l
                .default_actions()
                .iter()
                .find_map(|a| a.target_group_arn().map(String::from)),
        })
        .collect())
}

fn forward(tg_arn: &str) -> t::Action {
    t::Action::builder()
        .r#type(t::ActionTypeEnum::Forward)
        .target_group_arn(tg_arn)
        .build()
}

pub async fn create_listener(
    api: &Api,
    lb_arn: &str,
    tg: &TgSpec,
    tg_arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    api.call(
        "CreateListener",
        api.elb
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(t::ProtocolEnum::from(tg.protocol.as_str()))
            .port(i32::from(tg.port))
            .default_actions(forward(tg_arn))
            .set_tags(Some(elb_tags(tags)))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn modify_listener(
    api: &Api,
    arn: &str,
    tg: &TgSpec,
    tg_arn: &str,
) -> Result<(), ProviderError> {
    api.call(
        "ModifyListener",
        api.elb
            .modify_listener()
            .listener_arn(arn)
            .protocol(t::ProtocolEnum::from(tg.protocol.as_str()))
            .port(i32::from(tg.port))
            .default_actions(forward(tg_arn))
            .send(),
    )
    .await
    .map(|_| ())
}

pub async fn delete_listener(api: &Api, arn: &str) -> Result<(), ProviderError> {
    match api
        .call(
            "DeleteListener",
            api.elb.delete_listener().listener_arn(arn).send(),
        )
        .await
    {
        Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Registered instance ids (targets being drained are already on their way out).
pub async fn targets(api: &Api, tg_arn: &str) -> Result<BTreeSet<String>, ProviderError> {
    let out = api
        .call(
            "DescribeTargetHealth",
            api.elb
                .describe_target_health()
                .target_group_arn(tg_arn)
                .send(),
        )
        .await?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter(|d| {
            d.target_health().and_then(|h| h.state()) != Some(&t::TargetHealthStateEnum::Draining)
        })
        .filter_map(|d| d.target().and_then(|t| t.id()).map(String::from))
        .collect())
}

fn target_list(ids: &[String], port: u16) -> Vec<t::TargetDescription> {
    ids.iter()
        .map(|id| {
            t::TargetDescription::builder()
                .id(id)
                .port(i32::from(port))
                .build()
        })
        .collect()
}

/// AWS accepts at most this many targets per Register/Deregister call.
const TARGET_CHUNK: usize = 100;

pub async fn register(
    api: &Api,
    tg_arn: &str,
    ids: &[String],
    port: u16,
) -> Result<(), ProviderError> {
    for chunk in ids.chunks(TARGET_CHUNK) {
        api.call(
            "RegisterTargets",
            api.elb
                .register_targets()
                .target_group_arn(tg_arn)
                .set_targets(Some(target_list(chunk, port)))
                .send(),
        )
        .await?;
    }
    Ok(())
}

pub async fn deregister(
    api: &Api,
    tg_arn: &str,
    ids: &[String],
    port: u16,
) -> Result<(), ProviderError> {
    for chunk in ids.chunks(TARGET_CHUNK) {
        match api
            .call(
                "DeregisterTargets",
                api.elb
                    .deregister_targets()
                    .target_group_arn(tg_arn)
                    .set_targets(Some(target_list(chunk, port)))
                    .send(),
            )
            .await
        {
            // InvalidTarget on deregister: the instance is gone already; that is the goal.
            Ok(_) => {}
            Err(e) if e.to_string().contains("InvalidTarget") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---- EC2 ----

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
