//! The EC2 subset a load-balancer provider uses: one seeded VPC with a public and a private subnet
//! per zone (tagged for ELB subnet discovery), security groups with ingress rules, tags, and the
//! shared [`crate::state::Instances`] as EC2 instances.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::query::Params;
use super::xml::Xml;
use super::{AwsConfig, AwsError, AwsState, Env, REGION};
use crate::state::{AWS_ZONES, Instance};

mod groups;
mod instances;
use groups::{authorize, create_group, delete_group, describe_groups, revoke};
use instances::describe_instances;

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
mod tests;
