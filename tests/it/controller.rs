//! The controller end to end: the sandbox cluster, the mock cloud over HTTP, the mock provider,
//! and `kubectl` as a user would drive it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use frontdesk_mock_cloud::faults::{CallRecord, Injection};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

mod node_sync;

use crate::support::{self, World, eventually, example_path, start_controller, test_config};

const OP_CREATE: &str = "CreateLoadBalancer";
const OP_BACKENDS: &str = "UpdateBackends";
const WAIT: Duration = Duration::from_secs(20);

async fn external_ip(api: &Api<Service>, name: &str) -> Option<String> {
    let svc = api.get_opt(name).await.ok()??;
    let ingress = svc.status?.load_balancer?.ingress?;
    let first = ingress.first()?;
    first.ip.clone().or(first.hostname.clone())
}

async fn wait_address(api: &Api<Service>, name: &str) -> String {
    eventually(WAIT, &format!("an address on {name}"), || {
        external_ip(api, name)
    })
    .await
}

fn condition(svc: &Service) -> Option<(String, String, String)> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "LoadBalancerReady")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Calls logged from `seq` (a `next_seq()` taken earlier) on.
fn calls_since(w: &World, seq: u64) -> Vec<CallRecord> {
    w.cloud.generic.faults().calls(Some(seq.saturating_sub(1)))
}

fn lbs(w: &World) -> Vec<frontdesk_mock_cloud::generic::model::LoadBalancer> {
    w.cloud.generic.cloud().all()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_service_gets_an_address() {
    let w = World::start(3).await;
    let ctl = start_controller(&w, test_config()).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let ip = wait_address(&api, "my-app-service").await;
    assert!(ip.starts_with("203.0.113."), "{ip}");

    let out = w.kubectl_ok(&["get", "svc", "my-app-service"]).await;
    assert!(out.contains(&ip), "EXTERNAL-IP column: {out}");
    let svc = api.get("my-app-service").await.unwrap();
    let (status, reason, _) = condition(&svc).expect("LoadBalancerReady condition");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Provisioned"));
    assert!(
        svc.metadata
            .finalizers
            .unwrap()
            .contains(&"service.kubernetes.io/load-balancer-cleanup".to_string())
    );

    let out = eventually(WAIT, "events in describe", || async {
        let out = w.kubectl_ok(&["describe", "svc", "my-app-service"]).await;
        out.contains("EnsuredLoadBalancer").then_some(out)
    })
    .await;
    assert!(out.contains("EnsuringLoadBalancer"), "{out}");
    assert!(
        out.contains("LoadBalancer Ingress:") && out.contains(&ip),
        "{out}"
    );

    // The cloud has exactly one LB, pointed at all three nodes on the service's nodePort.
    let all = lbs(&w);
    assert_eq!(all.len(), 1);
    let np = svc.spec.unwrap().ports.unwrap()[0].node_port.unwrap() as u16;
    assert_eq!(all[0].listeners.len(), 1);
    assert_eq!(all[0].listeners[0].backend_port, np);
    assert_eq!(all[0].backends.len(), 3);
    assert_eq!(all[0].health_check.protocol, "TCP");

    // /metrics is valid Prometheus text and counts what happened.
    let body = reqwest::get(&ctl.metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("frontdesk_cloud_calls_total"), "{body}");
    assert!(
        body.contains("frontdesk_service_create_to_address_seconds"),
        "{body}"
    );
    promtool_check(&body).await;
    for probe in ["healthz", "readyz"] {
        let url = ctl.metrics_url.replace("/metrics", &format!("/{probe}"));
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), 200, "{probe}");
    }
    ctl.stop().await;
    w.shutdown().await;
}

