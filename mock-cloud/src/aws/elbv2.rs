//! ELBv2 state and the load balancer, listener and tag operations (target groups and targets in
//! [`super::elbv2_tg`]). Only network load balancers are modelled.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::elbv2_tg::{self, Tg};
use super::query::Params;
use super::xml::Xml;
use super::{AwsError, AwsState, Env, REGION};
use crate::state::Instances;

mod common;
pub(crate) use common::{arn, now_rfc3339, page, parse_tags, validate_name, write_tags};

/// NLB hosted zone of us-east-1.
const NLB_HOSTED_ZONE: &str = "Z26RNL4JYFTOTI";
const MAX_PAGE: i64 = 400;
const MAX_TAGS: usize = 50;

#[derive(Debug, Default)]
pub(crate) struct ElbState {
    pub lbs: BTreeMap<String, Lb>,
    pub tgs: BTreeMap<String, Tg>,
    pub listeners: BTreeMap<String, Listener>,
    seq: u64,
}

impl ElbState {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Load balancers that forward to `tg_arn` through a listener.
    pub fn lbs_of_tg(&self, tg_arn: &str) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter(|l| l.target_group == tg_arn)
            .map(|l| l.lb_arn.clone())
            .collect()
    }

    /// Whether a security group is attached to any load balancer.
    pub fn uses_group(&self, group_id: &str) -> bool {
        self.lbs
            .values()
            .any(|lb| lb.security_groups.iter().any(|g| g == group_id))
    }
}

/// One subnet of a load balancer, with its optional fixed address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Mapping {
    pub subnet_id: String,
    pub allocation_id: Option<String>,
    pub private_ip: Option<String>,
}

/// What makes two CreateLoadBalancer requests "the same".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LbSpec {
    pub scheme: String,
    pub mappings: Vec<Mapping>,
    pub security_groups: Vec<String>,
    pub ip_address_type: String,
}

#[derive(Debug)]
pub(crate) struct Lb {
    pub seq: u64,
    pub arn: String,
    pub name: String,
    pub dns: String,
    pub vpc: String,
    pub spec: LbSpec,
    /// Zone of each mapping, same order.
    pub zones: Vec<String>,
    pub security_groups: Vec<String>,
    pub created: String,
    pub ready_at: Instant,
    pub tags: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug)]
pub(crate) struct Listener {
    pub seq: u64,
    pub arn: String,
    pub lb_arn: String,
    pub port: i64,
    pub protocol: String,
    pub target_group: String,
    pub tags: BTreeMap<String, String>,
}

fn lb_state(lb: &Lb, now: Instant) -> &'static str {
    if now >= lb.ready_at {
        "active"
    } else {
        "provisioning"
    }
}

pub(crate) fn write_lb(x: &mut Xml, lb: &Lb, now: Instant) {
    x.elem("member", |x| {
        x.leaf("LoadBalancerArn", &lb.arn)
            .leaf("DNSName", &lb.dns)
            .leaf("CanonicalHostedZoneId", NLB_HOSTED_ZONE)
            .leaf("CreatedTime", &lb.created)
            .leaf("LoadBalancerName", &lb.name)
            .leaf("Scheme", &lb.spec.scheme)
            .leaf("VpcId", &lb.vpc)
            .elem("State", |x| {
                x.leaf("Code", lb_state(lb, now));
            })
            .leaf("Type", "network");
        let zones = lb.spec.mappings.iter().zip(&lb.zones);
        x.list("AvailabilityZones", "member", zones, |x, (m, zone)| {
            x.leaf("ZoneName", zone).leaf("SubnetId", &m.subnet_id);
            if m.allocation_id.is_some() || m.private_ip.is_some() {
                x.list("LoadBalancerAddresses", "member", [m], |x, m| {
                    if let Some(alloc) = &m.allocation_id {
                        x.leaf("IpAddress", eip_address(alloc))
                            .leaf("AllocationId", alloc);
                    }
                    x.opt("PrivateIPv4Address", m.private_ip.as_ref());
                });
            }
        });
        if !lb.security_groups.is_empty() {
            x.list("SecurityGroups", "member", &lb.security_groups, |x, g| {
                x.text(g);
            });
        }
        x.leaf("IpAddressType", &lb.spec.ip_address_type);
    });
}

