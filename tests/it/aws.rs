//! The controller end to end with the AWS provider: the sandbox cluster, the mock cloud's AWS
//! front (ELBv2 + EC2 over the Query protocol), the provider with the real SDK clients, and
//! `kubectl` as a user drives it. The last test runs `frontdesk sandbox --provider aws` itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use frontdesk_core::metrics::Metrics;
use frontdesk_core::provider::ProviderContext;
use frontdesk_core::ratelimit::ApiBudget;
use frontdesk_mock_cloud::MockCloudConfig;
use frontdesk_mock_cloud::faults::Injection;
use frontdesk_provider_aws::{AwsConfig, AwsProvider};
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::Value;

use crate::support::{
    RunningController, World, eventually, example_path, kubectl, start_controller_with, test_config,
};

const WAIT: Duration = Duration::from_secs(30);
const SVC: &str = "my-app-service";

async fn aws_world(nodes: usize) -> World {
    World::start_with(MockCloudConfig {
        nodes,
        provider_scheme: "aws".into(),
        ..MockCloudConfig::default()
    })
    .await
}

async fn start(w: &World) -> RunningController {
    start_polling(w, Duration::from_millis(200)).await
}

async fn start_polling(w: &World, provisioning_poll: Duration) -> RunningController {
    let metrics = Arc::new(Metrics::new());
    let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
    let provider = AwsProvider::new(
        AwsConfig {
            region: Some("us-east-1".into()),
            endpoint_url: Some(w.cloud.aws_url()),
            static_credentials: Some(("AKIDMOCK".into(), "SECRETMOCK".into())),
            call_timeout: Duration::from_secs(5),
            vpc_id: None,
            provisioning_poll,
        },
        ctx,
    )
    .unwrap();
    start_controller_with(w.client.clone(), Arc::new(provider), test_config(), metrics).await
}

fn snapshot(w: &World) -> Value {
    w.cloud.aws.cloud().snapshot()
}

fn len(v: &Value, k: &str) -> usize {
    v[k].as_array().map(Vec::len).unwrap_or(0)
}