/// `promtool check metrics` (Debian package `prometheus`) must accept the exposition.
async fn promtool_check(body: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = match tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not found ({e}); ./scripts/test installs it (Debian package prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_nodes_and_health_checks_follow_the_service() {
    let w = World::start(3).await;
    let ctl = start_controller(&w, test_config()).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    wait_address(&api, "my-app-service").await;

    // Port change: the LB gets the new listener.
    w.kubectl_ok(&["patch", "svc", "my-app-service", "--type", "json", "-p",
        r#"[{"op":"add","path":"/spec/ports/-","value":{"name":"https","port":443,"targetPort":443}}]"#]).await;
    eventually(WAIT, "two listeners", || async {
        (lbs(&w)[0].listeners.len() == 2).then_some(())
    })
    .await;

    // Node added: only a backend delta (one call naming the new instance) reaches the cloud.
    let seq = w.cloud.generic.faults().next_seq();
    let added = w.cloud.instances.add("mock");
    eventually(WAIT, "new node in backends", || async {
        lbs(&w)[0].backends.contains(&added.id).then_some(())
    })
    .await;
    let writes: Vec<_> = calls_since(&w, seq)
        .into_iter()
        .filter(|c| c.mutating)
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "one write per LB for a node add: {writes:?}"
    );
    assert_eq!(writes[0].operation, OP_BACKENDS);
    assert!(writes[0].detail.contains(&added.id), "{writes:?}");

    // Node labelled excluded: a removal delta.
    let nodes: Api<Node> = Api::all(w.client.clone());
    let seq = w.cloud.generic.faults().next_seq();
    nodes
        .patch(&added.name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}}})))
        .await
        .unwrap();
    eventually(WAIT, "excluded node out of backends", || async {
        (!lbs(&w)[0].backends.contains(&added.id)).then_some(())
    })
    .await;
    let writes: Vec<_> = calls_since(&w, seq)
        .into_iter()
        .filter(|c| c.mutating)
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].operation, OP_BACKENDS);

    // Readiness flips do not touch the LB.
    let seq = w.cloud.generic.faults().next_seq();
    let first = w.cloud.instances.list()[0].name.clone();
    nodes
        .patch_status(&first, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        calls_since(&w, seq).iter().all(|c| !c.mutating),
        "readiness flip caused cloud writes"
    );

    // Node deleted (instance terminated): a removal delta.
    let seq = w.cloud.generic.faults().next_seq();
    let victim = w.cloud.instances.list()[1].clone();
    w.cloud.instances.remove(&victim.id);
    eventually(WAIT, "deleted node out of backends", || async {
        (!lbs(&w)[0].backends.contains(&victim.id)).then_some(())
    })
    .await;
    let writes: Vec<_> = calls_since(&w, seq)
        .into_iter()
        .filter(|c| c.mutating)
        .collect();
    assert!(
        writes.iter().all(|c| c.operation == OP_BACKENDS),
        "{writes:?}"
    );

    // externalTrafficPolicy: Local -> HTTP health check on the healthCheckNodePort.
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ])
    .await;
    let hc = api
        .get("my-app-service")
        .await
        .unwrap()
        .spec
        .unwrap()
        .health_check_node_port
        .unwrap() as u16;
    eventually(WAIT, "HTTP health check", || async {
        let lb = &lbs(&w)[0];
        (lb.health_check.protocol == "HTTP"
            && lb.health_check.port == hc
            && lb.health_check.path.as_deref() == Some("/healthz"))
        .then_some(())
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_flip_and_deletion_leave_nothing_behind() {
    let w = World::start(2).await;
    let ctl = start_controller(&w, test_config()).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    wait_address(&api, "my-app-service").await;

    // LoadBalancer -> ClusterIP: LB deleted, finalizer removed, status cleared.
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "-p",
        r#"{"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"nodePort":null}]}}"#,
    ])
    .await;
    eventually(WAIT, "LB deleted after type flip", || async {
        lbs(&w).is_empty().then_some(())
    })
    .await;
    let svc = eventually(WAIT, "finalizer removed", || async {
        let s = api.get("my-app-service").await.unwrap();
        s.metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .is_empty()
            .then_some(s)
    })
    .await;
    assert!(external_ip(&api, "my-app-service").await.is_none());
    assert!(
        condition(&svc).is_none(),
        "our condition is removed: {:?}",
        svc.status
    );

    // Back to LoadBalancer, edit annotations, then delete: nothing left in the cloud.
    w.kubectl_ok(&[
        "patch",
        "svc",
        "my-app-service",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ])
    .await;
    wait_address(&api, "my-app-service").await;
    w.kubectl_ok(&[
        "annotate",
        "svc",
        "my-app-service",
        "frontdesk.dev/internal=true",
    ])
    .await;
    eventually(WAIT, "internal address", || async {
        let ip = external_ip(&api, "my-app-service").await?;
        ip.starts_with("10.").then_some(())
    })
    .await;
    w.kubectl_ok(&[
        "annotate",
        "svc",
        "my-app-service",
        "frontdesk.dev/internal-",
    ])
    .await;
    w.kubectl_ok(&["delete", "svc", "my-app-service", "--timeout=30s"])
        .await;
    assert!(api.get_opt("my-app-service").await.unwrap().is_none());
    assert!(lbs(&w).is_empty(), "cloud still has {:?}", lbs(&w));
    let out = w
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=DeletedLoadBalancer",
        ])
        .await;
    assert!(out.contains("DeletedLoadBalancer"), "{out}");
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_provisioning_then_restarted_makes_one_lb() {
    let w = World::start(2).await;
    // Creates take 1.5 s in the cloud: the controller dies while one is in flight.
    w.cloud
        .generic
        .faults()
        .inject(Injection {
            operation: OP_CREATE.to_string(),
            status: None,
            delay_ms: 1500,
            count: Some(1),
            probability: None,
        })
        .unwrap();
    let ctl = start_controller(&w, test_config()).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    eventually(WAIT, "create in flight", || async {
        let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
        let s = api.get("my-app-service").await.ok()?;
        s.metadata
            .annotations?
            .contains_key("frontdesk.dev/provisioning-record")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.kill();
    let ctl = start_controller(&w, test_config()).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    wait_address(&api, "my-app-service").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lbs(&w).len(), 1, "exactly one LB: {:?}", lbs(&w));
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_others_converge() {
    let w = World::start(2).await;
    let ctl = start_controller(&w, test_config()).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let mk = |name: &str, annotations: serde_json::Value, class: Option<&str>| -> Service {
        let mut spec =
            json!({"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]});
        if let Some(c) = class {
            spec["loadBalancerClass"] = json!(c);
        }
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": annotations}, "spec": spec}))
        .unwrap()
    };
    api.create(
        &PostParams::default(),
        &mk("bad-bool", json!({"frontdesk.dev/internal": "maybe"}), None),
    )
    .await
    .unwrap();
    // Impossible for a NodePort-based provider: no nodePorts allocated.
    let mut no_ports = mk("no-node-ports", json!({}), None);
    no_ports
        .spec
        .as_mut()
        .unwrap()
        .allocate_load_balancer_node_ports = Some(false);
    api.create(&PostParams::default(), &no_ports).await.unwrap();
    api.create(
        &PostParams::default(),
        &mk("foreign", json!({}), Some("example.com/other")),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &mk("good", json!({}), None))
        .await
        .unwrap();
    wait_address(&api, "good").await;

    for (name, field) in [
        ("bad-bool", "frontdesk.dev/internal"),
        ("no-node-ports", "allocateLoadBalancerNodePorts"),
    ] {
        let svc = eventually(WAIT, &format!("failed condition on {name}"), || async {
            let s = api.get(name).await.ok()?;
            condition(&s)
                .filter(|c| c.0 == "False" && c.1 == "InvalidSpec")
                .map(|_| s)
        })
        .await;
        let (_, _, message) = condition(&svc).unwrap();
        assert!(message.contains(field), "{name}: {message}");
        let out = eventually(WAIT, "warning event", || async {
            let out = w
                .kubectl_ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    &format!("involvedObject.name={name}"),
                ])
                .await;
            out.contains("SyncLoadBalancerFailed").then_some(out)
        })
        .await;
        assert!(out.contains("Warning"), "{out}");
    }
    // A foreign class is never touched: no finalizer, no status, no event.
    let foreign = api.get("foreign").await.unwrap();
    assert!(foreign.metadata.finalizers.is_none());
    assert!(condition(&foreign).is_none());
    assert_eq!(lbs(&w).len(), 1);

    // A provider that keeps failing for one Service: Warning + condition + backoff, while a
    // Service created after it still converges.
    w.cloud
        .generic
        .faults()
        .inject(Injection::fail_next(OP_CREATE, 3, 500))
        .unwrap();
    api.create(&PostParams::default(), &mk("flaky", json!({}), None))
        .await
        .unwrap();
    eventually(WAIT, "failure condition on flaky", || async {
        let s = api.get("flaky").await.ok()?;
        condition(&s)
            .filter(|c| c.0 == "False" && c.1 == "Transient")
            .map(|_| ())
    })
    .await;
    api.create(&PostParams::default(), &mk("after", json!({}), None))
        .await
        .unwrap();
    wait_address(&api, "after").await;
    wait_address(&api, "flaky").await;
    ctl.stop().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_acts_and_a_kill_hands_over() {
    let w = World::start(1).await;
    let mut config = test_config();
    config.leader_election.enabled = true;
    config.leader_election.lease_duration_seconds = 2.0;
    config.leader_election.renew_interval_seconds = 0.4;
    let a = start_controller(&w, config.clone()).await;
    eventually(WAIT, "a leads", || async {
        (a.metrics.leader.get() == 1).then_some(())
    })
    .await;
    let b = start_controller(&w, config.clone()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(b.metrics.leader.get(), 0, "b must stand by");

    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    wait_address(&api, "my-app-service").await;
    let b_calls = b.metrics.encode();
    assert!(
        !b_calls.contains("operation=\"CreateLoadBalancer\""),
        "the standby called the cloud:\n{b_calls}"
    );

    // Kill the leader without releasing: b takes over once the lease expires.
    a.kill();
    eventually(Duration::from_secs(10), "b leads", || async {
        (b.metrics.leader.get() == 1).then_some(())
    })
    .await;
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "second"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
    .unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap();
    wait_address(&api, "second").await;
    b.stop().await;
    api.delete("second", &DeleteParams::default())
        .await
        .unwrap();
    w.shutdown().await;
}

#[allow(dead_code)]
fn _uses(_: support::RunningController) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_and_orphans_are_swept() {
    let w = World::start(2).await;
    let mut config = test_config();
    config.drift_interval_seconds = 1.0;
    let ctl = start_controller(&w, config).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    wait_address(&api, "my-app-service").await;

    // Someone deletes the listener in the cloud console: the drift check puts it back.
    let name = lbs(&w)[0].name.clone();
    assert!(w.cloud.generic.cloud().remove_listener(&name, 80));
    eventually(WAIT, "listener restored by the drift check", || async {
        (lbs(&w)[0].listeners.len() == 1).then_some(())
    })
    .await;
    ctl.stop().await;

    // The Service is force-deleted while no controller runs (finalizer stripped by hand):
    // its load balancer is an orphan that the sweep removes.
    let mut svc = api.get("my-app-service").await.unwrap();
    svc.metadata.finalizers = None;
    api.replace("my-app-service", &PostParams::default(), &svc)
        .await
        .unwrap();
    api.delete("my-app-service", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(lbs(&w).len(), 1);
    let mut config = test_config();
    config.sweep_interval_seconds = 0.5;
    config.sweep_grace_seconds = 0.0;
    let ctl = start_controller(&w, config).await;
    eventually(WAIT, "orphan swept", || async {
        lbs(&w).is_empty().then_some(())
    })
    .await;
    ctl.stop().await;
    w.shutdown().await;
}
