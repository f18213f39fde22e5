//! EC2 calls over real HTTP: subnet discovery, security groups and rules, instances, tags.

use super::*;

#[tokio::test]
async fn subnets_are_discoverable_by_role_and_cluster_tags() {
    let h = start().await;
    let public = ec2(
        &h,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "tag:kubernetes.io/role/elb"),
            ("Filter.1.Value.1", "1"),
            ("Filter.2.Name", "tag-key"),
            ("Filter.2.Value.1", "kubernetes.io/cluster/sandbox"),
        ],
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.body);
    assert!(public.body.contains(xml::EC2_NS));
    assert_eq!(public.all("subnetId").len(), 3);
    assert_eq!(
        public.all("availabilityZone"),
        ["us-east-1a", "us-east-1b", "us-east-1c"]
    );
    let internal = ec2(
        &h,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "tag:kubernetes.io/role/internal-elb"),
            ("Filter.1.Value.1", "*"),
        ],
    )
    .await;
    assert_eq!(internal.all("subnetId")[0], PRIV_A);
    let by_id = ec2(&h, "DescribeSubnets", &[("SubnetId.1", PUB_B)]).await;
    assert_eq!(by_id.all("subnetId"), [PUB_B]);
    let none = ec2(
        &h,
        "DescribeSubnets",
        &[
            ("Filter.1.Name", "tag-key"),
            ("Filter.1.Value.1", "kubernetes.io/cluster/other"),
        ],
    )
    .await;
    assert!(none.all("subnetId").is_empty());
    assert_eq!(
        ec2(
            &h,
            "DescribeSubnets",
            &[("SubnetId.1", "subnet-0000000000000ffff")]
        )
        .await
        .code(),
        "InvalidSubnetID.NotFound"
    );
    assert_eq!(
        ec2(
            &h,
            "DescribeSubnets",
            &[("Filter.1.Name", "bogus"), ("Filter.1.Value.1", "x")]
        )
        .await
        .code(),
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn security_groups_rules_and_dependencies() {
    let h = start().await;
    let create = [
        ("GroupName", "k8s-web"),
        (
            "GroupDescription",
            "[k8s] Managed SecurityGroup for LoadBalancer",
        ),
        ("VpcId", ec2::VPC_ID),
        ("TagSpecification.1.ResourceType", "security-group"),
        (
            "TagSpecification.1.Tag.1.Key",
            "kubernetes.io/cluster/sandbox",
        ),
        ("TagSpecification.1.Tag.1.Value", "owned"),
    ];
    let r = ec2(&h, "CreateSecurityGroup", &create).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sg = r.one("groupId");
    assert_eq!(
        ec2(&h, "CreateSecurityGroup", &create).await.code(),
        "InvalidGroup.Duplicate"
    );

    let rule = [
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "80"),
        ("IpPermissions.1.ToPort", "80"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
        ("IpPermissions.1.IpRanges.2.CidrIp", "192.168.0.0/16"),
        ("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", "2001:db8::/32"),
    ];
    let auth = ec2(&h, "AuthorizeSecurityGroupIngress", &rule).await;
    assert_eq!(auth.status, 200, "{}", auth.body);
    assert_eq!(auth.all("securityGroupRuleId").len(), 3);
    assert_eq!(
        ec2(&h, "AuthorizeSecurityGroupIngress", &rule).await.code(),
        "InvalidPermission.Duplicate"
    );
    let described = ec2(
        &h,
        "DescribeSecurityGroups",
        &[
            ("Filter.1.Name", "tag:kubernetes.io/cluster/sandbox"),
            ("Filter.1.Value.1", "owned"),
            ("Filter.2.Name", "group-name"),
            ("Filter.2.Value.1", "k8s-web"),
        ],
    )
    .await;
    assert_eq!(described.all("groupId"), std::slice::from_ref(&sg));
    assert_eq!(
        described.all("cidrIp"),
        ["10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/0"]
    );
    assert_eq!(described.all("cidrIpv6"), ["2001:db8::/32"]);

    let one = [
        ("GroupId", sg.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "80"),
        ("IpPermissions.1.ToPort", "80"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "192.168.0.0/16"),
    ];
    assert_eq!(
        ec2(&h, "RevokeSecurityGroupIngress", &one).await.status,
        200
    );
    assert_eq!(
        ec2(&h, "RevokeSecurityGroupIngress", &one).await.code(),
        "InvalidPermission.NotFound"
    );

    let lb = create_lb(&h, "with-sg", &[("SecurityGroups.member.1", &sg)]).await;
    assert_eq!(lb.all("SecurityGroups"), [format!("<member>{sg}</member>")]);
    let lb = lb.one("LoadBalancerArn");
    let dep = ec2(&h, "DeleteSecurityGroup", &[("GroupId", &sg)]).await;
    assert_eq!(dep.code(), "DependencyViolation");
    elb(&h, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb)]).await;
    assert_eq!(
        ec2(&h, "DeleteSecurityGroup", &[("GroupId", &sg)])
            .await
            .status,
        200
    );
    assert_eq!(
        ec2(&h, "DeleteSecurityGroup", &[("GroupId", &sg)])
            .await
            .code(),
        "InvalidGroup.NotFound"
    );
    assert_eq!(
        ec2(&h, "DescribeSecurityGroups", &[("GroupId.1", &sg)])
            .await
            .code(),
        "InvalidGroup.NotFound"
    );
}

#[tokio::test]
async fn instances_and_tags() {
    let h = start().await;
    let nodes = h.cloud().instances.list();
    let r = ec2(
        &h,
        "DescribeInstances",
        &[
            ("InstanceId.1", &nodes[0].id),
            ("InstanceId.2", &nodes[2].id),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.all("instanceId"),
        [nodes[0].id.clone(), nodes[2].id.clone()]
    );
    assert_eq!(r.all("availabilityZone"), ["us-east-1a", "us-east-1c"]);
    assert_eq!(
        r.all("privateIpAddress")[0],
        nodes[0].private_ip.to_string()
    );
    let missing = ec2(
        &h,
        "DescribeInstances",
        &[("InstanceId.1", "i-0000000000000dead")],
    )
    .await;
    assert_eq!(
        (missing.status, missing.code()),
        (400, "InvalidInstanceID.NotFound".into())
    );

    let tag = ec2(
        &h,
        "CreateTags",
        &[
            ("ResourceId.1", &nodes[0].id),
            ("ResourceId.2", ec2::NODE_SG),
            ("Tag.1.Key", "role"),
            ("Tag.1.Value", "edge"),
        ],
    )
    .await;
    assert_eq!(tag.status, 200, "{}", tag.body);
    let by_tag = ec2(
        &h,
        "DescribeInstances",
        &[("Filter.1.Name", "tag:role"), ("Filter.1.Value.1", "edge")],
    )
    .await;
    assert_eq!(by_tag.all("instanceId"), [nodes[0].id.clone()]);
    let del = ec2(
        &h,
        "DeleteTags",
        &[("ResourceId.1", &nodes[0].id), ("Tag.1.Key", "role")],
    )
    .await;
    assert_eq!(del.status, 200);
    let by_tag = ec2(
        &h,
        "DescribeInstances",
        &[("Filter.1.Name", "tag:role"), ("Filter.1.Value.1", "edge")],
    )
    .await;
    assert!(by_tag.all("instanceId").is_empty());
    assert_eq!(
        ec2(
            &h,
            "CreateTags",
            &[("ResourceId.1", "sg-0000000000000ffff"), ("Tag.1.Key", "k")]
        )
        .await
        .code(),
        "InvalidGroup.NotFound"
    );
}
