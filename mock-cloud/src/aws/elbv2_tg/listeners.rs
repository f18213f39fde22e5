//! ELBv2 listeners (one forward action to one target group each) and tags on any ELBv2 resource.

use std::collections::BTreeMap;

use super::*;

/// `DefaultActions`: exactly one `forward` to one target group.
fn parse_forward(p: &Params) -> Result<String, AwsError> {
    let actions = p.structs("DefaultActions");
    let [action] = actions.as_slice() else {
        return Err(AwsError::validation(
            "DefaultActions must hold exactly one forward action",
        ));
    };
    if action.get("Type") != Some("forward") {
        return Err(AwsError::validation(format!(
            "action type '{}' is not supported by network load balancers: use 'forward'",
            action.get("Type").unwrap_or_default()
        )));
    }
    let mut tgs: Vec<String> = action
        .nonempty("TargetGroupArn")
        .map(str::to_string)
        .into_iter()
        .collect();
    for t in action.sub("ForwardConfig").structs("TargetGroups") {
        if let Some(a) = t.nonempty("TargetGroupArn")
            && !tgs.iter().any(|x| x == a)
        {
            tgs.push(a.to_string());
        }
    }
    match tgs.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(AwsError::validation(
            "a forward action of a network load balancer needs exactly one target group",
        )),
    }
}

/// Checks shared by CreateListener and ModifyListener.
fn check_listener(
    s: &ElbState,
    lb_arn: &str,
    port: i64,
    protocol: &str,
    tg_arn: &str,
    skip: Option<&str>,
) -> Result<(), AwsError> {
    if !(1..=65535).contains(&port) {
        return Err(AwsError::validation(format!(
            "Port {port} must be between 1 and 65535"
        )));
    }
    if !LISTENER_PROTOCOLS.contains(&protocol) {
        return Err(AwsError::validation(format!(
            "Protocol '{protocol}' must be one of TCP, UDP, TCP_UDP, TLS"
        )));
    }
    let lb = get_lb(s, lb_arn)?;
    let tg = s.tgs.get(tg_arn).ok_or_else(tg_not_found)?;
    if tg.spec.protocol != protocol {
        return Err(AwsError::new(
            "IncompatibleProtocols",
            format!(
                "Listener protocol '{protocol}' does not match target group protocol '{}'",
                tg.spec.protocol
            ),
        ));
    }
    if tg.spec.vpc != lb.vpc {
        return Err(AwsError::new(
            "InvalidConfigurationRequest",
            "The target group and the load balancer are in different VPCs",
        ));
    }
    if s.lbs_of_tg(tg_arn).iter().any(|other| other != lb_arn) {
        return Err(AwsError::new(
            "TargetGroupAssociationLimit",
            format!(
                "The following target groups cannot be associated with more than one load balancer: {tg_arn}"
            ),
        ));
    }
    if s.listeners
        .values()
        .any(|l| l.lb_arn == lb_arn && l.port == port && Some(l.arn.as_str()) != skip)
    {
        return Err(AwsError::new(
            "DuplicateListener",
            "A listener already exists on this port for this load balancer",
        ));
    }
    Ok(())
}

fn write_listener(x: &mut Xml, l: &crate::aws::elbv2::Listener) {
    x.elem("member", |x| {
        x.leaf("ListenerArn", &l.arn)
            .leaf("LoadBalancerArn", &l.lb_arn)
            .leaf("Port", l.port)
            .leaf("Protocol", &l.protocol)
            .list("DefaultActions", "member", [l], |x, l| {
                x.leaf("Type", "forward")
                    .leaf("TargetGroupArn", &l.target_group);
            });
    });
}

pub(crate) fn create_listener(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let lb_arn = p.get("LoadBalancerArn").unwrap_or_default().to_string();
    let protocol = p.get("Protocol").unwrap_or_default().to_string();
    let port = p
        .int("Port")
        .map_err(AwsError::validation)?
        .ok_or_else(|| AwsError::validation("Port is required"))?;
    let tg_arn = parse_forward(p)?;
    let tags = parse_tags(p)?;
    // An identical listener on the same port is returned as is (CreateListener is idempotent).
    let same = state.elb.listeners.values().find(|l| {
        l.lb_arn == lb_arn && l.port == port && l.protocol == protocol && l.target_group == tg_arn
    });
    let arn = match same {
        Some(l) => l.arn.clone(),
        None => {
            check_listener(&state.elb, &lb_arn, port, &protocol, &tg_arn, None)?;
            let lb = get_lb(&state.elb, &lb_arn)?;
            let lb_part = lb
                .arn
                .split_once(":loadbalancer/net/")
                .map(|(_, r)| r.to_string())
                .unwrap_or_default();
            let arn = arn(env, &format!("listener/net/{lb_part}/{}", state.hex(16)));
            let seq = state.elb.next_seq();
            state.elb.listeners.insert(
                arn.clone(),
                crate::aws::elbv2::Listener {
                    seq,
                    arn: arn.clone(),
                    lb_arn,
                    port,
                    protocol,
                    target_group: tg_arn,
                    tags: tags.into_iter().collect(),
                },
            );
            arn
        }
    };
    let mut x = Xml::new();
    let l = state
        .elb
        .listeners
        .get(&arn)
        .ok_or_else(listener_not_found)?;
    x.elem("Listeners", |x| write_listener(x, l));
    Ok(x.into_string())
}