/// Security groups frontdesk created (the front seeds a node group that is not ours).
fn owned_groups(s: &Value) -> Vec<Value> {
    s["security_groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|g| g["tags"].get("frontdesk.dev/cluster").is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Ingress rules of the nodes' security group (seeded by the front, tagged for the cluster).
fn node_group_rules(s: &Value) -> Vec<String> {
    s["security_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["name"] == "frontdesk-nodes")
        .flat_map(|g| g["ingress"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(String::from))
        .collect()
}

/// Nothing of ours left in the front: no NLB, listener, target group or security group.
fn empty(s: &Value) -> bool {
    len(s, "load_balancers") == 0
        && len(s, "listeners") == 0
        && len(s, "target_groups") == 0
        && owned_groups(s).is_empty()
        && node_group_rules(s).is_empty()
}

async fn hostname(api: &Api<Service>, name: &str) -> Option<String> {
    let svc = api.get_opt(name).await.ok()??;
    svc.status?
        .load_balancer?
        .ingress?
        .first()?
        .hostname
        .clone()
}

/// Mutating AWS operations logged after `since`, in order.
fn writes_since(w: &World, since: u64) -> Vec<String> {
    w.cloud
        .aws
        .faults()
        .calls(Some(since))
        .into_iter()
        .filter(|c| c.mutating)
        .map(|c| c.operation)
        .collect()
}

fn last_seq(w: &World) -> u64 {
    w.cloud.aws.faults().next_seq().saturating_sub(1)
}

fn target_count(w: &World) -> Option<usize> {
    let s = snapshot(w);
    s["target_groups"][0]["targets"].as_array().map(Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_hostname_tags_backend_deltas_local_health_check_and_source_ranges() {
    let w = aws_world(2).await;
    let ctl = start(&w).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let host = eventually(WAIT, "a hostname", || hostname(&api, SVC)).await;
    let out = w.kubectl_ok(&["get", "svc", SVC]).await;
    assert!(out.contains(&host), "EXTERNAL-IP shows the DNS name: {out}");

    // One NLB, internet-facing, tagged with cluster, Service name and UID; targets on the
    // NodePort of every node.
    let s = snapshot(&w);
    assert_eq!(len(&s, "load_balancers"), 1, "{s:#}");
    let lb = &s["load_balancers"][0];
    assert_eq!(lb["dns_name"], host.as_str());
    assert_eq!(lb["scheme"], "internet-facing");
    let uid = api.get(SVC).await.unwrap().metadata.uid.unwrap();
    let tags = lb["tags"].to_string();
    for want in [
        "frontdesk.dev/cluster",
        "default/my-app-service",
        uid.as_str(),
    ] {
        assert!(tags.contains(want), "tag {want} missing: {tags}");
    }
    assert_eq!(target_count(&w), Some(2), "{s:#}");

    // The nodes' group lets the NLB's group in on the NodePort (traffic and health check).
    let node_port = api.get(SVC).await.unwrap().spec.unwrap().ports.unwrap()[0]
        .node_port
        .unwrap();
    let lb_sg = owned_groups(&s)[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        node_group_rules(&s),
        [format!(
            "peer: {lb_sg}, TCP, from port: {node_port}, to port: {node_port}, ALLOW"
        )],
        "{s:#}"
    );

    // A node joins: exactly one RegisterTargets, no full re-ensure.
    let since = last_seq(&w);
    let extra = w.cloud.instances.add("aws");
    eventually(WAIT, "3 targets", || async {
        (target_count(&w) == Some(3)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        writes_since(&w, since),
        ["RegisterTargets"],
        "a node add costs one delta write"
    );

    // It leaves: exactly one DeregisterTargets.
    let since = last_seq(&w);
    w.cloud.instances.remove(&extra.id);
    eventually(WAIT, "2 targets", || async {
        (target_count(&w) == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        writes_since(&w, since),
        ["DeregisterTargets"],
        "a node removal costs one delta write"
    );

    // Local traffic policy: HTTP /healthz on the healthCheckNodePort; source ranges land in the
    // security group the provider owns.
    w.kubectl_ok(&[
        "patch",
        "svc",
        SVC,
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local","loadBalancerSourceRanges":["10.9.0.0/16"]}}"#,
    ])
    .await;
    let hcnp = api
        .get(SVC)
        .await
        .unwrap()
        .spec
        .unwrap()
        .health_check_node_port
        .expect("healthCheckNodePort allocated")
        .to_string();
    eventually(
        WAIT,
        "HTTP health check on the healthCheckNodePort",
        || async {
            let s = snapshot(&w);
            let tg = &s["target_groups"][0];
            (tg["health_check_protocol"] == "HTTP"
                && tg["health_check_port"] == hcnp.as_str()
                && tg["health_check_path"] == "/healthz")
                .then_some(())
        },
    )
    .await;
    eventually(
        WAIT,
        "the source range in the owned security group",
        || async {
            let s = snapshot(&w);
            let owned = owned_groups(&s);
            let lb_sgs = s["load_balancers"][0]["security_groups"].to_string();
            let id = owned.first()?["id"].as_str()?.to_string();
            (owned[0]["ingress"].to_string().contains("10.9.0.0/16") && lb_sgs.contains(&id))
                .then_some(())
        },
    )
    .await;
    eventually(
        WAIT,
        "the node group opened to the health check port",
        || async {
            let rules = node_group_rules(&snapshot(&w));
            rules
                .iter()
                .any(|r| r.contains(&format!("from port: {hcnp},")))
                .then_some(())
        },
    )
    .await;

    w.kubectl_ok(&["delete", "svc", SVC, "--timeout=30s"]).await;
    eventually(WAIT, "nothing left after delete", || async {
        empty(&snapshot(&w)).then_some(())
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_type_flip_and_annotation_edits_leave_nothing_behind() {
    let w = aws_world(2).await;
    let ctl = start(&w).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    eventually(WAIT, "a hostname", || hostname(&api, SVC)).await;

    // Internal via the upstream annotation: the NLB is replaced (the scheme is immutable), and
    // exactly one remains.
    w.kubectl_ok(&[
        "annotate",
        "svc",
        SVC,
        "service.beta.kubernetes.io/aws-load-balancer-scheme=internal",
    ])
    .await;
    eventually(WAIT, "one internal NLB", || async {
        let s = snapshot(&w);
        let lbs = s["load_balancers"].as_array()?.clone();
        (lbs.len() == 1 && lbs[0]["scheme"] == "internal").then_some(())
    })
    .await;
    eventually(WAIT, "the external NLB's target groups gone", || async {
        let s = snapshot(&w);
        (len(&s, "target_groups") == 1 && len(&s, "listeners") == 1).then_some(())
    })
    .await;

    // LoadBalancer -> ClusterIP: everything goes, the status is cleared.
    w.kubectl_ok(&[
        "patch",
        "svc",
        SVC,
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])
    .await;
    eventually(WAIT, "nothing left after the type flip", || async {
        empty(&snapshot(&w)).then_some(())
    })
    .await;
    eventually(WAIT, "the status cleared", || async {
        hostname(&api, SVC).await.is_none().then_some(())
    })
    .await;

    // Back to LoadBalancer, then an unsupported annotation value: a Warning naming the key and a
    // failed condition, and the NLB untouched.
    w.kubectl_ok(&[
        "patch",
        "svc",
        SVC,
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ])
    .await;
    eventually(WAIT, "a hostname again", || hostname(&api, SVC)).await;
    let since = last_seq(&w);
    w.kubectl_ok(&[
        "annotate",
        "svc",
        SVC,
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol=udp",
    ])
    .await;
    eventually(WAIT, "a Warning naming the annotation", || async {
        let (_, out, _) = w
            .kubectl(&["get", "events", "--field-selector", "type=Warning"])
            .await;
        out.contains("healthcheck-protocol").then_some(())
    })
    .await;
    eventually(WAIT, "a failed LoadBalancerReady condition", || async {
        let svc = api.get(SVC).await.ok()?;
        let conds = svc.status?.conditions?;
        conds
            .iter()
            .any(|c| c.type_ == "LoadBalancerReady" && c.status == "False")
            .then_some(())
    })
    .await;
    assert!(
        writes_since(&w, since).is_empty(),
        "an invalid annotation changes nothing in the cloud"
    );
    w.kubectl_ok(&[
        "annotate",
        "svc",
        SVC,
        "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol-",
    ])
    .await;
    w.kubectl_ok(&["delete", "svc", SVC, "--timeout=30s"]).await;
    eventually(WAIT, "nothing left after delete", || async {
        empty(&snapshot(&w)).then_some(())
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_throttled_and_failing_calls_converge_without_duplicates() {
    let w = aws_world(2).await;
    let faults = w.cloud.aws.faults();
    // AWS's throttling answer (400 Throttling) and a 5xx on the first create calls.
    for (op, status) in [
        ("CreateLoadBalancer", 503),
        ("CreateTargetGroup", 400),
        ("CreateListener", 500),
        ("RegisterTargets", 503),
    ] {
        let mut inj = Injection::fail_next(op, 2, status);
        inj.probability = Some(1.0);
        faults.inject(inj).unwrap();
    }
    let ctl = start(&w).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    eventually(
        Duration::from_secs(60),
        "a hostname despite the failures",
        || hostname(&api, SVC),
    )
    .await;
    let failed = faults
        .calls(None)
        .iter()
        .filter(|c| c.status >= 400)
        .count();
    assert!(failed >= 8, "the injected failures happened ({failed})");
    let s = snapshot(&w);
    assert_eq!(len(&s, "load_balancers"), 1, "{s:#}");
    assert_eq!(len(&s, "target_groups"), 1, "{s:#}");
    assert_eq!(len(&s, "listeners"), 1, "{s:#}");
    assert_eq!(target_count(&w), Some(2), "{s:#}");
    ctl.stop().await;
    w.shutdown().await;
}

/// The command a user runs: `frontdesk sandbox --provider aws`, then `kubectl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_provider_aws_process_gives_the_example_a_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = crate::cli::frontdesk(&[
        "sandbox",
        "--provider",
        "aws",
        "--nodes",
        "2",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    crate::cli::read_until(&mut child, "Stop with Ctrl-C").await;
    let (ok, out, err) = kubectl(&kc, dir.path(), &["apply", "-f", &example_path()], None).await;
    assert!(ok, "{out}{err}");
    let host = eventually(WAIT, "EXTERNAL-IP from the AWS front", || async {
        let (_, out, _) = kubectl(
            &kc,
            dir.path(),
            &[
                "get",
                "svc",
                SVC,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].hostname}",
            ],
            None,
        )
        .await;
        (!out.trim().is_empty()).then(|| out.trim().to_string())
    })
    .await;
    assert!(host.contains(".elb."), "an NLB DNS name: {host}");
    let (_, table, _) = kubectl(&kc, dir.path(), &["get", "svc", SVC], None).await;
    assert!(table.contains(&host), "{table}");
    child.kill().await.unwrap();
}

/// An NLB that takes seconds to become active: the hostname is published at once (as upstream
/// does), the controller asks again once per provisioning poll (not on every wake-up from its
/// own status patch), and the condition turns Ready when the NLB is active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_provisioning_is_polled_not_hammered() {
    use frontdesk_mock_cloud::faults::Latency;
    let w = aws_world(2).await;
    w.cloud
        .aws
        .faults()
        .set_provisioning(Latency::Fixed { ms: 4_000 })
        .unwrap();
    let ctl = start_polling(&w, Duration::from_secs(1)).await;
    let since = last_seq(&w);
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    eventually(
        Duration::from_secs(3),
        "the hostname while provisioning",
        || hostname(&api, SVC),
    )
    .await;
    eventually(WAIT, "Ready once the NLB is active", || async {
        let conds = api.get(SVC).await.ok()?.status?.conditions?;
        conds
            .iter()
            .any(|c| c.type_ == "LoadBalancerReady" && c.status == "True")
            .then_some(())
    })
    .await;
    let polls = w
        .cloud
        .aws
        .faults()
        .calls(Some(since))
        .iter()
        .filter(|c| c.operation == "DescribeLoadBalancers")
        .count();
    // One ensure to create, about one per second while provisioning (4 s), one that sees it
    // active; a hot loop would make hundreds.
    assert!(
        (2..=10).contains(&polls),
        "{polls} ensures while provisioning"
    );
    // A poll of what is already converged only looks at the NLB's state: the listeners are
    // read at most by the ensure that sees it active.
    let listener_reads = w
        .cloud
        .aws
        .faults()
        .calls(Some(since))
        .iter()
        .filter(|c| c.operation == "DescribeListeners")
        .count();
    assert!(
        listener_reads <= 1,
        "{listener_reads} DescribeListeners while provisioning"
    );
    assert!(hostname(&api, SVC).await.is_some());
    ctl.stop().await;
    w.shutdown().await;
}
