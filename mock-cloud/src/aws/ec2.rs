//! The EC2 subset a load-balancer provider uses: one seeded VPC with a public and a private subnet
//! per zone (tagged for ELB subnet discovery), security groups with ingress rules, tags, and the
//! shared [`crate::state::Instances`] as EC2 instances.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::query::Params;
use super::xml::Xml;
use super::{AwsConfig, AwsError, AwsState, Env, REGION};
use crate::state::{AWS_ZONES, Instance};

pub const VPC_ID: &str = "vpc-0a1b2c3d4e5f60001";
const VPC_CIDR: &str = "10.0.0.0/15";
/// Default security group of the VPC (cannot be deleted).
const DEFAULT_SG: &str = "sg-0d0000000000000d1";
/// The nodes' security group, tagged as owned by each configured cluster.
pub const NODE_SG: &str = "sg-0a0000000000000a1";
/// AWS's default limit of inbound (and, separately, outbound) rules per security group.
const MAX_RULES: usize = 60;

pub(crate) const ACTIONS: [&str; 11] = [
    "DescribeVpcs",
    "DescribeSubnets",
    "DescribeAvailabilityZones",
    "DescribeSecurityGroups",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "CreateTags",
    "DeleteTags",
    "DescribeInstances",
];

#[derive(Debug)]
pub(crate) struct Subnet {
    pub id: String,
    pub vpc: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    pub public: bool,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    V4(String),
    V6(String),
    Group(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub protocol: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub peer: Peer,
    pub description: Option<String>,
}

impl Rule {
    fn same(&self, other: &Rule) -> bool {
        self.protocol == other.protocol
            && self.from == other.from
            && self.to == other.to
            && self.peer == other.peer
    }

    fn describe(&self) -> String {
        let peer = match &self.peer {
            Peer::V4(c) | Peer::V6(c) | Peer::Group(c) => c,
        };
        format!(
            "peer: {peer}, {}, from port: {}, to port: {}, ALLOW",
            self.protocol.to_uppercase(),
            self.from.unwrap_or(-1),
            self.to.unwrap_or(-1)
        )
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc: String,
    pub tags: BTreeMap<String, String>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
}

#[derive(Debug)]
pub(crate) struct Ec2State {
    subnets: BTreeMap<String, Subnet>,
    groups: BTreeMap<String, Group>,
    vpc_tags: BTreeMap<String, String>,
    /// Tags set on instances (the instances themselves live in the shared registry).
    instance_tags: BTreeMap<String, BTreeMap<String, String>>,
    cluster_names: Vec<String>,
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap_or_else(|_| Ipv4Net::default())
}

fn allow_all_egress() -> Rule {
    Rule {
        id: "sgr-0e000000000000001".into(),
        protocol: "-1".into(),
        from: None,
        to: None,
        peer: Peer::V4("0.0.0.0/0".into()),
        description: None,
    }
}

impl Ec2State {
    /// The seeded account: VPC, two subnets per zone, the default and the node security group.
    pub fn seeded(config: &AwsConfig) -> Self {
        let mut subnets = BTreeMap::new();
        for (i, zone) in AWS_ZONES.iter().enumerate() {
            for public in [true, false] {
                let mut tags = BTreeMap::new();
                let (id, cidr, role, kind) = if public {
                    (
                        0xa10 + i,
                        format!("10.1.{}.0/20", i * 16),
                        "kubernetes.io/role/elb",
                        "public",
                    )
                } else {
                    (
                        0xb10 + i,
                        format!("10.0.{}.0/18", i * 64),
                        "kubernetes.io/role/internal-elb",
                        "private",
                    )
                };
                tags.insert(role.to_string(), "1".to_string());
                tags.insert("Name".into(), format!("frontdesk-{kind}-{zone}"));
                for c in &config.cluster_names {
                    tags.insert(format!("kubernetes.io/cluster/{c}"), "shared".into());
                }
                let id = format!("subnet-{id:017x}");
                subnets.insert(
                    id.clone(),
                    Subnet {
                        id,
                        vpc: VPC_ID.into(),
                        zone: zone.to_string(),
                        cidr: net(&cidr),
                        public,
                        tags,
                    },
                );
            }
        }
        let mut groups = BTreeMap::new();
        let mut node_tags = BTreeMap::from([("Name".to_string(), "frontdesk-nodes".to_string())]);
        for c in &config.cluster_names {
            node_tags.insert(format!("kubernetes.io/cluster/{c}"), "owned".into());
        }
        for (id, name, description, tags) in [
            (
                DEFAULT_SG,
                "default",
                "default VPC security group",
                BTreeMap::new(),
            ),
            (
                NODE_SG,
                "frontdesk-nodes",
                "security group of the cluster nodes",
                node_tags,
            ),
        ] {
            groups.insert(
                id.to_string(),
                Group {
                    id: id.into(),
                    name: name.into(),
                    description: description.into(),
                    vpc: VPC_ID.into(),
                    tags,
                    ingress: Vec::new(),
                    egress: vec![allow_all_egress()],
                },
            );
        }
        Self {
            subnets,
            groups,
            vpc_tags: BTreeMap::from([("Name".to_string(), "frontdesk".to_string())]),
            instance_tags: BTreeMap::new(),
            cluster_names: config.cluster_names.clone(),
        }
    }

    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.get(id)
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn has_vpc(&self, id: &str) -> bool {
        id == VPC_ID
    }