/// A stable documentation-range address for an Elastic IP allocation id.
fn eip_address(alloc: &str) -> String {
    let sum: u32 = alloc.bytes().map(u32::from).sum();
    format!("198.51.100.{}", sum % 254 + 1)
}

fn lb_attribute_defaults() -> BTreeMap<String, String> {
    [
        ("deletion_protection.enabled", "false"),
        ("load_balancing.cross_zone.enabled", "false"),
        ("access_logs.s3.enabled", "false"),
        ("access_logs.s3.bucket", ""),
        ("access_logs.s3.prefix", ""),
        ("ipv6.deny_all_igw_traffic", "false"),
        ("dns_record.client_routing_policy", "any_availability_zone"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Apply `Attributes.member.N.{Key,Value}` to `attrs`: unknown keys and non-boolean values of
/// `*.enabled` keys are rejected before anything changes.
pub(crate) fn apply_attributes(
    attrs: &mut BTreeMap<String, String>,
    p: &Params,
    what: &str,
) -> Result<(), AwsError> {
    let mut updates = Vec::new();
    for a in p.structs("Attributes") {
        let key = a.get("Key").unwrap_or_default();
        let value = a.get("Value").unwrap_or_default();
        if !attrs.contains_key(key) {
            return Err(AwsError::validation(format!(
                "{what} attribute key '{key}' is not recognized"
            )));
        }
        if key.ends_with(".enabled") && value != "true" && value != "false" {
            return Err(AwsError::validation(format!(
                "{what} attribute '{key}' must be true or false, not '{value}'"
            )));
        }
        updates.push((key.to_string(), value.to_string()));
    }
    if updates.is_empty() {
        return Err(AwsError::validation(
            "Attributes must name at least one attribute",
        ));
    }
    attrs.extend(updates);
    Ok(())
}

pub(crate) fn write_attributes(x: &mut Xml, attrs: &BTreeMap<String, String>) {
    x.list("Attributes", "member", attrs, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
}

fn lb_not_found() -> AwsError {
    AwsError::new(
        "LoadBalancerNotFound",
        "One or more load balancers not found",
    )
}

pub(crate) fn get_lb<'a>(s: &'a ElbState, arn: &str) -> Result<&'a Lb, AwsError> {
    s.lbs.get(arn).ok_or_else(lb_not_found)
}

fn parse_lb_spec(state: &AwsState, p: &Params) -> Result<(LbSpec, String, Vec<String>), AwsError> {
    match p.get("Type").unwrap_or("application") {
        "network" => {}
        other => {
            return Err(AwsError::validation(format!(
                "load balancer type '{other}' is not supported here: only 'network'"
            )));
        }
    }
    let scheme = p.get("Scheme").unwrap_or("internet-facing").to_string();
    if scheme != "internet-facing" && scheme != "internal" {
        return Err(AwsError::validation(format!(
            "Scheme '{scheme}' must be 'internet-facing' or 'internal'"
        )));
    }
    let ip_address_type = p.get("IpAddressType").unwrap_or("ipv4").to_string();
    if !["ipv4", "dualstack"].contains(&ip_address_type.as_str()) {
        return Err(AwsError::validation(format!(
            "IpAddressType '{ip_address_type}' must be 'ipv4' or 'dualstack'"
        )));
    }
    let mut mappings: Vec<Mapping> = p
        .list("Subnets")
        .into_iter()
        .map(|subnet_id| Mapping {
            subnet_id,
            allocation_id: None,
            private_ip: None,
        })
        .collect();
    for m in p.structs("SubnetMappings") {
        mappings.push(Mapping {
            subnet_id: m.get("SubnetId").unwrap_or_default().to_string(),
            allocation_id: m.nonempty("AllocationId").map(str::to_string),
            private_ip: m.nonempty("PrivateIPv4Address").map(str::to_string),
        });
    }
    if mappings.is_empty() {
        return Err(AwsError::validation(
            "Subnets or SubnetMappings must name at least one subnet",
        ));
    }
    let mut vpc = None;
    let mut zones = Vec::new();
    for m in &mappings {
        let subnet = state.ec2.subnet(&m.subnet_id).ok_or_else(|| {
            AwsError::new(
                "SubnetNotFound",
                format!("The subnet ID '{}' is not valid", m.subnet_id),
            )
        })?;
        if zones.contains(&subnet.zone) {
            return Err(AwsError::new(
                "InvalidConfigurationRequest",
                "A load balancer cannot be attached to multiple subnets in the same Availability Zone",
            ));
        }
        if vpc.get_or_insert_with(|| subnet.vpc.clone()) != &subnet.vpc {
            return Err(AwsError::new(
                "InvalidConfigurationRequest",
                "All subnets must belong to the same VPC",
            ));
        }
        if m.allocation_id.is_some() && scheme == "internal" {
            return Err(AwsError::new(
                "InvalidConfigurationRequest",
                "Elastic IP allocations are only allowed for internet-facing load balancers",
            ));
        }
        if let Some(ip) = &m.private_ip {
            if scheme != "internal" {
                return Err(AwsError::new(
                    "InvalidConfigurationRequest",
                    "Private IPv4 addresses are only allowed for internal load balancers",
                ));
            }
            let inside = ip
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .is_some_and(|a| subnet.cidr.contains(&a));
            if !inside {
                return Err(AwsError::new(
                    "InvalidConfigurationRequest",
                    format!(
                        "Private IPv4 address '{ip}' is not in the CIDR of subnet '{}'",
                        m.subnet_id
                    ),
                ));
            }
        }
        zones.push(subnet.zone.clone());
    }
    let vpc = vpc.unwrap_or_default();
    let mut security_groups = p.list("SecurityGroups");
    for g in &security_groups {
        match state.ec2.group(g) {
            Some(group) if group.vpc == vpc => {}
            _ => {
                return Err(AwsError::new(
                    "InvalidSecurityGroup",
                    format!("Security group '{g}' does not exist in VPC '{vpc}'"),
                ));
            }
        }
    }
    security_groups.sort();
    let mut sorted = mappings.clone();
    sorted.sort();
    let spec = LbSpec {
        scheme,
        mappings: sorted,
        security_groups,
        ip_address_type,
    };
    // Zones follow the caller's order of mappings; the spec keeps them sorted for comparison.
    let zones = spec
        .mappings
        .iter()
        .filter_map(|m| state.ec2.subnet(&m.subnet_id).map(|s| s.zone.clone()))
        .collect();
    Ok((spec, vpc, zones))
}

fn create_lb(state: &mut AwsState, env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
    let name = p.get("Name").unwrap_or_default().to_string();
    validate_name(&name, "Load balancer")?;
    let tags = parse_tags(p)?;
    let (spec, vpc, zones) = parse_lb_spec(state, p)?;
    let existing = state.elb.lbs.values().find(|lb| lb.name == name);
    let arn = match existing {
        Some(lb) if lb.spec == spec => lb.arn.clone(),
        Some(_) => {
            return Err(AwsError::new(
                "DuplicateLoadBalancerName",
                format!(
                    "A load balancer with the same name '{name}' exists, but with different settings"
                ),
            ));
        }
        None => {
            if let Some(max) = env.config.max_load_balancers
                && state.elb.lbs.len() >= max
            {
                return Err(AwsError::new(
                    "TooManyLoadBalancers",
                    format!("You have reached the limit of {max} load balancers"),
                ));
            }
            let id = state.hex(16);
            let arn = arn(env, &format!("loadbalancer/net/{name}/{id}"));
            let seq = state.elb.next_seq();
            let lb = Lb {
                seq,
                arn: arn.clone(),
                dns: format!("{name}-{id}.elb.{REGION}.amazonaws.com"),
                name,
                vpc,
                security_groups: spec.security_groups.clone(),
                spec,
                zones,
                created: now_rfc3339(),
                ready_at: env.now + env.faults.sample_provisioning(),
                tags: tags.into_iter().collect(),
                attributes: lb_attribute_defaults(),
            };
            state.elb.lbs.insert(arn.clone(), lb);
            arn
        }
    };
    let mut x = Xml::new();
    let lb = get_lb(&state.elb, &arn)?;
    x.elem("LoadBalancers", |x| write_lb(x, lb, env.now));
    Ok(x.into_string())
}

fn describe_lbs(state: &mut AwsState, env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
    let names = p.list("Names");
    let arns = p.list("LoadBalancerArns");
    if !names.is_empty() && !arns.is_empty() {
        return Err(AwsError::validation(
            "Names and LoadBalancerArns cannot be specified together",
        ));
    }
    let mut found: Vec<&Lb> = Vec::new();
    if !names.is_empty() {
        for n in &names {
            found.push(
                state
                    .elb
                    .lbs
                    .values()
                    .find(|lb| &lb.name == n)
                    .ok_or_else(lb_not_found)?,
            );
        }
    } else if !arns.is_empty() {
        for a in &arns {
            found.push(get_lb(&state.elb, a)?);
        }
    } else {
        found = state.elb.lbs.values().collect();
    }
    let (items, next) = page(found, |lb| lb.seq, p)?;
    let mut x = Xml::new();
    x.elem("LoadBalancers", |x| {
        for lb in items {
            write_lb(x, lb, env.now);
        }
    });
    x.opt("NextMarker", next);
    Ok(x.into_string())
}

fn delete_lb(state: &mut AwsState, _env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
    let arn = p
        .nonempty("LoadBalancerArn")
        .ok_or_else(|| AwsError::validation("LoadBalancerArn is required"))?;
    // Deleting a load balancer that does not exist succeeds (the API is idempotent).
    if let Some(lb) = state.elb.lbs.get(arn) {
        if lb
            .attributes
            .get("deletion_protection.enabled")
            .map(String::as_str)
            == Some("true")
        {
            return Err(AwsError::new(
                "OperationNotPermitted",
                format!(
                    "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
                ),
            ));
        }
        state.elb.lbs.remove(arn);
        state.elb.listeners.retain(|_, l| l.lb_arn != arn);
    }
    Ok(String::new())
}

fn set_security_groups(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("LoadBalancerArn").unwrap_or_default().to_string();
    let lb = get_lb(&state.elb, &arn)?;
    if lb.security_groups.is_empty() {
        return Err(AwsError::new(
            "InvalidConfigurationRequest",
            "security groups cannot be added to a network load balancer created without them",
        ));
    }
    let groups = p.list("SecurityGroups");
    for g in &groups {
        if state.ec2.group(g).is_none_or(|grp| grp.vpc != lb.vpc) {
            return Err(AwsError::new(
                "InvalidSecurityGroup",
                format!("Security group '{g}' does not exist in VPC '{}'", lb.vpc),
            ));
        }
    }
    if let Some(lb) = state.elb.lbs.get_mut(&arn) {
        lb.security_groups = groups.clone();
    }
    let mut x = Xml::new();
    x.list("SecurityGroupIds", "member", &groups, |x, g| {
        x.text(g);
    });
    Ok(x.into_string())
}

fn lb_attributes(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
    modify: bool,
) -> Result<String, AwsError> {
    let arn = p.get("LoadBalancerArn").unwrap_or_default();
    let lb = state.elb.lbs.get_mut(arn).ok_or_else(lb_not_found)?;
    if modify {
        apply_attributes(&mut lb.attributes, p, "Load balancer")?;
    }
    let mut x = Xml::new();
    write_attributes(&mut x, &lb.attributes);
    Ok(x.into_string())
}

/// ELBv2 entry point: one action on the state, answering the inner XML of `<{Op}Result>`.
pub(crate) fn dispatch(
    state: &mut AwsState,
    env: &Env<'_>,
    action: &str,
    p: &Params,
) -> Result<String, AwsError> {
    use elbv2_tg as tg;
    match action {
        "CreateLoadBalancer" => create_lb(state, env, p),
        "DescribeLoadBalancers" => describe_lbs(state, env, p),
        "DeleteLoadBalancer" => delete_lb(state, env, p),
        "SetSecurityGroups" => set_security_groups(state, env, p),
        "DescribeLoadBalancerAttributes" => lb_attributes(state, env, p, false),
        "ModifyLoadBalancerAttributes" => lb_attributes(state, env, p, true),
        "CreateTargetGroup" => tg::create_tg(state, env, p),
        "DescribeTargetGroups" => tg::describe_tgs(state, env, p),
        "ModifyTargetGroup" => tg::modify_tg(state, env, p),
        "DeleteTargetGroup" => tg::delete_tg(state, env, p),
        "DescribeTargetGroupAttributes" => tg::tg_attributes(state, env, p, false),
        "ModifyTargetGroupAttributes" => tg::tg_attributes(state, env, p, true),
        "RegisterTargets" => tg::register(state, env, p),
        "DeregisterTargets" => tg::deregister(state, env, p),
        "DescribeTargetHealth" => tg::describe_health(state, env, p),
        "CreateListener" => tg::create_listener(state, env, p),
        "DescribeListeners" => tg::describe_listeners(state, env, p),
        "ModifyListener" => tg::modify_listener(state, env, p),
        "DeleteListener" => tg::delete_listener(state, env, p),
        "AddTags" => tg::add_tags(state, env, p),
        "RemoveTags" => tg::remove_tags(state, env, p),
        "DescribeTags" => tg::describe_tags(state, env, p),
        other => Err(AwsError::new(
            "InvalidAction",
            format!("Could not find operation {other} for version 2015-12-01"),
        )),
    }
}

/// `/_admin/state`'s ELBv2 part.
pub(crate) fn snapshot(state: &AwsState, instances: &Instances, now: Instant) -> serde_json::Value {
    let s = &state.elb;
    let lbs: Vec<_> = s
        .lbs
        .values()
        .map(|lb| {
            serde_json::json!({
                "arn": lb.arn, "name": lb.name, "dns_name": lb.dns, "scheme": lb.spec.scheme,
                "state": lb_state(lb, now), "subnets": lb.spec.mappings.iter().map(|m| &m.subnet_id).collect::<Vec<_>>(),
                "security_groups": lb.security_groups, "tags": lb.tags, "attributes": lb.attributes,
            })
        })
        .collect();
    let listeners: Vec<_> = s
        .listeners
        .values()
        .map(|l| {
            serde_json::json!({
                "arn": l.arn, "load_balancer_arn": l.lb_arn, "port": l.port,
                "protocol": l.protocol, "target_group_arn": l.target_group, "tags": l.tags,
            })
        })
        .collect();
    let tgs: Vec<_> = s
        .tgs
        .values()
        .map(|t| snapshot_tg(t, instances, s))
        .collect();
    serde_json::json!({ "load_balancers": lbs, "listeners": listeners, "target_groups": tgs })
}

fn snapshot_tg(t: &Tg, instances: &Instances, s: &ElbState) -> serde_json::Value {
    let targets: Vec<String> = t
        .targets
        .keys()
        .filter(|(id, _)| t.spec.target_type != "instance" || instances.get(id).is_some())
        .map(|(id, port)| format!("{id}:{port}"))
        .collect();
    serde_json::json!({
        "arn": t.arn, "name": t.name, "protocol": t.spec.protocol, "port": t.spec.port,
        "health_check_protocol": t.spec.health.protocol, "health_check_port": t.spec.health.port,
        "health_check_path": t.spec.health.path, "targets": targets, "tags": t.tags,
        "attributes": t.attributes, "load_balancer_arns": s.lbs_of_tg(&t.arn),
    })
}
