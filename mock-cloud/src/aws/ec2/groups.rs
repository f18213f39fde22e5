//! EC2 security groups: describe, create, delete, and ingress rules (authorize / revoke).

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::*;

fn write_rules(x: &mut Xml, tag: &str, rules: &[Rule], owner: &str) {
    // One ipPermissions item per (protocol, ports), peers grouped, as EC2 presents them.
    type Ports = (String, Option<i64>, Option<i64>);
    let mut grouped: Vec<(Ports, Vec<&Rule>)> = Vec::new();
    for r in rules {
        let key = (r.protocol.clone(), r.from, r.to);
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(r),
            None => grouped.push((key, vec![r])),
        }
    }
    x.list(tag, "item", grouped, |x, ((proto, from, to), rs)| {
        x.leaf("ipProtocol", proto)
            .opt("fromPort", from)
            .opt("toPort", to);
        let pick = |want: fn(&Peer) -> Option<&String>| -> Vec<(&String, &Option<String>)> {
            rs.iter()
                .filter_map(|r| want(&r.peer).map(|c| (c, &r.description)))
                .collect()
        };
        x.list(
            "groups",
            "item",
            pick(|p| {
                if let Peer::Group(g) = p {
                    Some(g)
                } else {
                    None
                }
            }),
            |x, (g, d)| {
                x.leaf("userId", owner)
                    .leaf("groupId", g)
                    .opt("description", d.as_ref());
            },
        );
        x.list(
            "ipRanges",
            "item",
            pick(|p| if let Peer::V4(c) = p { Some(c) } else { None }),
            |x, (c, d)| {
                x.leaf("cidrIp", c).opt("description", d.as_ref());
            },
        );
        x.list(
            "ipv6Ranges",
            "item",
            pick(|p| if let Peer::V6(c) = p { Some(c) } else { None }),
            |x, (c, d)| {
                x.leaf("cidrIpv6", c).opt("description", d.as_ref());
            },
        );
        x.elem("prefixListIds", |_| {});
    });
}

fn group_not_found(id: &str) -> AwsError {
    AwsError::new(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

pub(super) fn describe_groups(
    state: &AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let ids = p.list("GroupId");
    let names = p.list("GroupName");
    for id in &ids {
        if !state.ec2.groups.contains_key(id) {
            return Err(group_not_found(id));
        }
    }
    for n in &names {
        if !state.ec2.groups.values().any(|g| &g.name == n) {
            return Err(AwsError::new(
                "InvalidGroup.NotFound",
                format!("The security group '{n}' does not exist in default VPC"),
            ));
        }
    }
    let filters = p.structs("Filter");
    let known = [
        "group-id",
        "group-name",
        "vpc-id",
        "description",
        "owner-id",
        "ip-permission.group-id",
    ];
    let mut found = Vec::new();
    for g in state.ec2.groups.values() {
        if (!ids.is_empty() && !ids.contains(&g.id))
            || (!names.is_empty() && !names.contains(&g.name))
        {
            continue;
        }
        let mut fields = vec![
            ("group-id", g.id.clone()),
            ("group-name", g.name.clone()),
            ("vpc-id", g.vpc.clone()),
            ("description", g.description.clone()),
            ("owner-id", env.config.account_id.clone()),
        ];
        // Groups that an ingress rule of this group names as its source.
        fields.extend(g.ingress.iter().filter_map(|r| match &r.peer {
            Peer::Group(id) => Some(("ip-permission.group-id", id.clone())),
            _ => None,
        }));
        let view = View {
            fields,
            tags: &g.tags,
        };
        if matches(&view, &filters, &known)? {
            found.push(g);
        }
    }
    let (items, next) = paged(found, p)?;
    let owner = &env.config.account_id;
    let mut x = Xml::new();
    x.list("securityGroupInfo", "item", items, |x, g| {
        x.leaf("ownerId", owner)
            .leaf("groupId", &g.id)
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .leaf("vpcId", &g.vpc);
        write_rules(x, "ipPermissions", &g.ingress, owner);
        write_rules(x, "ipPermissionsEgress", &g.egress, owner);
        write_tag_set(x, &g.tags);
        x.leaf(
            "securityGroupArn",
            format!("arn:aws:ec2:{REGION}:{owner}:security-group/{}", g.id),
        );
    });
    x.opt("nextToken", next);
    Ok(x.into_string())
}

/// `TagSpecification.N.{ResourceType, Tag.M.{Key,Value}}` for one resource type.
fn tag_specs(p: &Params, resource_type: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let mut tags = BTreeMap::new();
    for spec in p.structs("TagSpecification") {
        if spec.get("ResourceType") != Some(resource_type) {
            return Err(AwsError::invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation (use '{resource_type}')",
                spec.get("ResourceType").unwrap_or_default()
            )));
        }
        for t in spec.structs("Tag") {
            tags.insert(
                t.get("Key").unwrap_or_default().to_string(),
                t.get("Value").unwrap_or_default().to_string(),
            );
        }
    }
    Ok(tags)
}