    fn instance_subnet(&self, inst: &Instance) -> String {
        self.subnets
            .values()
            .find(|s| !s.public && s.zone == inst.zone)
            .map(|s| s.id.clone())
            .unwrap_or_default()
    }

    fn instance_tags(&self, inst: &Instance) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::from([("Name".to_string(), inst.name.clone())]);
        for c in &self.cluster_names {
            tags.insert(format!("kubernetes.io/cluster/{c}"), "owned".into());
        }
        if let Some(extra) = self.instance_tags.get(&inst.id) {
            tags.extend(extra.clone());
        }
        tags
    }
}

/// `*` and `?` wildcards, as EC2 filter values allow.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// One resource as filters see it: named fields and tags.
struct View<'a> {
    fields: Vec<(&'static str, String)>,
    tags: &'a BTreeMap<String, String>,
}

/// `Filter.N.Name` / `Filter.N.Value.M`: every filter must match (values within one are ORed).
fn matches(view: &View<'_>, filters: &[Params], known: &[&str]) -> Result<bool, AwsError> {
    for f in filters {
        let name = f.get("Name").unwrap_or_default();
        let values = f.list("Value");
        let any = |text: &str| values.iter().any(|v| glob(v, text));
        let ok = if let Some(key) = name.strip_prefix("tag:") {
            view.tags.get(key).is_some_and(|v| any(v))
        } else if name == "tag-key" {
            view.tags.keys().any(|k| any(k))
        } else if known.contains(&name) {
            view.fields.iter().any(|(n, v)| *n == name && any(v))
        } else {
            return Err(AwsError::invalid_value(format!(
                "The filter '{name}' is invalid"
            )));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn write_tag_set(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.list("tagSet", "item", tags, |x, (k, v)| {
        x.leaf("key", k).leaf("value", v);
    });
}

/// `MaxResults` / `NextToken` paging (the token is an offset).
fn paged<T>(items: Vec<T>, p: &Params) -> Result<(Vec<T>, Option<String>), AwsError> {
    let max = p.int("MaxResults").map_err(AwsError::invalid_value)?;
    let start: usize = match p.nonempty("NextToken") {
        Some(t) => t
            .parse()
            .map_err(|_| AwsError::invalid_value(format!("Invalid NextToken '{t}'")))?,
        None => 0,
    };
    let items: Vec<T> = items.into_iter().skip(start).collect();
    match max {
        None => Ok((items, None)),
        Some(m) if (5..=1000).contains(&m) => {
            let m = m as usize;
            let next = (items.len() > m).then(|| (start + m).to_string());
            Ok((items.into_iter().take(m).collect(), next))
        }
        Some(m) => Err(AwsError::invalid_value(format!(
            "MaxResults {m} must be between 5 and 1000"
        ))),
    }
}

fn describe_vpcs(state: &AwsState, p: &Params) -> Result<String, AwsError> {
    let ids = p.list("VpcId");
    if let Some(bad) = ids.iter().find(|i| *i != VPC_ID) {
        return Err(AwsError::new(
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{bad}' does not exist"),
        ));
    }
    let view = View {
        fields: vec![
            ("vpc-id", VPC_ID.into()),
            ("cidr", VPC_CIDR.into()),
            ("state", "available".into()),
        ],
        tags: &state.ec2.vpc_tags,
    };
    let show = matches(&view, &p.structs("Filter"), &["vpc-id", "cidr", "state"])?;
    let mut x = Xml::new();
    x.list("vpcSet", "item", show.then_some(()), |x, ()| {
        x.leaf("vpcId", VPC_ID)
            .leaf("state", "available")
            .leaf("cidrBlock", VPC_CIDR)
            .leaf("isDefault", false);
        write_tag_set(x, &state.ec2.vpc_tags);
    });
    Ok(x.into_string())
}

fn describe_zones(_state: &AwsState, _p: &Params) -> Result<String, AwsError> {
    let mut x = Xml::new();
    x.list(
        "availabilityZoneInfo",
        "item",
        AWS_ZONES.iter().enumerate(),
        |x, (i, z)| {
            x.leaf("zoneName", z)
                .leaf("zoneId", format!("use1-az{}", i + 1))
                .leaf("zoneState", "available")
                .leaf("zoneType", "availability-zone")
                .leaf("regionName", REGION)
                .leaf("optInStatus", "opt-in-not-required");
        },
    );
    Ok(x.into_string())
}

fn describe_subnets(state: &AwsState, p: &Params) -> Result<String, AwsError> {
    let ids = p.list("SubnetId");
    for id in &ids {
        if !state.ec2.subnets.contains_key(id) {
            return Err(AwsError::new(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ));
        }
    }
    let filters = p.structs("Filter");
    let known = [
        "vpc-id",
        "subnet-id",
        "availability-zone",
        "cidr-block",
        "state",
        "default-for-az",
    ];
    let mut found = Vec::new();
    for s in state.ec2.subnets.values() {
        if !ids.is_empty() && !ids.contains(&s.id) {
            continue;
        }
        let view = View {
            fields: vec![
                ("vpc-id", s.vpc.clone()),
                ("subnet-id", s.id.clone()),
                ("availability-zone", s.zone.clone()),
                ("cidr-block", s.cidr.to_string()),
                ("state", "available".into()),
                ("default-for-az", "false".into()),
            ],
            tags: &s.tags,
        };
        if matches(&view, &filters, &known)? {
            found.push(s);
        }
    }
    let (items, next) = paged(found, p)?;
    let mut x = Xml::new();
    x.list("subnetSet", "item", items, |x, s| {
        let zone_idx = AWS_ZONES.iter().position(|z| *z == s.zone).unwrap_or(0) + 1;
        x.leaf("subnetId", &s.id)
            .leaf(
                "subnetArn",
                format!("arn:aws:ec2:{REGION}:123456789012:subnet/{}", s.id),
            )
            .leaf("state", "available")
            .leaf("vpcId", &s.vpc)
            .leaf("cidrBlock", s.cidr)
            .leaf("availableIpAddressCount", 4000)
            .leaf("availabilityZone", &s.zone)
            .leaf("availabilityZoneId", format!("use1-az{zone_idx}"))
            .leaf("defaultForAz", false)
            .leaf("mapPublicIpOnLaunch", s.public);
        write_tag_set(x, &s.tags);
    });
    x.opt("nextToken", next);
    Ok(x.into_string())
}

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

fn describe_groups(state: &AwsState, env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
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
    ];
    let mut found = Vec::new();
    for g in state.ec2.groups.values() {
        if (!ids.is_empty() && !ids.contains(&g.id))
            || (!names.is_empty() && !names.contains(&g.name))
        {
            continue;
        }
        let view = View {
            fields: vec![
                ("group-id", g.id.clone()),
                ("group-name", g.name.clone()),
                ("vpc-id", g.vpc.clone()),
                ("description", g.description.clone()),
                ("owner-id", env.config.account_id.clone()),
            ],
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

fn create_group(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
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

fn delete_group(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
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

fn authorize(state: &mut AwsState, env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
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

fn revoke(state: &mut AwsState, p: &Params) -> Result<String, AwsError> {
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

fn change_tags(
    state: &mut AwsState,
    env: &Env<'_>,
    p: &Params,
    create: bool,
) -> Result<String, AwsError> {
    let ids = p.list("ResourceId");
    if ids.is_empty() {
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter ResourceId",
        ));
    }
    let tags: Vec<(String, Option<String>)> = p
        .structs("Tag")
        .iter()
        .map(|t| {
            (
                t.get("Key").unwrap_or_default().to_string(),
                t.get("Value").map(str::to_string),
            )
        })
        .collect();
    if create
        && tags
            .iter()
            .any(|(k, _)| k.is_empty() || k.starts_with("aws:"))
    {
        return Err(AwsError::invalid_value(
            "Tag keys must be non-empty and must not start with 'aws:'",
        ));
    }
    for id in &ids {
        let exists = match id.split('-').next().unwrap_or_default() {
            "sg" => state.ec2.groups.contains_key(id),
            "subnet" => state.ec2.subnets.contains_key(id),
            "vpc" => state.ec2.has_vpc(id),
            "i" => env.instances.get(id).is_some(),
            _ => false,
        };
        if !exists {
            let code = match id.split('-').next().unwrap_or_default() {
                "sg" => "InvalidGroup.NotFound",
                "subnet" => "InvalidSubnetID.NotFound",
                "vpc" => "InvalidVpcID.NotFound",
                "i" => "InvalidInstanceID.NotFound",
                _ => "InvalidID",
            };
            return Err(AwsError::new(code, format!("The ID '{id}' does not exist")));
        }
    }
    for id in &ids {
        let map = match id.split('-').next().unwrap_or_default() {
            "sg" => state.ec2.groups.get_mut(id).map(|g| &mut g.tags),
            "subnet" => state.ec2.subnets.get_mut(id).map(|s| &mut s.tags),
            "vpc" => Some(&mut state.ec2.vpc_tags),
            _ => Some(state.ec2.instance_tags.entry(id.clone()).or_default()),
        };
        let Some(map) = map else { continue };
        for (k, v) in &tags {
            if create {
                map.insert(k.clone(), v.clone().unwrap_or_default());
            } else if v.as_ref().is_none_or(|v| map.get(k) == Some(v)) {
                map.remove(k);
            }
        }
        if !create && tags.is_empty() {
            map.clear();
        }
    }
    let mut x = Xml::new();
    x.leaf("return", true);
    Ok(x.into_string())
}

fn describe_instances(state: &AwsState, env: &Env<'_>, p: &Params) -> Result<String, AwsError> {
    let ids = p.list("InstanceId");
    let all = env.instances.list();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !all.iter().any(|i| &i.id == *id))
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AwsError::new(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs {list} do not exist"),
        ));
    }
    let filters = p.structs("Filter");
    let known = [
        "instance-id",
        "instance-state-name",
        "availability-zone",
        "private-ip-address",
        "private-dns-name",
        "vpc-id",
        "subnet-id",
    ];
    let mut found = Vec::new();
    for inst in all.iter().filter(|i| ids.is_empty() || ids.contains(&i.id)) {
        let tags = state.ec2.instance_tags(inst);
        let dns = format!(
            "ip-{}.ec2.internal",
            inst.private_ip.to_string().replace('.', "-")
        );
        let subnet = state.ec2.instance_subnet(inst);
        let view = View {
            fields: vec![
                ("instance-id", inst.id.clone()),
                ("instance-state-name", "running".into()),
                ("availability-zone", inst.zone.clone()),
                ("private-ip-address", inst.private_ip.to_string()),
                ("private-dns-name", dns.clone()),
                ("vpc-id", VPC_ID.into()),
                ("subnet-id", subnet.clone()),
            ],
            tags: &tags,
        };
        if matches(&view, &filters, &known)? {
            found.push((inst, tags.clone(), dns, subnet));
        }
    }
    let (items, next) = paged(found, p)?;
    let owner = &env.config.account_id;
    let mut x = Xml::new();
    x.list(
        "reservationSet",
        "item",
        items,
        |x, (inst, tags, dns, subnet)| {
            x.leaf("reservationId", format!("r-{}", &inst.id[2..]))
                .leaf("ownerId", owner);
            x.list("instancesSet", "item", [()], |x, ()| {
                x.leaf("instanceId", &inst.id)
                    .leaf("imageId", "ami-0123456789abcdef0")
                    .elem("instanceState", |x| {
                        x.leaf("code", 16).leaf("name", "running");
                    })
                    .leaf("privateDnsName", &dns)
                    .leaf("instanceType", "m5.large")
                    .elem("placement", |x| {
                        x.leaf("availabilityZone", &inst.zone)
                            .leaf("tenancy", "default");
                    })
                    .leaf("subnetId", &subnet)
                    .leaf("vpcId", VPC_ID)
                    .leaf("privateIpAddress", inst.private_ip)
                    .list("groupSet", "item", [()], |x, ()| {
                        x.leaf("groupId", NODE_SG)
                            .leaf("groupName", "frontdesk-nodes");
                    });
                write_tag_set(x, &tags);
            });
        },
    );
    x.opt("nextToken", next);
    Ok(x.into_string())
}

/// EC2 entry point: one action on the state, answering the inner XML of `<{Op}Response>`.
pub(crate) fn dispatch(
    state: &mut AwsState,
    env: &Env<'_>,
    action: &str,
    p: &Params,
) -> Result<String, AwsError> {
    match action {
        "DescribeVpcs" => describe_vpcs(state, p),
        "DescribeSubnets" => describe_subnets(state, p),
        "DescribeAvailabilityZones" => describe_zones(state, p),
        "DescribeSecurityGroups" => describe_groups(state, env, p),
        "CreateSecurityGroup" => create_group(state, p),
        "DeleteSecurityGroup" => delete_group(state, p),
        "AuthorizeSecurityGroupIngress" => authorize(state, env, p),
        "RevokeSecurityGroupIngress" => revoke(state, p),
        "CreateTags" => change_tags(state, env, p, true),
        "DeleteTags" => change_tags(state, env, p, false),
        "DescribeInstances" => describe_instances(state, env, p),
        other => Err(AwsError::new(
            "InvalidAction",
            format!("The action {other} is not valid for this web service."),
        )),
    }
}

/// `/_admin/state`'s security groups (the seeded default group left out).
pub(crate) fn snapshot_groups(s: &Ec2State) -> serde_json::Value {
    let groups: Vec<_> = s
        .groups
        .values()
        .filter(|g| g.id != DEFAULT_SG)
        .map(|g| {
            let rules: Vec<String> = g.ingress.iter().map(Rule::describe).collect();
            serde_json::json!({ "id": g.id, "name": g.name, "vpc_id": g.vpc, "tags": g.tags, "ingress": rules })
        })
        .collect();
    serde_json::Value::Array(groups)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_like_ec2_filters() {
        let cases = [
            ("*", "anything", true),
            ("1", "1", true),
            ("1", "2", false),
            ("kube*", "kubernetes", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("", "", true),
            ("*x", "abc", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob(p, t), want, "{p} vs {t}");
        }
    }
}
