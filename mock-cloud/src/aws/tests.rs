//! The AWS front over real HTTP on 127.0.0.1, with hand-written Query requests (a minimal
//! HTTP/1.1 client: this crate has no HTTP client dependency). The real SDK clients are exercised
//! in `sdk_tests`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::faults::{BucketSpec, Injection, Latency, Profile};

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    /// Text of every `<tag>` element, in document order.
    fn all(&self, tag: &str) -> Vec<String> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = Vec::new();
        let mut rest = self.body.as_str();
        while let Some(i) = rest.find(&open) {
            rest = &rest[i + open.len()..];
            let Some(j) = rest.find(&close) else { break };
            out.push(rest[..j].to_string());
            rest = &rest[j + close.len()..];
        }
        out
    }

    fn one(&self, tag: &str) -> String {
        self.all(tag)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no <{tag}> in {}", self.body))
    }

    fn code(&self) -> String {
        self.one("Code")
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn raw(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        body: body.to_string(),
    }
}

/// One Query call: `action`, the service's version, and `params` (encoded here).
async fn call(h: &AwsHandle, version: &str, action: &str, params: &[(&str, &str)]) -> Reply {
    let mut body = format!("Action={action}&Version={version}");
    for (k, v) in params {
        body.push_str(&format!("&{}={}", encode(k), encode(v)));
    }
    raw(h.addr(), "/", &body).await
}

async fn elb(h: &AwsHandle, action: &str, params: &[(&str, &str)]) -> Reply {
    call(h, "2015-12-01", action, params).await
}