pub(super) fn create_group(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
    let name = p
        .nonempty("GroupName")
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter GroupName",
            )
        })?
        .to_string();
    let description = p
        .nonempty("GroupDescription")
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter GroupDescription",
            )
        })?
        .to_string();
    if name.starts_with("sg-") || name.len() > 255 {
        return Err(AwsError::invalid_value(format!(
            "Invalid security group name '{name}': it cannot start with 'sg-' or exceed 255 characters"
        )));
    }
    let vpc = p.nonempty("VpcId").unwrap_or(VPC_ID).to_string();
    if !state.ec2.has_vpc(&vpc) {
        return Err(AwsError::new(
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{vpc}' does not exist"),
        ));
    }
    if state
        .ec2
        .groups
        .values()
        .any(|g| g.name == name && g.vpc == vpc)
    {
        return Err(AwsError::new(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc}'"),
        ));
    }
    let tags = tag_specs(p, "security-group")?;
    let id = format!("sg-{}", state.hex(17));
    let mut egress = allow_all_egress();
    egress.id = format!("sgr-{}", state.hex(17));
    state.ec2.groups.insert(
        id.clone(),
        Group {
            id: id.clone(),
            name,
            description,
            vpc,
            tags: tags.clone(),
            ingress: Vec::new(),
            egress: vec![egress],
        },
    );
    let mut x = Xml::new();
    x.leaf("return", true).leaf("groupId", &id);
    write_tag_set(&mut x, &tags);
    Ok(x.into_string())
}

pub(super) fn delete_group(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
    let id = match (p.nonempty("GroupId"), p.nonempty("GroupName")) {
        (Some(id), _) => id.to_string(),
        (None, Some(name)) => state
            .ec2
            .groups
            .values()
            .find(|g| g.name == name)
            .map(|g| g.id.clone())
            .ok_or_else(|| group_not_found(name))?,
        (None, None) => {
            return Err(AwsError::new(
                "MissingParameter",
                "The request must contain the parameter GroupId",
            ));
        }
    };
    if !state.ec2.groups.contains_key(&id) {
        return Err(group_not_found(&id));
    }
    if id == DEFAULT_SG {
        return Err(AwsError::new(
            "CannotDelete",
            "the default security group of a VPC cannot be deleted",
        ));
    }
    let referenced = state.ec2.groups.values().any(|g| {
        g.id != id
            && g.ingress
                .iter()
                .chain(&g.egress)
                .any(|r| r.peer == Peer::Group(id.clone()))
    });
    if state.elb.uses_group(&id) || referenced {
        return Err(AwsError::new(
            "DependencyViolation",
            format!("resource {id} has a dependent object"),
        ));
    }
    state.ec2.groups.remove(&id);
    let mut x = Xml::new();
    x.leaf("return", true).leaf("groupId", &id);
    Ok(x.into_string())
}

fn normalize_protocol(raw: &str) -> Result<String, AwsError> {
    let p = raw.to_ascii_lowercase();
    Ok(match p.as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        "-1" | "all" => "-1".into(),
        n if n.parse::<u8>().is_ok() => n.into(),
        _ => {
            return Err(AwsError::invalid_value(format!(
                "Invalid value '{raw}' for IP protocol. Unknown protocol."
            )));
        }
    })
}

