//! EC2 DescribeInstances over the shared instance registry (the sandbox's nodes).

use super::*;

pub(super) fn describe_instances(
    state: &AwsState,
    env: &Env<'_>,
    p: &Params,
) -> Result<String, AwsError> {
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
