//! The AWS front driven by the real `aws-sdk-elasticloadbalancingv2` and `aws-sdk-ec2` clients:
//! if the SDKs' serializers and XML parsers accept our wire format, so will the provider.

use aws_sdk_ec2 as ec2sdk;
use aws_sdk_elasticloadbalancingv2 as elb;
use ec2sdk::error::ProvideErrorMetadata as _;
use elb::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
    ProtocolEnum, Tag, TargetDescription, TargetGroupAttribute, TargetHealthStateEnum,
    TargetTypeEnum,
};

use super::*;
use crate::faults::{BucketSpec, FaultUpdate, Profile};

fn elb_client(url: &str) -> elb::Client {
    use elb::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    elb::Client::from_conf(
        elb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDMOCK",
                "SECRETMOCK",
                None,
                None,
                "static",
            ))
            .endpoint_url(url)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    )
}

fn ec2_client(url: &str) -> ec2sdk::Client {
    use ec2sdk::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    ec2sdk::Client::from_conf(
        ec2sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDMOCK",
                "SECRETMOCK",
                None,
                None,
                "static",
            ))
            .endpoint_url(url)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    )
}

async fn start() -> AwsHandle {
    serve(
        "127.0.0.1:0".parse().unwrap(),
        Instances::with_count(3, "aws"),
        Faults::new(Profile::None, 1),
        AwsConfig::default(),
    )
    .await
    .unwrap()
}

fn filter(name: &str, value: &str) -> ec2sdk::types::Filter {
    ec2sdk::types::Filter::builder()
        .name(name)
        .values(value)
        .build()
}