async fn ec2(h: &AwsHandle, action: &str, params: &[(&str, &str)]) -> Reply {
    call(h, "2016-11-15", action, params).await
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

const PUB_A: &str = "subnet-00000000000000a10";
const PUB_B: &str = "subnet-00000000000000a11";
const PRIV_A: &str = "subnet-00000000000000b10";

async fn create_lb(h: &AwsHandle, name: &str, extra: &[(&str, &str)]) -> Reply {
    let mut p = vec![
        ("Name", name),
        ("Type", "network"),
        ("Subnets.member.1", PUB_A),
        ("Subnets.member.2", PUB_B),
        ("Tags.member.1.Key", "kubernetes.io/service-name"),
        ("Tags.member.1.Value", "default/web"),
    ];
    p.extend_from_slice(extra);
    elb(h, "CreateLoadBalancer", &p).await
}

async fn create_tg(h: &AwsHandle, name: &str, protocol: &str, port: &str) -> Reply {
    elb(
        h,
        "CreateTargetGroup",
        &[
            ("Name", name),
            ("Protocol", protocol),
            ("Port", port),
            ("VpcId", ec2::VPC_ID),
            ("TargetType", "instance"),
        ],
    )
    .await
}

async fn create_listener(h: &AwsHandle, lb: &str, tg: &str, port: &str, protocol: &str) -> Reply {
    elb(
        h,
        "CreateListener",
        &[
            ("LoadBalancerArn", lb),
            ("Protocol", protocol),
            ("Port", port),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", tg),
        ],
    )
    .await
}

#[tokio::test]
async fn load_balancer_lifecycle_with_real_error_codes() {
    let h = start().await;
    let nodes = h.cloud().instances.list();

    let r = create_lb(&h, "k8s-nlb", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(xml::ELB_NS));
    let lb = r.one("LoadBalancerArn");
    assert!(lb.starts_with(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/k8s-nlb/"
    ));
    let dns = r.one("DNSName");
    assert!(
        dns.starts_with("k8s-nlb-") && dns.ends_with(".elb.us-east-1.amazonaws.com"),
        "{dns}"
    );
    assert_eq!(r.one("Code"), "active"); // no provisioning delay configured
    assert_eq!(r.all("ZoneName"), ["us-east-1a", "us-east-1b"]);

    // Same name, same settings: the same load balancer. Different settings: a conflict.
    let again = create_lb(&h, "k8s-nlb", &[]).await;
    assert_eq!(again.one("LoadBalancerArn"), lb);
    let other = create_lb(&h, "k8s-nlb", &[("Scheme", "internal")]).await;
    assert_eq!(
        (other.status, other.code()),
        (400, "DuplicateLoadBalancerName".into())
    );
    assert!(other.body.contains("<Type>Sender</Type>"));

    let tg = create_tg(&h, "k8s-tg-80", "TCP", "30080").await;
    assert_eq!(tg.status, 200, "{}", tg.body);
    assert_eq!(tg.one("HealthCheckPort"), "traffic-port");
    let tg = tg.one("TargetGroupArn");
    assert!(tg.contains(":targetgroup/k8s-tg-80/"));
    assert_eq!(
        create_tg(&h, "k8s-tg-80", "TCP", "30080")
            .await
            .one("TargetGroupArn"),
        tg
    );
    let dup = create_tg(&h, "k8s-tg-80", "UDP", "30080").await;
    assert_eq!(dup.code(), "DuplicateTargetGroupName");

    let l = create_listener(&h, &lb, &tg, "80", "TCP").await;
    assert_eq!(l.status, 200, "{}", l.body);
    let listener = l.one("ListenerArn");
    assert!(listener.contains(":listener/net/k8s-nlb/"));
    assert_eq!(
        create_listener(&h, &lb, &tg, "80", "TCP")
            .await
            .one("ListenerArn"),
        listener
    );
    let udp_tg = create_tg(&h, "k8s-tg-udp", "UDP", "30053")
        .await
        .one("TargetGroupArn");
    let clash = create_listener(&h, &lb, &udp_tg, "80", "UDP").await;
    assert_eq!(clash.code(), "DuplicateListener");
    let mismatch = create_listener(&h, &lb, &udp_tg, "53", "TCP").await;
    assert_eq!(mismatch.code(), "IncompatibleProtocols");
    let described = elb(&h, "DescribeTargetGroups", &[("LoadBalancerArn", &lb)]).await;
    assert_eq!(described.all("TargetGroupArn"), std::slice::from_ref(&tg));

    let reg = elb(
        &h,
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tg),
            ("Targets.member.1.Id", &nodes[0].id),
            ("Targets.member.2.Id", &nodes[1].id),
            ("Targets.member.2.Port", "30080"),
        ],
    )
    .await;
    assert_eq!(reg.status, 200, "{}", reg.body);
    assert!(
        reg.body
            .contains("<RegisterTargetsResult></RegisterTargetsResult>")
    );
    let bad = elb(
        &h,
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tg),
            ("Targets.member.1.Id", "i-0000000000000dead"),
        ],
    )
    .await;
    assert_eq!(bad.code(), "InvalidTarget");
    let health = elb(&h, "DescribeTargetHealth", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(health.all("State"), ["healthy", "healthy"]);
    assert_eq!(health.all("HealthCheckPort"), ["30080", "30080"]);
    let unused = elb(&h, "DescribeTargetHealth", &[("TargetGroupArn", &udp_tg)]).await;
    assert!(unused.all("State").is_empty());

    // Terminated instances drop out of the target group by themselves.
    h.cloud().instances.remove(&nodes[1].id);
    let health = elb(&h, "DescribeTargetHealth", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(health.all("Id"), [nodes[0].id.clone()]);
    let dereg = elb(
        &h,
        "DeregisterTargets",
        &[
            ("TargetGroupArn", &tg),
            ("Targets.member.1.Id", &nodes[0].id),
        ],
    )
    .await;
    assert_eq!(dereg.status, 200, "{}", dereg.body);

    let in_use = elb(&h, "DeleteTargetGroup", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(
        (in_use.status, in_use.code()),
        (400, "ResourceInUse".into())
    );
    let del = elb(&h, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb)]).await;
    assert_eq!(del.status, 200);
    assert_eq!(
        elb(&h, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb)])
            .await
            .status,
        200
    );
    let gone = elb(
        &h,
        "DescribeListeners",
        &[("ListenerArns.member.1", &listener)],
    )
    .await;
    assert_eq!(gone.code(), "ListenerNotFound");
    assert_eq!(
        elb(&h, "DeleteTargetGroup", &[("TargetGroupArn", &tg)])
            .await
            .status,
        200
    );
    let missing = elb(
        &h,
        "DescribeLoadBalancers",
        &[("Names.member.1", "k8s-nlb")],
    )
    .await;
    assert_eq!(missing.code(), "LoadBalancerNotFound");
    let del_l = elb(&h, "DeleteListener", &[("ListenerArn", &listener)]).await;
    assert_eq!(del_l.code(), "ListenerNotFound");

    let ops: Vec<String> = h
        .faults()
        .calls(None)
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(ops.iter().filter(|o| *o == "CreateLoadBalancer").count(), 3);
    let reg_call = h
        .faults()
        .calls(None)
        .into_iter()
        .find(|c| c.operation == "RegisterTargets")
        .unwrap();
    assert!(
        reg_call.detail.contains(&format!("{}:30080", nodes[1].id)),
        "{}",
        reg_call.detail
    );
    assert_eq!(reg_call.target, tg);
}

#[tokio::test]
async fn describe_load_balancers_pages_with_marker() {
    let h = start().await;
    for n in ["p1", "p2", "p3"] {
        assert_eq!(create_lb(&h, n, &[]).await.status, 200);
    }
    let first = elb(&h, "DescribeLoadBalancers", &[("PageSize", "2")]).await;
    assert_eq!(first.all("LoadBalancerName"), ["p1", "p2"]);
    let marker = first.one("NextMarker");
    let second = elb(
        &h,
        "DescribeLoadBalancers",
        &[("PageSize", "2"), ("Marker", &marker)],
    )
    .await;
    assert_eq!(second.all("LoadBalancerName"), ["p3"]);
    assert!(second.all("NextMarker").is_empty());
    let bad = elb(&h, "DescribeLoadBalancers", &[("PageSize", "401")]).await;
    assert_eq!(bad.code(), "ValidationError");
    let some_missing = elb(
        &h,
        "DescribeLoadBalancers",
        &[("Names.member.1", "p1"), ("Names.member.2", "zz")],
    )
    .await;
    assert_eq!(some_missing.code(), "LoadBalancerNotFound");
}

