//! The AWS provider against moto (an independent implementation of ELBv2 + EC2), over the
//! real SDK clients, through a logging proxy: the conformance kit and a full lifecycle.
//!
//! moto's gaps this test tolerates (each checked where it matters, against the mock cloud's
//! AWS front instead):
//! - CreateLoadBalancer with an existing name makes a second LB: idempotency rests on our
//!   describe-by-name first, which is what is tested here.
//! - NLB ARNs look like `loadbalancer/app/...`: the provider never derives anything from ARNs.
//! - RegisterTargets accepts unknown instance ids; targets are always healthy.
//! - Duplicate listener ports are accepted (no `DuplicateListener`).
//! - `provisioning -> active` on the first describe, so the second ensure is Ready.
//! - Deleting a target group still used by a listener and deleting a security group still
//!   attached to an NLB are not refused the way AWS refuses them (no `ResourceInUse` /
//!   `DependencyViolation` timing), so deletion order is checked only by the final state.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use frontdesk_core::conformance::{self, CloudInspector};
use frontdesk_core::naming;
use frontdesk_core::provider::{
    EnsureOutcome, HealthCheck, LoadBalancerProvider, LoadBalancerSpec, PortSpec, Protocol,
    ProviderError,
};
use frontdesk_provider_aws::options;
use support::World;

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test took longer than 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_moto() {
    within(async {
        let world = World::start(3).await;
        let provider = support::provider(&world.proxy.url).await;
        conformance::run_all(&provider, &world, world.nodes.clone()).await;
    })
    .await;
}

fn port(name: &str, protocol: Protocol, port: u16, node_port: u16) -> PortSpec {
    PortSpec {
        name: name.into(),
        protocol,
        port,
        node_port: Some(node_port),
    }
}

async fn ready(provider: &dyn LoadBalancerProvider, spec: &LoadBalancerSpec) -> String {
    for _ in 0..10 {
        match provider.ensure(spec).await.expect("ensure") {
            EnsureOutcome::Ready(s) => {
                return s.ingress[0].hostname.clone().expect("hostname in status");
            }
            EnsureOutcome::Provisioning { .. } => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
        }
    }
    panic!("never ready");
}

