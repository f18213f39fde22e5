//! ELBv2 target groups, targets and their health, listeners, and tags on any ELBv2 resource.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::elbv2::{
    ElbState, apply_attributes, arn, get_lb, page, parse_tags, validate_name, write_attributes,
    write_tags,
};
use super::query::Params;
use super::xml::Xml;
use super::{AwsError, AwsState, Env};
use crate::state::Instances;

mod listeners;
pub(crate) use listeners::{
    add_tags, create_listener, delete_listener, describe_listeners, describe_tags, modify_listener,
    remove_tags,
};

const TG_PROTOCOLS: [&str; 4] = ["TCP", "UDP", "TCP_UDP", "TLS"];
const LISTENER_PROTOCOLS: [&str; 4] = ["TCP", "UDP", "TCP_UDP", "TLS"];
const MAX_TAG_RESOURCES: usize = 20;

/// The health check of a target group, defaults resolved (what "same config" compares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HealthCheck {
    pub enabled: bool,
    pub protocol: String,
    pub port: String,
    pub path: Option<String>,
    pub interval: i64,
    pub timeout: i64,
    pub healthy: i64,
    pub unhealthy: i64,
    pub matcher: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TgSpec {
    pub protocol: String,
    pub port: i64,
    pub vpc: String,
    pub target_type: String,
    pub health: HealthCheck,
}

#[derive(Debug)]
pub(crate) struct Tg {
    pub seq: u64,
    pub arn: String,
    pub name: String,
    pub spec: TgSpec,
    pub tags: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    /// (id, port) → when its health checks start passing.
    pub targets: BTreeMap<(String, i64), Instant>,
}

fn tg_not_found() -> AwsError {
    AwsError::new("TargetGroupNotFound", "One or more target groups not found")
}

fn listener_not_found() -> AwsError {
    AwsError::new("ListenerNotFound", "One or more listeners not found")
}

fn range(p: &Params, key: &str, lo: i64, hi: i64, default: i64) -> Result<i64, AwsError> {
    let v = p.int(key).map_err(AwsError::validation)?.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        return Err(AwsError::validation(format!(
            "{key} {v} must be between {lo} and {hi}"
        )));
    }
    Ok(v)
}

/// Resolve the `HealthCheck*` fields of a request over `base` (defaults or the current check).
fn health_from(p: &Params, base: Option<&HealthCheck>) -> Result<HealthCheck, AwsError> {
    let protocol = p
        .nonempty("HealthCheckProtocol")
        .map(str::to_string)
        .or_else(|| base.map(|b| b.protocol.clone()))
        // NLB target groups of every protocol (UDP too) default to TCP checks.
        .unwrap_or_else(|| "TCP".into());
    if !["TCP", "HTTP", "HTTPS"].contains(&protocol.as_str()) {
        return Err(AwsError::validation(format!(
            "HealthCheckProtocol '{protocol}' must be TCP, HTTP or HTTPS"
        )));
    }
    let http = protocol != "TCP";
    let port = p
        .nonempty("HealthCheckPort")
        .map(str::to_string)
        .or_else(|| base.map(|b| b.port.clone()))
        .unwrap_or_else(|| "traffic-port".into());
    if port != "traffic-port" && !port.parse::<u16>().is_ok_and(|n| n > 0) {
        return Err(AwsError::validation(format!(
            "HealthCheckPort '{port}' must be 'traffic-port' or a port 1-65535"
        )));
    }
    let path = p.nonempty("HealthCheckPath").map(str::to_string);
    if path.is_some() && !http {
        return Err(AwsError::validation(
            "HealthCheckPath can only be set with the HTTP or HTTPS health check protocol",
        ));
    }
    let path = if http {
        path.or_else(|| base.and_then(|b| b.path.clone()))
            .or(Some("/".into()))
    } else {
        None
    };
    let matcher = p.sub("Matcher").nonempty("HttpCode").map(str::to_string);
    let matcher = if http {
        matcher
            .or_else(|| base.and_then(|b| b.matcher.clone()))
            .or(Some("200-399".into()))
    } else {
        None
    };
    let b = |f: fn(&HealthCheck) -> i64, d: i64| base.map_or(d, f);
    Ok(HealthCheck {
        enabled: p
            .bool("HealthCheckEnabled")
            .map_err(AwsError::validation)?
            .unwrap_or(base.is_none_or(|b| b.enabled)),
        interval: range(
            p,
            "HealthCheckIntervalSeconds",
            5,
            300,
            b(|h| h.interval, 30),
        )?,
        timeout: range(
            p,
            "HealthCheckTimeoutSeconds",
            2,
            120,
            b(|h| h.timeout, if http { 6 } else { 10 }),
        )?,
        healthy: range(p, "HealthyThresholdCount", 2, 10, b(|h| h.healthy, 5))?,
        unhealthy: range(p, "UnhealthyThresholdCount", 2, 10, b(|h| h.unhealthy, 2))?,
        protocol,
        port,
        path,
        matcher,
    })
}