#[tokio::test]
async fn provisioning_then_active_and_initial_then_healthy() {
    let h = start().await;
    h.faults()
        .set_provisioning(Latency::Fixed { ms: 300 })
        .unwrap();
    let r = create_lb(&h, "slow", &[]).await;
    assert_eq!(r.one("Code"), "provisioning");
    let lb = r.one("LoadBalancerArn");
    let tg = create_tg(&h, "slow-tg", "TCP", "30080")
        .await
        .one("TargetGroupArn");
    create_listener(&h, &lb, &tg, "80", "TCP").await;
    let node = h.cloud().instances.list()[0].id.clone();
    elb(
        &h,
        "RegisterTargets",
        &[("TargetGroupArn", &tg), ("Targets.member.1.Id", &node)],
    )
    .await;
    let health = elb(&h, "DescribeTargetHealth", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(health.one("State"), "initial");
    assert_eq!(health.one("Reason"), "Elb.RegistrationInProgress");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = elb(
        &h,
        "DescribeLoadBalancers",
        &[("LoadBalancerArns.member.1", &lb)],
    )
    .await;
    assert_eq!(r.one("Code"), "active");
    let health = elb(&h, "DescribeTargetHealth", &[("TargetGroupArn", &tg)]).await;
    assert_eq!(health.one("State"), "healthy");
}

#[tokio::test]
async fn throttling_and_injected_faults_answer_like_aws() {
    let h = start().await;
    let mut buckets = buckets::aws_profile_buckets();
    let tiny = BucketSpec {
        capacity: 1.0,
        refill_per_sec: 0.0,
    };
    buckets.insert(buckets::ELB_CREATE_LB.into(), tiny);
    buckets.insert(buckets::EC2_DESCRIBE.into(), tiny);
    h.faults()
        .apply(crate::faults::FaultUpdate {
            buckets: Some(buckets),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(create_lb(&h, "t1", &[]).await.status, 200);
    let throttled = create_lb(&h, "t2", &[]).await;
    assert_eq!(
        (throttled.status, throttled.code()),
        (400, "ThrottlingException".into())
    );
    assert_eq!(throttled.one("Message"), "Rate exceeded");
    // Other categories still have tokens.
    assert_eq!(elb(&h, "DescribeLoadBalancers", &[]).await.status, 200);

    let f = [
        ("Filter.1.Name", "vpc-id"),
        ("Filter.1.Value.1", ec2::VPC_ID),
    ];
    assert_eq!(ec2(&h, "DescribeSubnets", &f).await.status, 200);
    let limited = ec2(&h, "DescribeSubnets", &f).await;
    assert_eq!(
        (limited.status, limited.code()),
        (503, "RequestLimitExceeded".into())
    );
    assert!(limited.body.contains("<Response><Errors><Error>"));
    assert!(limited.body.contains("<RequestID>"));

    h.faults()
        .inject(Injection::fail_next("DescribeTargetGroups", 1, 500))
        .unwrap();
    let failed = elb(&h, "DescribeTargetGroups", &[]).await;
    assert_eq!(
        (failed.status, failed.code()),
        (500, "InternalFailure".into())
    );
    assert!(failed.body.contains("<Type>Receiver</Type>"));
    assert_eq!(elb(&h, "DescribeTargetGroups", &[]).await.status, 200);

    let log = h.faults().calls(None);
    let statuses: Vec<(String, u16)> = log
        .iter()
        .map(|c| (c.operation.clone(), c.status))
        .collect();
    assert!(statuses.contains(&("CreateLoadBalancer".into(), 400)));
    assert!(statuses.contains(&("DescribeSubnets".into(), 503)));
    assert!(statuses.contains(&("DescribeTargetGroups".into(), 500)));
}

#[tokio::test]
async fn admin_state_lists_everything_with_tags() {
    let h = start().await;
    let lb = create_lb(&h, "state", &[]).await.one("LoadBalancerArn");
    let tg = create_tg(&h, "state-tg", "TCP", "30080")
        .await
        .one("TargetGroupArn");
    create_listener(&h, &lb, &tg, "443", "TCP").await;
    let snap = h.cloud().snapshot();
    assert_eq!(
        snap["load_balancers"][0]["tags"]["kubernetes.io/service-name"],
        "default/web"
    );
    assert_eq!(snap["listeners"][0]["port"], 443);
    assert_eq!(
        snap["target_groups"][0]["load_balancer_arns"][0],
        lb.as_str()
    );
    assert_eq!(snap["security_groups"][0]["name"], "frontdesk-nodes");
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    stream
        .write_all(b"GET /_admin/state HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("state-tg"));
}

mod ec2_front;

mod attributes;
