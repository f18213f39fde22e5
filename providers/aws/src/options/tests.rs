use super::*;

fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_without_annotations() {
    let o = parse(&BTreeMap::new(), Scheme::External).unwrap();
    assert_eq!(o.scheme, Scheme::External);
    assert_eq!(o.ip_address_type, IpAddressType::Ipv4);
    assert!(o.subnets.is_none() && o.tg_attributes.is_empty() && o.cross_zone.is_none());
    assert_eq!(o.health, HealthOverrides::default());
}

#[test]
#[allow(clippy::type_complexity)]
fn scheme_table() {
    let table: &[(&[(&str, &str)], Scheme, Option<Scheme>)] = &[
        (
            &[(INTERNAL, "true")],
            Scheme::External,
            Some(Scheme::Internal),
        ),
        (
            &[(INTERNAL, "0.0.0.0/0")],
            Scheme::External,
            Some(Scheme::Internal),
        ),
        (
            &[(INTERNAL, "false")],
            Scheme::Internal,
            Some(Scheme::External),
        ),
        (&[(INTERNAL, "")], Scheme::Internal, Some(Scheme::Internal)),
        (
            &[(SCHEME, "internal")],
            Scheme::External,
            Some(Scheme::Internal),
        ),
        (
            &[(SCHEME, "internet-facing")],
            Scheme::Internal,
            Some(Scheme::External),
        ),
        (&[(SCHEME, "private")], Scheme::External, None),
        (
            &[(SCHEME, "internal"), (INTERNAL, "false")],
            Scheme::External,
            None,
        ),
        (
            &[(SCHEME, "internal"), (INTERNAL, "true")],
            Scheme::External,
            Some(Scheme::Internal),
        ),
    ];
    for (pairs, core, want) in table {
        let got = parse(&ann(pairs), *core).map(|o| o.scheme).ok();
        assert_eq!(got, *want, "{pairs:?}");
    }
}

#[test]
fn rejections_name_the_annotation() {
    let table: &[(&[(&str, &str)], &str)] = &[
        (&[(TYPE, "external")], TYPE),
        (&[(HC_PROTOCOL, "UDP")], HC_PROTOCOL),
        (&[(HC_PORT, "http")], HC_PORT),
        (&[(HC_PATH, "healthz")], HC_PATH),
        (&[(HC_PATH, "/x"), (HC_PROTOCOL, "TCP")], HC_PATH),
        (&[(HC_INTERVAL, "1")], HC_INTERVAL),
        (&[(HC_TIMEOUT, "x")], HC_TIMEOUT),
        (&[(HC_HEALTHY, "11")], HC_HEALTHY),
        (&[(HC_UNHEALTHY, "1")], HC_UNHEALTHY),
        (&[(TG_ATTRIBUTES, "foo.bar=1")], TG_ATTRIBUTES),
        (
            &[(TG_ATTRIBUTES, "preserve_client_ip.enabled=yes")],
            TG_ATTRIBUTES,
        ),
        (
            &[(TG_ATTRIBUTES, "stickiness.type=lb_cookie")],
            TG_ATTRIBUTES,
        ),
        (&[(TG_ATTRIBUTES, "novalue")], TG_ATTRIBUTES),
        (&[(PROXY_PROTOCOL, "v2")], PROXY_PROTOCOL),
        (&[(CROSS_ZONE, "yes")], CROSS_ZONE),
        (&[(EXTRA_TAGS, "a=1,a=2")], EXTRA_TAGS),
        (&[(EXTRA_TAGS, "frontdesk.dev/cluster=x")], EXTRA_TAGS),
        (&[(SECURITY_GROUPS, "web")], SECURITY_GROUPS),
        (&[(EIP_ALLOCATIONS, "1.2.3.4")], EIP_ALLOCATIONS),
        (
            &[(EIP_ALLOCATIONS, "eipalloc-1"), (INTERNAL, "true")],
            EIP_ALLOCATIONS,
        ),
        (&[(PRIVATE_IPV4, "10.0.0.5")], PRIVATE_IPV4),
        (
            &[(PRIVATE_IPV4, "10.0.0.x"), (INTERNAL, "true")],
            PRIVATE_IPV4,
        ),
        (
            &[
                (EIP_ALLOCATIONS, "eipalloc-1"),
                (SUBNETS, "subnet-a,subnet-b"),
            ],
            EIP_ALLOCATIONS,
        ),
        (&[(IP_ADDRESS_TYPE, "ipv6")], IP_ADDRESS_TYPE),
        (&[(SUBNETS, " , ")], SUBNETS),
        (
            &[(
                "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
                "arn:x",
            )],
            "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
        ),
    ];
    for (pairs, field) in table {
        match parse(&ann(pairs), Scheme::External) {
            Err(ProviderError::InvalidSpec { field: f, .. }) => {
                assert_eq!(f, *field, "{pairs:?}")
            }
            other => panic!("{pairs:?}: expected InvalidSpec on {field}, got {other:?}"),
        }
    }
}

#[test]
fn accepted_values() {
    let o = parse(
        &ann(&[
            (TYPE, "nlb"),
            (SUBNETS, "subnet-a, subnet-b"),
            (HC_PROTOCOL, "http"),
            (HC_PORT, "traffic-port"),
            (HC_PATH, "/ready"),
            (HC_INTERVAL, "10"),
            (HC_TIMEOUT, "5"),
            (HC_HEALTHY, "2"),
            (HC_UNHEALTHY, "4"),
            (
                TG_ATTRIBUTES,
                "preserve_client_ip.enabled=true,deregistration_delay.timeout_seconds=30",
            ),
            (PROXY_PROTOCOL, "*"),
            (CROSS_ZONE, "true"),
            (EXTRA_TAGS, "team=web, env=prod"),
            (SECURITY_GROUPS, "sg-1,sg-2"),
            (EIP_ALLOCATIONS, "eipalloc-1,eipalloc-2"),
            (IP_ADDRESS_TYPE, "dualstack"),
        ]),
        Scheme::External,
    )
    .unwrap();
    assert_eq!(o.subnets.unwrap(), ["subnet-a", "subnet-b"]);
    assert_eq!(o.health.protocol, Some(HcProtocol::Http));
    assert_eq!(o.health.port.as_deref(), Some("traffic-port"));
    assert_eq!(o.health.interval, Some(10));
    assert_eq!(o.tg_attributes["proxy_protocol_v2.enabled"], "true");
    assert_eq!(
        o.tg_attributes["deregistration_delay.timeout_seconds"],
        "30"
    );
    assert_eq!(o.cross_zone, Some(true));
    assert_eq!(o.extra_tags["env"], "prod");
    assert_eq!(o.security_groups.unwrap().len(), 2);
    assert_eq!(o.ip_address_type, IpAddressType::Dualstack);
    let internal = parse(
        &ann(&[(SCHEME, "internal"), (PRIVATE_IPV4, "10.0.1.5")]),
        Scheme::External,
    )
    .unwrap();
    assert_eq!(internal.private_ipv4.unwrap(), [Ipv4Addr::new(10, 0, 1, 5)]);
}