pub(crate) fn describe_listeners(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let s = &state.elb;
    let arns = p.list("ListenerArns");
    let found: Vec<_> = if let Some(lb) = p.nonempty("LoadBalancerArn") {
        get_lb(s, lb)?;
        s.listeners.values().filter(|l| l.lb_arn == lb).collect()
    } else if !arns.is_empty() {
        arns.iter()
            .map(|a| s.listeners.get(a).ok_or_else(listener_not_found))
            .collect::<Result<_, _>>()?
    } else {
        return Err(AwsError::validation(
            "LoadBalancerArn or ListenerArns is required",
        ));
    };
    let (items, next) = page(found, |l| l.seq, p)?;
    let mut x = Xml::new();
    x.elem("Listeners", |x| {
        for l in items {
            write_listener(x, l);
        }
    });
    x.opt("NextMarker", next);
    Ok(x.into_string())
}

pub(crate) fn modify_listener(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("ListenerArn").unwrap_or_default().to_string();
    let l = state
        .elb
        .listeners
        .get(&arn)
        .ok_or_else(listener_not_found)?;
    let port = p
        .int("Port")
        .map_err(AwsError::validation)?
        .unwrap_or(l.port);
    let protocol = p.nonempty("Protocol").unwrap_or(&l.protocol).to_string();
    let tg = if p.structs("DefaultActions").is_empty() {
        l.target_group.clone()
    } else {
        parse_forward(p)?
    };
    check_listener(
        &state.elb,
        &l.lb_arn.clone(),
        port,
        &protocol,
        &tg,
        Some(&arn),
    )?;
    let l = state
        .elb
        .listeners
        .get_mut(&arn)
        .ok_or_else(listener_not_found)?;
    (l.port, l.protocol, l.target_group) = (port, protocol, tg);
    let mut x = Xml::new();
    x.elem("Listeners", |x| write_listener(x, l));
    Ok(x.into_string())
}

pub(crate) fn delete_listener(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arn = p.get("ListenerArn").unwrap_or_default();
    state
        .elb
        .listeners
        .remove(arn)
        .ok_or_else(listener_not_found)?;
    Ok(String::new())
}

/// The tag map of any ELBv2 resource, with the not-found error of its kind.
fn tags_of<'a>(
    s: &'a mut ElbState,
    arn: &str,
) -> Result<&'a mut BTreeMap<String, String>, AwsError> {
    if arn.contains(":targetgroup/") {
        s.tgs
            .get_mut(arn)
            .map(|t| &mut t.tags)
            .ok_or_else(tg_not_found)
    } else if arn.contains(":listener/") {
        s.listeners
            .get_mut(arn)
            .map(|l| &mut l.tags)
            .ok_or_else(listener_not_found)
    } else {
        s.lbs.get_mut(arn).map(|l| &mut l.tags).ok_or_else(|| {
            AwsError::new(
                "LoadBalancerNotFound",
                "One or more load balancers not found",
            )
        })
    }
}

fn resource_arns(p: &Params) -> Result<Vec<String>, AwsError> {
    let arns = p.list("ResourceArns");
    if arns.is_empty() || arns.len() > MAX_TAG_RESOURCES {
        return Err(AwsError::validation(
            "ResourceArns must name 1 to 20 resources",
        ));
    }
    Ok(arns)
}

pub(crate) fn add_tags(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arns = resource_arns(p)?;
    let tags = parse_tags(p)?;
    for a in &arns {
        let current = tags_of(&mut state.elb, a)?;
        let new_keys = tags
            .iter()
            .filter(|(k, _)| !current.contains_key(k))
            .count();
        if current.len() + new_keys > 50 {
            return Err(AwsError::new(
                "TooManyTags",
                format!("too many tags on '{a}' (at most 50)"),
            ));
        }
    }
    for a in &arns {
        tags_of(&mut state.elb, a)?.extend(tags.iter().cloned());
    }
    Ok(String::new())
}

pub(crate) fn remove_tags(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arns = resource_arns(p)?;
    let keys = p.list("TagKeys");
    for a in &arns {
        tags_of(&mut state.elb, a)?;
    }
    for a in &arns {
        let current = tags_of(&mut state.elb, a)?;
        for k in &keys {
            current.remove(k);
        }
    }
    Ok(String::new())
}

pub(crate) fn describe_tags(
    state: &mut AwsState,
    _env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let arns = resource_arns(p)?;
    let mut found = Vec::new();
    for a in &arns {
        found.push((a.clone(), tags_of(&mut state.elb, a)?.clone()));
    }
    let mut x = Xml::new();
    x.list("TagDescriptions", "member", found, |x, (arn, tags)| {
        x.leaf("ResourceArn", arn);
        write_tags(x, &tags);
    });
    Ok(x.into_string())
}