#[tokio::test]
async fn sdk_clients_run_the_whole_nlb_lifecycle() {
    let h = start().await;
    let (lbc, ec2c) = (elb_client(&h.url()), ec2_client(&h.url()));
    let nodes = h.cloud().instances.list();

    // EC2: discovery, security group, instances.
    let subnets = ec2c
        .describe_subnets()
        .filters(filter("tag:kubernetes.io/role/elb", "1"))
        .filters(filter("tag-key", "kubernetes.io/cluster/test"))
        .send()
        .await
        .unwrap();
    let subnets = subnets.subnets();
    assert_eq!(subnets.len(), 3);
    assert_eq!(subnets[0].availability_zone(), Some("us-east-1a"));
    assert!(
        subnets[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("kubernetes.io/role/elb"))
    );
    let vpc = subnets[0].vpc_id().unwrap().to_string();
    let subnet_ids: Vec<String> = subnets
        .iter()
        .filter_map(|s| s.subnet_id().map(str::to_string))
        .collect();

    let sg = ec2c
        .create_security_group()
        .group_name("k8s-default-web-0123456789")
        .description("[k8s] Managed SecurityGroup for LoadBalancer")
        .vpc_id(&vpc)
        .tag_specifications(
            ec2sdk::types::TagSpecification::builder()
                .resource_type(ec2sdk::types::ResourceType::SecurityGroup)
                .tags(
                    ec2sdk::types::Tag::builder()
                        .key("kubernetes.io/cluster/test")
                        .value("owned")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sg = sg.group_id().unwrap().to_string();
    let perm = ec2sdk::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(80)
        .to_port(80)
        .ip_ranges(
            ec2sdk::types::IpRange::builder()
                .cidr_ip("10.0.0.0/8")
                .description("client")
                .build(),
        )
        .ipv6_ranges(
            ec2sdk::types::Ipv6Range::builder()
                .cidr_ipv6("2001:db8::/32")
                .build(),
        )
        .build();
    let auth = ec2c
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(perm.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(auth.r#return(), Some(true));
    assert_eq!(auth.security_group_rules().len(), 2);
    let dup = ec2c
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(perm.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        dup.into_service_error().code(),
        Some("InvalidPermission.Duplicate")
    );
    let groups = ec2c
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    assert_eq!(group.group_name(), Some("k8s-default-web-0123456789"));
    let p = &group.ip_permissions()[0];
    assert_eq!(
        (p.ip_protocol(), p.from_port(), p.to_port()),
        (Some("tcp"), Some(80), Some(80))
    );
    assert_eq!(p.ip_ranges()[0].cidr_ip(), Some("10.0.0.0/8"));
    assert_eq!(p.ip_ranges()[0].description(), Some("client"));
    assert_eq!(p.ipv6_ranges()[0].cidr_ipv6(), Some("2001:db8::/32"));
    assert_eq!(group.tags()[0].value(), Some("owned"));

    let inst = ec2c
        .describe_instances()
        .instance_ids(&nodes[1].id)
        .send()
        .await
        .unwrap();
    let i = &inst.reservations()[0].instances()[0];
    assert_eq!(i.instance_id(), Some(nodes[1].id.as_str()));
    assert_eq!(
        i.placement().and_then(|p| p.availability_zone()),
        Some("us-east-1b")
    );
    assert_eq!(
        i.private_ip_address(),
        Some(nodes[1].private_ip.to_string().as_str())
    );
    let missing = ec2c
        .describe_instances()
        .instance_ids("i-0000000000000dead")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        missing.into_service_error().code(),
        Some("InvalidInstanceID.NotFound")
    );

    // ELBv2: load balancer, target group, listener, targets.
    let created = lbc
        .create_load_balancer()
        .name("a0123456789abcdef0123456789abcde")
        .r#type(LoadBalancerTypeEnum::Network)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnet_ids.clone()))
        .security_groups(&sg)
        .tags(
            Tag::builder()
                .key("kubernetes.io/service-name")
                .value("default/web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lb = &created.load_balancers()[0];
    let lb_arn = lb.load_balancer_arn().unwrap().to_string();
    assert!(lb_arn.contains(":loadbalancer/net/a0123456789abcdef0123456789abcde/"));
    assert!(
        lb.dns_name()
            .unwrap()
            .ends_with(".elb.us-east-1.amazonaws.com")
    );
    assert_eq!(
        lb.state().and_then(|s| s.code()),
        Some(&LoadBalancerStateEnum::Active)
    );
    assert_eq!(lb.r#type(), Some(&LoadBalancerTypeEnum::Network));
    assert_eq!(lb.availability_zones().len(), 3);
    assert_eq!(lb.security_groups(), std::slice::from_ref(&sg));
    assert!(lb.created_time().is_some());

    let conflict = lbc
        .create_load_balancer()
        .name("a0123456789abcdef0123456789abcde")
        .r#type(LoadBalancerTypeEnum::Network)
        .scheme(LoadBalancerSchemeEnum::Internal)
        .set_subnets(Some(subnet_ids.clone()))
        .send()
        .await
        .unwrap_err();
    assert!(
        conflict
            .into_service_error()
            .is_duplicate_load_balancer_name_exception()
    );

    let tg = lbc
        .create_target_group()
        .name("k8s-default-web-abcdef0123")
        .protocol(ProtocolEnum::Tcp)
        .port(30080)
        .vpc_id(&vpc)
        .target_type(TargetTypeEnum::Instance)
        .health_check_protocol(ProtocolEnum::Http)
        .health_check_port("32000")
        .health_check_path("/healthz")
        .health_check_interval_seconds(10)
        .healthy_threshold_count(2)
        .unhealthy_threshold_count(2)
        .tags(
            Tag::builder()
                .key("kubernetes.io/service-name")
                .value("default/web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tg = &tg.target_groups()[0];
    assert_eq!(tg.health_check_path(), Some("/healthz"));
    assert_eq!(tg.health_check_interval_seconds(), Some(10));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200-399"));
    let tg_arn = tg.target_group_arn().unwrap().to_string();

    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(&tg_arn)
        .build();
    let listener = lbc
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Tcp)
        .port(80)
        .default_actions(forward.clone())
        .send()
        .await
        .unwrap();
    let listener = &listener.listeners()[0];
    assert_eq!(listener.port(), Some(80));
    assert_eq!(
        listener.default_actions()[0].target_group_arn(),
        Some(tg_arn.as_str())
    );
    let listener_arn = listener.listener_arn().unwrap().to_string();
    let udp_tg = lbc
        .create_target_group()
        .name("k8s-udp")
        .protocol(ProtocolEnum::Udp)
        .port(30053)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let udp_tg = udp_tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let dup = lbc
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Udp)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&udp_tg)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(dup.into_service_error().is_duplicate_listener_exception());

    lbc.register_targets()
        .target_group_arn(&tg_arn)
        .targets(
            TargetDescription::builder()
                .id(&nodes[0].id)
                .port(30080)
                .build(),
        )
        .targets(
            TargetDescription::builder()
                .id(&nodes[1].id)
                .port(30080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let bad = lbc
        .register_targets()
        .target_group_arn(&tg_arn)
        .targets(
            TargetDescription::builder()
                .id("i-0000000000000dead")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(bad.into_service_error().is_invalid_target_exception());
    let health = lbc
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    let descs = health.target_health_descriptions();
    assert_eq!(descs.len(), 2);
    assert_eq!(descs[0].health_check_port(), Some("32000"));
    assert_eq!(
        descs[0].target_health().and_then(|t| t.state()),
        Some(&TargetHealthStateEnum::Healthy)
    );
    lbc.deregister_targets()
        .target_group_arn(&tg_arn)
        .targets(
            TargetDescription::builder()
                .id(&nodes[1].id)
                .port(30080)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let attrs = lbc
        .modify_target_group_attributes()
        .target_group_arn(&tg_arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key("proxy_protocol_v2.enabled")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        attrs
            .attributes()
            .iter()
            .any(|a| a.key() == Some("proxy_protocol_v2.enabled") && a.value() == Some("true"))
    );
    let tags = lbc
        .describe_tags()
        .resource_arns(&lb_arn)
        .resource_arns(&tg_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_descriptions().len(), 2);
    assert_eq!(
        tags.tag_descriptions()[1].tags()[0].value(),
        Some("default/web")
    );
    let by_lb = lbc
        .describe_target_groups()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_lb.target_groups()[0].load_balancer_arns(),
        std::slice::from_ref(&lb_arn)
    );
    let listeners = lbc
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners().len(), 1);

    {
        use elb::client::Waiters as _;
        lbc.wait_until_load_balancer_available()
            .load_balancer_arns(&lb_arn)
            .wait(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }

    // Teardown, with the dependency errors on the way.
    let in_use = lbc
        .delete_target_group()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap_err();
    assert!(in_use.into_service_error().is_resource_in_use_exception());
    let sg_in_use = ec2c
        .delete_security_group()
        .group_id(&sg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        sg_in_use.into_service_error().code(),
        Some("DependencyViolation")
    );
    lbc.delete_listener()
        .listener_arn(&listener_arn)
        .send()
        .await
        .unwrap();
    lbc.delete_load_balancer()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    lbc.delete_target_group()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    lbc.delete_target_group()
        .target_group_arn(&udp_tg)
        .send()
        .await
        .unwrap();
    ec2c.revoke_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(perm)
        .send()
        .await
        .unwrap();
    ec2c.delete_security_group()
        .group_id(&sg)
        .send()
        .await
        .unwrap();
    let gone = lbc
        .describe_load_balancers()
        .names("a0123456789abcdef0123456789abcde")
        .send()
        .await
        .unwrap_err();
    assert!(
        gone.into_service_error()
            .is_load_balancer_not_found_exception()
    );
    let snap = h.cloud().snapshot();
    assert_eq!(snap["load_balancers"].as_array().map(Vec::len), Some(0));
    assert_eq!(snap["target_groups"].as_array().map(Vec::len), Some(0));
    assert_eq!(snap["security_groups"].as_array().map(Vec::len), Some(1)); // the node group
}

#[tokio::test]
async fn sdk_sees_throttling_codes_and_pages() {
    let h = start().await;
    let (lbc, ec2c) = (elb_client(&h.url()), ec2_client(&h.url()));
    for name in ["pg-1", "pg-2", "pg-3"] {
        lbc.create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Network)
            .subnets("subnet-00000000000000a10")
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = lbc
        .describe_load_balancers()
        .page_size(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let names: Vec<String> = pages
        .into_iter()
        .map(|lb| lb.unwrap().load_balancer_name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["pg-1", "pg-2", "pg-3"]);

    let tiny = BucketSpec {
        capacity: 1.0,
        refill_per_sec: 0.0,
    };
    let buckets = [
        (buckets::ELB_DESCRIBE, tiny),
        (buckets::EC2_DESCRIBE_UNFILTERED, tiny),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    h.faults()
        .apply(FaultUpdate {
            buckets: Some(buckets),
            ..Default::default()
        })
        .unwrap();
    lbc.describe_load_balancers().send().await.unwrap();
    let throttled = lbc.describe_load_balancers().send().await.unwrap_err();
    let raw_status = throttled.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw_status, Some(400));
    assert_eq!(
        throttled.into_service_error().code(),
        Some("ThrottlingException")
    );
    ec2c.describe_security_groups().send().await.unwrap();
    let limited = ec2c.describe_security_groups().send().await.unwrap_err();
    assert_eq!(
        limited.raw_response().map(|r| r.status().as_u16()),
        Some(503)
    );
    assert_eq!(
        limited.into_service_error().code(),
        Some("RequestLimitExceeded")
    );
}