fn tg_attribute_defaults() -> BTreeMap<String, String> {
    [
        ("deregistration_delay.timeout_seconds", "300"),
        (
            "deregistration_delay.connection_termination.enabled",
            "false",
        ),
        ("proxy_protocol_v2.enabled", "false"),
        ("preserve_client_ip.enabled", "true"),
        ("stickiness.enabled", "false"),
        ("stickiness.type", "source_ip"),
        (
            "load_balancing.cross_zone.enabled",
            "use_load_balancer_configuration",
        ),
        (
            "target_health_state.unhealthy.connection_termination.enabled",
            "true",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn write_tg(x: &mut Xml, tg: &Tg, s: &ElbState) {
    let h = &tg.spec.health;
    x.elem("member", |x| {
        x.leaf("TargetGroupArn", &tg.arn)
            .leaf("TargetGroupName", &tg.name)
            .leaf("Protocol", &tg.spec.protocol)
            .leaf("Port", tg.spec.port)
            .leaf("VpcId", &tg.spec.vpc)
            .leaf("HealthCheckProtocol", &h.protocol)
            .leaf("HealthCheckPort", &h.port)
            .leaf("HealthCheckEnabled", h.enabled)
            .leaf("HealthCheckIntervalSeconds", h.interval)
            .leaf("HealthCheckTimeoutSeconds", h.timeout)
            .leaf("HealthyThresholdCount", h.healthy)
            .leaf("UnhealthyThresholdCount", h.unhealthy)
            .opt("HealthCheckPath", h.path.as_ref());
        if let Some(code) = &h.matcher {
            x.elem("Matcher", |x| {
                x.leaf("HttpCode", code);
            });
        }
        x.list(
            "LoadBalancerArns",
            "member",
            s.lbs_of_tg(&tg.arn),
            |x, a| {
                x.text(a);
            },
        )
        .leaf("TargetType", &tg.spec.target_type)
        .leaf("IpAddressType", "ipv4");
    });
}

pub(crate) fn create_tg(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let name = p.get("Name").unwrap_or_default().to_string();
    validate_name(&name, "Target group")?;
    let tags = parse_tags(p)?;
    let protocol = p.nonempty("Protocol").unwrap_or_default().to_string();
    if !TG_PROTOCOLS.contains(&protocol.as_str()) {
        return Err(AwsError::validation(format!(
            "Protocol '{protocol}' must be one of TCP, UDP, TCP_UDP, TLS"
        )));
    }
    let target_type = p.get("TargetType").unwrap_or("instance").to_string();
    if !["instance", "ip"].contains(&target_type.as_str()) {
        return Err(AwsError::validation(format!(
            "TargetType '{target_type}' must be instance or ip"
        )));
    }
    let port = p
        .int("Port")
        .map_err(AwsError::validation)?
        .ok_or_else(|| {
            AwsError::validation("Port is required for target groups of type instance or ip")
        })?;
    if !(1..=65535).contains(&port) {
        return Err(AwsError::validation(format!(
            "Port {port} must be between 1 and 65535"
        )));
    }
    let vpc = p.nonempty("VpcId").unwrap_or_default().to_string();
    if !state.ec2.has_vpc(&vpc) {
        return Err(AwsError::validation(format!(
            "The VPC ID '{vpc}' is not found"
        )));
    }
    let health = health_from(p, None)?;
    let spec = TgSpec {
        protocol,
        port,
        vpc,
        target_type,
        health,
    };
    let arn = match state.elb.tgs.values().find(|t| t.name == name) {
        Some(t) if t.spec == spec => t.arn.clone(),
        Some(_) => {
            return Err(AwsError::new(
                "DuplicateTargetGroupName",
                format!(
                    "A target group with the same name '{name}' exists, but with different settings"
                ),
            ));
        }
        None => {
            let arn = arn(env, &format!("targetgroup/{name}/{}", state.hex(16)));
            let seq = state.elb.next_seq();
            state.elb.tgs.insert(
                arn.clone(),
                Tg {
                    seq,
                    arn: arn.clone(),
                    name,
                    spec,
                    tags: tags.into_iter().collect(),
                    attributes: tg_attribute_defaults(),
                    targets: BTreeMap::new(),
                },
            );
            arn
        }
    };
    let mut x = Xml::new();
    let tg = state.elb.tgs.get(&arn).ok_or_else(tg_not_found)?;
    x.elem("TargetGroups", |x| write_tg(x, tg, &state.elb));
    Ok(x.into_string())
}

pub(crate) fn describe_tgs(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let s = &state.elb;
    let names = p.list("Names");
    let arns = p.list("TargetGroupArns");
    let mut found: Vec<&Tg> = Vec::new();
    if let Some(lb) = p.nonempty("LoadBalancerArn") {
        get_lb(s, lb)?;
        found = s
            .tgs
            .values()
            .filter(|t| s.lbs_of_tg(&t.arn).contains(lb))
            .collect();
    } else if !names.is_empty() {
        for n in &names {
            found.push(
                s.tgs
                    .values()
                    .find(|t| &t.name == n)
                    .ok_or_else(tg_not_found)?,
            );
        }
    } else if !arns.is_empty() {
        for a in &arns {
            found.push(s.tgs.get(a).ok_or_else(tg_not_found)?);
        }
    } else {
        found = s.tgs.values().collect();
    }
    let (items, next) = page(found, |t| t.seq, p)?;
    let mut x = Xml::new();
    x.elem("TargetGroups", |x| {
        for t in items {
            write_tg(x, t, s);
        }
    });
    x.opt("NextMarker", next);
    Ok(x.into_string())
}

pub(crate) fn modify_tg(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("TargetGroupArn").unwrap_or_default();
    let tg = state.elb.tgs.get(arn).ok_or_else(tg_not_found)?;
    let health = health_from(p, Some(&tg.spec.health))?;
    if let Some(tg) = state.elb.tgs.get_mut(arn) {
        tg.spec.health = health;
    }
    let mut x = Xml::new();
    let tg = state.elb.tgs.get(arn).ok_or_else(tg_not_found)?;
    x.elem("TargetGroups", |x| write_tg(x, tg, &state.elb));
    Ok(x.into_string())
}

pub(crate) fn delete_tg(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p
        .nonempty("TargetGroupArn")
        .ok_or_else(|| AwsError::validation("TargetGroupArn is required"))?;
    if state.elb.listeners.values().any(|l| l.target_group == arn) {
        return Err(AwsError::new(
            "ResourceInUse",
            format!("Target group '{arn}' is currently in use by a listener or a rule"),
        ));
    }
    // A target group that does not exist is already deleted: success, like AWS.
    state.elb.tgs.remove(arn);
    Ok(String::new())
}

pub(crate) fn tg_attributes(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
    modify: bool,
) -> Result<String, AwsError> {
    let arn = p.get("TargetGroupArn").unwrap_or_default();
    let tg = state.elb.tgs.get_mut(arn).ok_or_else(tg_not_found)?;
    if modify {
        let mut next = tg.attributes.clone();
        apply_attributes(&mut next, p, "Target group")?;
        let delay = next
            .get("deregistration_delay.timeout_seconds")
            .map(String::as_str)
            .unwrap_or("300");
        if !delay.parse::<u32>().is_ok_and(|d| d <= 3600) {
            return Err(AwsError::validation(format!(
                "deregistration_delay.timeout_seconds '{delay}' must be an integer 0-3600"
            )));
        }
        if tg.spec.target_type == "instance"
            && next["preserve_client_ip.enabled"] == "false"
            && tg.spec.protocol == "UDP"
        {
            return Err(AwsError::new(
                "InvalidConfigurationRequest",
                "client IP preservation cannot be disabled for UDP target groups with instance targets",
            ));
        }
        tg.attributes = next;
    }
    let mut x = Xml::new();
    write_attributes(&mut x, &tg.attributes);
    Ok(x.into_string())
}

/// Forget targets whose instance was terminated (AWS deregisters them itself).
fn prune(tg: &mut Tg, instances: &Instances) {
    if tg.spec.target_type == "instance" {
        tg.targets.retain(|(id, _), _| instances.get(id).is_some());
    }
}

fn parse_targets(p: &Params, tg: &Tg) -> Result<Vec<(String, i64)>, AwsError> {
    let targets = p.structs("Targets");
    if targets.is_empty() {
        return Err(AwsError::validation(
            "Targets must name at least one target",
        ));
    }
    targets
        .iter()
        .map(|t| {
            let id = t
                .nonempty("Id")
                .ok_or_else(|| AwsError::validation("Targets.member.N.Id is required"))?;
            let port = t
                .int("Port")
                .map_err(AwsError::validation)?
                .unwrap_or(tg.spec.port);
            if !(1..=65535).contains(&port) {
                return Err(AwsError::validation(format!(
                    "target port {port} must be between 1 and 65535"
                )));
            }
            Ok((id.to_string(), port))
        })
        .collect()
}

pub(crate) fn register(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("TargetGroupArn").unwrap_or_default();
    let tg = state.elb.tgs.get_mut(arn).ok_or_else(tg_not_found)?;
    prune(tg, env.instances);
    let targets = parse_targets(p, tg)?;
    let invalid: Vec<&str> = targets
        .iter()
        .filter(|(id, _)| match tg.spec.target_type.as_str() {
            "instance" => env.instances.get(id).is_none(),
            _ => id.parse::<std::net::IpAddr>().is_err(),
        })
        .map(|(id, _)| id.as_str())
        .collect();
    if !invalid.is_empty() {
        let list = invalid
            .iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AwsError::new(
            "InvalidTarget",
            format!("The following targets are not valid instances: {list}"),
        ));
    }
    for t in targets {
        tg.targets
            .entry(t)
            .or_insert_with(|| env.now + env.faults.sample_provisioning());
    }
    Ok(String::new())
}

pub(crate) fn deregister(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("TargetGroupArn").unwrap_or_default();
    let tg = state.elb.tgs.get_mut(arn).ok_or_else(tg_not_found)?;
    let targets = parse_targets(p, tg)?;
    // A terminated instance that is still registered may be deregistered; an id that is neither
    // registered nor an instance is an error, as on AWS.
    let invalid: Vec<String> = targets
        .iter()
        .filter(|t| {
            !tg.targets.contains_key(*t)
                && tg.spec.target_type == "instance"
                && env.instances.get(&t.0).is_none()
        })
        .map(|(id, _)| format!("'{id}'"))
        .collect();
    if !invalid.is_empty() {
        return Err(AwsError::new(
            "InvalidTarget",
            format!(
                "The following targets are not valid instances: {}",
                invalid.join(", ")
            ),
        ));
    }
    for t in &targets {
        tg.targets.remove(t);
    }
    prune(tg, env.instances);
    Ok(String::new())
}

/// (state, reason, description) of one registered target.
fn health_of(
    ready_at: Instant,
    in_use: bool,
    now: Instant,
) -> (&'static str, Option<&'static str>, Option<&'static str>) {
    if !in_use {
        (
            "unused",
            Some("Target.NotInUse"),
            Some("Target group is not configured to receive traffic from the load balancer"),
        )
    } else if now < ready_at {
        (
            "initial",
            Some("Elb.RegistrationInProgress"),
            Some("Target registration is in progress"),
        )
    } else {
        ("healthy", None, None)
    }
}

pub(crate) fn describe_health(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("TargetGroupArn").unwrap_or_default().to_string();
    let in_use = !state.elb.lbs_of_tg(&arn).is_empty();
    let tg = state.elb.tgs.get_mut(&arn).ok_or_else(tg_not_found)?;
    prune(tg, env.instances);
    let wanted = if p.structs("Targets").is_empty() {
        None
    } else {
        Some(parse_targets(p, tg)?)
    };
    let hc_port = |port: i64| match tg.spec.health.port.as_str() {
        "traffic-port" => port.to_string(),
        other => other.to_string(),
    };
    let mut x = Xml::new();
    x.elem("TargetHealthDescriptions", |x| {
        let rows: Vec<((String, i64), Option<Instant>)> = match &wanted {
            Some(list) => list
                .iter()
                .map(|t| (t.clone(), tg.targets.get(t).copied()))
                .collect(),
            None => tg
                .targets
                .iter()
                .map(|(t, r)| (t.clone(), Some(*r)))
                .collect(),
        };
        for ((id, port), ready) in rows {
            x.elem("member", |x| {
                x.elem("Target", |x| {
                    x.leaf("Id", &id).leaf("Port", port);
                })
                .leaf("HealthCheckPort", hc_port(port));
                let (st, reason, desc) = match ready {
                    Some(r) => health_of(r, in_use, env.now),
                    None => (
                        "unused",
                        Some("Target.NotRegistered"),
                        Some("Target is not registered to the target group"),
                    ),
                };
                x.elem("TargetHealth", |x| {
                    x.leaf("State", st)
                        .opt("Reason", reason)
                        .opt("Description", desc);
                });
            });
        }
    });
    Ok(x.into_string())
}
