//! The AWS front: load balancer and target group attributes, tags, request validation.

use super::*;

#[tokio::test]
async fn attributes_tags_and_validation() {
    let h = start().await;
    let lb = create_lb(&h, "attrs", &[]).await.one("LoadBalancerArn");
    let tg = create_tg(&h, "attrs-tg", "TCP", "30080")
        .await
        .one("TargetGroupArn");

    let r = elb(
        &h,
        "ModifyLoadBalancerAttributes",
        &[
            ("LoadBalancerArn", &lb),
            (
                "Attributes.member.1.Key",
                "load_balancing.cross_zone.enabled",
            ),
            ("Attributes.member.1.Value", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = elb(
        &h,
        "DescribeLoadBalancerAttributes",
        &[("LoadBalancerArn", &lb)],
    )
    .await;
    let keys = r.all("Key");
    let pos = keys
        .iter()
        .position(|k| k == "load_balancing.cross_zone.enabled")
        .unwrap();
    assert_eq!(r.all("Value")[pos], "true");
    let bad = elb(
        &h,
        "ModifyTargetGroupAttributes",
        &[
            ("TargetGroupArn", &tg),
            ("Attributes.member.1.Key", "no.such"),
            ("Attributes.member.1.Value", "1"),
        ],
    )
    .await;
    assert_eq!(bad.code(), "ValidationError");
    let ok = elb(
        &h,
        "ModifyTargetGroupAttributes",
        &[
            ("TargetGroupArn", &tg),
            ("Attributes.member.1.Key", "proxy_protocol_v2.enabled"),
            ("Attributes.member.1.Value", "true"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let modified = elb(
        &h,
        "ModifyTargetGroup",
        &[
            ("TargetGroupArn", &tg),
            ("HealthCheckProtocol", "HTTP"),
            ("HealthCheckPort", "32000"),
            ("HealthCheckPath", "/healthz"),
            ("HealthCheckIntervalSeconds", "10"),
        ],
    )
    .await;
    assert_eq!(modified.status, 200, "{}", modified.body);
    assert_eq!(modified.one("HealthCheckPath"), "/healthz");
    assert_eq!(modified.one("HealthCheckIntervalSeconds"), "10");
    let path_on_tcp = elb(
        &h,
        "ModifyTargetGroup",
        &[
            ("TargetGroupArn", &tg),
            ("HealthCheckProtocol", "TCP"),
            ("HealthCheckPath", "/x"),
        ],
    )
    .await;
    assert_eq!(path_on_tcp.code(), "ValidationError");

    let add = elb(
        &h,
        "AddTags",
        &[
            ("ResourceArns.member.1", &lb),
            ("ResourceArns.member.2", &tg),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "edge"),
        ],
    )
    .await;
    assert_eq!(add.status, 200, "{}", add.body);
    let rm = elb(
        &h,
        "RemoveTags",
        &[
            ("ResourceArns.member.1", &lb),
            ("TagKeys.member.1", "kubernetes.io/service-name"),
        ],
    )
    .await;
    assert_eq!(rm.status, 200);
    let tags = elb(
        &h,
        "DescribeTags",
        &[
            ("ResourceArns.member.1", &lb),
            ("ResourceArns.member.2", &tg),
        ],
    )
    .await;
    assert_eq!(tags.all("ResourceArn"), [lb.clone(), tg.clone()]);
    assert_eq!(tags.all("Key"), ["team", "team"]);
    let nf = elb(
        &h,
        "DescribeTags",
        &[("ResourceArns.member.1", &lb.replace("attrs", "nope"))],
    )
    .await;
    assert_eq!(nf.code(), "LoadBalancerNotFound");

    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("Name", "-bad")], "ValidationError"),
        (&[("Name", "internal-x")], "ValidationError"),
        (
            &[("Name", "two-in-a"), ("Subnets.member.3", PRIV_A)],
            "InvalidConfigurationRequest",
        ),
        (
            &[
                ("Name", "nosuch"),
                ("Subnets.member.3", "subnet-0000000000000ffff"),
            ],
            "SubnetNotFound",
        ),
        (
            &[
                ("Name", "sg-missing"),
                ("SecurityGroups.member.1", "sg-0000000000000ffff"),
            ],
            "InvalidSecurityGroup",
        ),
    ];
    for (extra, code) in cases {
        let mut p = vec![
            ("Type", "network"),
            ("Subnets.member.1", PUB_A),
            ("Subnets.member.2", PUB_B),
        ];
        p.extend_from_slice(extra);
        let r = elb(&h, "CreateLoadBalancer", &p).await;
        assert_eq!(r.code(), code, "{extra:?}: {}", r.body);
    }
    let mapped = elb(
        &h,
        "CreateLoadBalancer",
        &[
            ("Name", "fixed-ip"),
            ("Type", "network"),
            ("Scheme", "internal"),
            ("SubnetMappings.member.1.SubnetId", PRIV_A),
            ("SubnetMappings.member.1.PrivateIPv4Address", "10.0.0.200"),
        ],
    )
    .await;
    assert_eq!(
        mapped.one("PrivateIPv4Address"),
        "10.0.0.200",
        "{}",
        mapped.body
    );
    let outside = elb(
        &h,
        "CreateLoadBalancer",
        &[
            ("Name", "bad-ip"),
            ("Type", "network"),
            ("Scheme", "internal"),
            ("SubnetMappings.member.1.SubnetId", PRIV_A),
            ("SubnetMappings.member.1.PrivateIPv4Address", "192.168.0.1"),
        ],
    )
    .await;
    assert_eq!(outside.code(), "InvalidConfigurationRequest");

    let missing = raw(h.addr(), "/", "Version=2015-12-01").await;
    assert_eq!(missing.code(), "MissingAction");
    let unknown = elb(&h, "FlyToTheMoon", &[]).await;
    assert_eq!(unknown.code(), "InvalidAction");
    // A path prefix on the endpoint is fine.
    let prefixed = raw(
        h.addr(),
        "/aws/",
        "Action=DescribeLoadBalancers&Version=2015-12-01",
    )
    .await;
    assert_eq!(prefixed.status, 200);
}
