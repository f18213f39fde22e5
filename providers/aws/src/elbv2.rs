//! The ELBv2 calls the provider makes, one small function per call, each through `Api::call`.
//! "Not found" answers become `None` where the caller can act on absence. EC2 is in `ec2`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_elasticloadbalancingv2::types as t;
use frontdesk_core::provider::ProviderError;

use crate::api::Api;
use crate::desired::{CurrentListener, Desired, HealthSpec, TgSpec};
use crate::ec2::Subnet;
use crate::options::HcProtocol;

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