/// Flatten `IpPermissions.N` (or the legacy top-level fields) into one rule per peer.
fn parse_rules(state: &mut AwsState, p: &Params) -> Result<Vec<Rule>, AwsError> {
    let mut perms = p.structs("IpPermissions");
    if perms.is_empty() && p.nonempty("IpProtocol").is_some() {
        let mut legacy = vec![("IpProtocol", p.get("IpProtocol").unwrap_or_default())];
        legacy.extend(p.get("FromPort").map(|v| ("FromPort", v)));
        legacy.extend(p.get("ToPort").map(|v| ("ToPort", v)));
        legacy.extend(p.get("CidrIp").map(|v| ("IpRanges.1.CidrIp", v)));
        perms.push(Params::from_pairs(legacy));
    }
    if perms.is_empty() {
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter IpPermissions",
        ));
    }
    let mut out = Vec::new();
    for perm in perms {
        let protocol = normalize_protocol(perm.get("IpProtocol").unwrap_or_default())?;
        let (from, to) = if protocol == "-1" {
            (None, None)
        } else {
            let from = perm.int("FromPort").map_err(AwsError::invalid_value)?;
            let to = perm.int("ToPort").map_err(AwsError::invalid_value)?;
            let (Some(from), Some(to)) = (from, to) else {
                return Err(AwsError::invalid_value(format!(
                    "Invalid value for portRange: FromPort and ToPort are required for protocol {protocol}"
                )));
            };
            if (protocol == "tcp" || protocol == "udp")
                && !(0..=65535).contains(&from) | !(from..=65535).contains(&to)
            {
                return Err(AwsError::invalid_value(format!(
                    "Invalid port range {from}-{to}"
                )));
            }
            (Some(from), Some(to))
        };
        let mut peers: Vec<(Peer, Option<String>)> = Vec::new();
        for r in perm.structs("IpRanges") {
            let cidr = r.get("CidrIp").unwrap_or_default();
            if cidr.parse::<Ipv4Net>().is_err() {
                return Err(AwsError::invalid_value(format!(
                    "CIDR block {cidr} is malformed"
                )));
            }
            peers.push((
                Peer::V4(cidr.into()),
                r.nonempty("Description").map(str::to_string),
            ));
        }
        for r in perm.structs("Ipv6Ranges") {
            let cidr = r.get("CidrIpv6").unwrap_or_default();
            if cidr.parse::<ipnet::Ipv6Net>().is_err() {
                return Err(AwsError::invalid_value(format!(
                    "CIDR block {cidr} is malformed"
                )));
            }
            peers.push((
                Peer::V6(cidr.into()),
                r.nonempty("Description").map(str::to_string),
            ));
        }
        for g in perm.structs("Groups") {
            let gid = g.get("GroupId").unwrap_or_default();
            if !state.ec2.groups.contains_key(gid) {
                return Err(group_not_found(gid));
            }
            peers.push((
                Peer::Group(gid.into()),
                g.nonempty("Description").map(str::to_string),
            ));
        }
        if peers.is_empty() {
            return Err(AwsError::invalid_value(
                "each IpPermissions entry needs IpRanges, Ipv6Ranges or Groups",
            ));
        }
        for (peer, description) in peers {
            let id = format!("sgr-{}", state.hex(17));
            out.push(Rule {
                id,
                protocol: protocol.clone(),
                from,
                to,
                peer,
                description,
            });
        }
    }
    Ok(out)
}

fn target_group_id(state: &AwsState, p: &Params) -> Result<String, AwsError> {
    match (p.nonempty("GroupId"), p.nonempty("GroupName")) {
        (Some(id), _) if state.ec2.groups.contains_key(id) => Ok(id.to_string()),
        (Some(id), _) => Err(group_not_found(id)),
        (None, Some(n)) => state
            .ec2
            .groups
            .values()
            .find(|g| g.name == n)
            .map(|g| g.id.clone())
            .ok_or_else(|| group_not_found(n)),
        (None, None) => Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter GroupId",
        )),
    }
}

pub(super) fn authorize(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
    let id = target_group_id(state, p)?;
    let rules = parse_rules(state, p)?;
    let group = state
        .ec2
        .groups
        .get_mut(&id)
        .ok_or_else(|| group_not_found(&id))?;
    for (i, r) in rules.iter().enumerate() {
        if group.ingress.iter().chain(&rules[..i]).any(|e| e.same(r)) {
            return Err(AwsError::new(
                "InvalidPermission.Duplicate",
                format!("the specified rule \"{}\" already exists", r.describe()),
            ));
        }
    }
    if group.ingress.len() + rules.len() > MAX_RULES {
        return Err(AwsError::new(
            "RulesPerSecurityGroupLimitExceeded",
            format!(
                "The maximum number of rules per security group ({MAX_RULES}) has been reached."
            ),
        ));
    }
    group.ingress.extend(rules.iter().cloned());
    let owner = &env.config.account_id;
    let mut x = Xml::new();
    x.leaf("return", true)
        .list("securityGroupRuleSet", "item", &rules, |x, r| {
            x.leaf("securityGroupRuleId", &r.id)
                .leaf("groupId", &id)
                .leaf("groupOwnerId", owner)
                .leaf("isEgress", false)
                .leaf("ipProtocol", &r.protocol)
                .leaf("fromPort", r.from.unwrap_or(-1))
                .leaf("toPort", r.to.unwrap_or(-1));
            match &r.peer {
                Peer::V4(c) => x.leaf("cidrIpv4", c),
                Peer::V6(c) => x.leaf("cidrIpv6", c),
                Peer::Group(g) => x.elem("referencedGroupInfo", |x| {
                    x.leaf("groupId", g).leaf("userId", owner);
                }),
            };
            x.opt("description", r.description.as_ref());
        });
    Ok(x.into_string())
}

pub(super) fn revoke(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
    let id = target_group_id(state, p)?;
    let rules = parse_rules(state, p)?;
    let group = state
        .ec2
        .groups
        .get_mut(&id)
        .ok_or_else(|| group_not_found(&id))?;
    if let Some(missing) = rules
        .iter()
        .find(|r| !group.ingress.iter().any(|e| e.same(r)))
    {
        return Err(AwsError::new(
            "InvalidPermission.NotFound",
            format!(
                "The specified rule \"{}\" does not exist in this security group.",
                missing.describe()
            ),
        ));
    }
    group.ingress.retain(|e| !rules.iter().any(|r| r.same(e)));
    let mut x = Xml::new();
    x.leaf("return", true);
    Ok(x.into_string())
}