async fn writes(world: &World) -> Vec<String> {
    world
        .calls()
        .await
        .into_iter()
        .filter(|c| c.mutating)
        .map(|c| c.operation)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_against_moto() {
    within(async {
        let world = World::start(3).await;
        let provider = support::provider(&world.proxy.url).await;
        let uid = "5e1f0000-aaaa-4bbb-8ccc-000000000001";
        let mut spec = conformance::test_spec("life", "dns", uid, &world.nodes[..2]);
        spec.ports = vec![
            port("http", Protocol::Tcp, 80, 30080),
            port("dns-udp", Protocol::Udp, 53, 30053),
            port("dns-tcp", Protocol::Tcp, 53, 30053),
        ];
        spec.source_ranges = vec!["10.1.0.0/16".parse().unwrap()];
        spec.annotations =
            BTreeMap::from([(options::EXTRA_TAGS.to_string(), "team=net".to_string())]);
        let record = provider.record(&spec).unwrap();
        assert_eq!(record.resources.len(), 4, "LB + 2 TGs + SG: {record:?}");

        // Create.
        let host = ready(&provider, &spec).await;
        assert!(!host.is_empty());
        let lbs = world.lb_tags().await;
        assert_eq!(lbs.len(), 1);
        assert_eq!(lbs[0].2["team"], "net");
        assert_eq!(lbs[0].2[naming::TAG_SERVICE], "conformance/dns");
        let tgs = world.target_group_names().await;
        assert_eq!(tgs.len(), 2, "{tgs:?}");
        let g = world
            .elb
            .describe_target_groups()
            .names(&tgs[0])
            .names(&tgs[1])
            .send()
            .await
            .unwrap();
        let mut protos: Vec<&str> = g
            .target_groups()
            .iter()
            .map(|t| t.protocol().unwrap().as_str())
            .collect();
        protos.sort();
        assert_eq!(protos, ["TCP", "TCP_UDP"]);
        let sgs = world.security_groups().await;
        // 80/tcp + 53/tcp + 53/udp from one range.
        assert_eq!(sgs, [(naming_sg(&spec), 3)]);

        // Converged: no writes.
        world.clear_calls().await;
        ready(&provider, &spec).await;
        assert_eq!(writes(&world).await, Vec::<String>::new());

        // Nodes: one add = one RegisterTargets per target group (2), no reads.
        world.clear_calls().await;
        spec.nodes = world.nodes.clone();
        provider.update_backends(&spec).await.unwrap();
        let calls = world.calls().await;
        assert!(
            calls.iter().all(|c| c.operation == "RegisterTargets"),
            "{calls:?}"
        );
        assert_eq!(calls.len(), 2);
        world.clear_calls().await;
        spec.nodes = world.nodes[1..].to_vec();
        provider.update_backends(&spec).await.unwrap();
        assert_eq!(
            writes(&world).await,
            ["DeregisterTargets", "DeregisterTargets"]
        );

        // Update ports: 53 goes, 443 comes; its TG and listener replace the old ones.
        spec.ports = vec![
            port("http", Protocol::Tcp, 80, 30080),
            port("https", Protocol::Tcp, 443, 30443),
        ];
        world.clear_calls().await;
        ready(&provider, &spec).await;
        let w = writes(&world).await;
        for op in [
            "CreateTargetGroup",
            "CreateListener",
            "DeleteListener",
            "DeleteTargetGroup",
        ] {
            assert!(w.contains(&op.to_string()), "{op} missing from {w:?}");
        }
        let want: Vec<String> = {
            let mut v: Vec<String> = provider
                .record(&spec)
                .unwrap()
                .resources
                .into_iter()
                .filter(|r| r.kind == "targetgroup")
                .map(|r| r.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(world.target_group_names().await, want);
        assert_eq!(world.security_groups().await, [(naming_sg(&spec), 2)]);

        // Source ranges and health check annotation edits converge in place.
        spec.source_ranges = vec![];
        spec.annotations
            .insert(options::HC_INTERVAL.into(), "10".into());
        world.clear_calls().await;
        ready(&provider, &spec).await;
        let w = writes(&world).await;
        assert!(
            w.contains(&"AuthorizeSecurityGroupIngress".to_string()),
            "{w:?}"
        );
        assert!(
            w.contains(&"RevokeSecurityGroupIngress".to_string()),
            "{w:?}"
        );
        assert!(w.contains(&"ModifyTargetGroup".to_string()), "{w:?}");

        // Local traffic policy: HTTP health check on the healthCheckNodePort.
        spec.health_check = HealthCheck::Http {
            port: 32100,
            path: "/healthz".into(),
        };
        ready(&provider, &spec).await;
        let g = world
            .elb
            .describe_target_groups()
            .names(&want[0])
            .send()
            .await
            .unwrap();
        let tg = &g.target_groups()[0];
        assert_eq!(tg.health_check_protocol().unwrap().as_str(), "HTTP");
        assert_eq!(tg.health_check_port(), Some("32100"));
        assert_eq!(tg.health_check_path(), Some("/healthz"));

        // Scheme flip replaces the NLB; nothing else is duplicated.
        spec.annotations
            .insert(options::SCHEME.into(), "internal".into());
        ready(&provider, &spec).await;
        let lbs = world.lb_tags().await;
        assert_eq!(lbs.len(), 1, "{lbs:?}");
        let d = world.elb.describe_load_balancers().send().await.unwrap();
        assert_eq!(d.load_balancers()[0].scheme().unwrap().as_str(), "internal");

        // A bad annotation fails in record() already, naming the key.
        let mut bad = spec.clone();
        bad.annotations
            .insert(options::HC_PROTOCOL.into(), "UDP".into());
        match provider.record(&bad) {
            Err(ProviderError::InvalidSpec { field, .. }) => {
                assert_eq!(field, options::HC_PROTOCOL)
            }
            other => panic!("{other:?}"),
        }

        // Delete from the union of every record this Service had: nothing left behind.
        let full = record.union(&provider.record(&spec).unwrap());
        provider.delete(&full).await.unwrap();
        provider.delete(&full).await.unwrap();
        assert!(world.lb_tags().await.is_empty());
        assert!(world.target_group_names().await.is_empty());
        assert!(world.security_groups().await.is_empty());
        assert!(provider.get(&full).await.unwrap().is_none());
    })
    .await;
}

fn naming_sg(spec: &LoadBalancerSpec) -> String {
    frontdesk_provider_aws::sg_name(&spec.name)
}
