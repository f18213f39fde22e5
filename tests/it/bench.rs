//! `frontdesk bench`: the S-scenario command runs end to end and its JSON stays complete, so
//! the benchmarks cannot rot between the (long) measured runs.

use std::process::Command;

use serde_json::Value;

fn bench_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_frontdesk"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("FRONTDESK_LOG", "warn")
        .output()
        .expect("running frontdesk bench");
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn s1_small_run_reports_every_field() {
    let r = bench_json(&["s1", "--services", "20", "--profile", "none"]);
    assert_eq!(r["scenario"], "s1");
    assert_eq!(r["services"], 20);
    let measured = r["measured_s"].as_f64().unwrap();
    assert!(measured > 0.0 && measured < 60.0, "{r}");
    assert!(r["bound_s"].as_f64().is_some(), "{r}");
    assert!(r.get("efficiency").is_some(), "{r}");
    let cloud = &r["cloud_calls"];
    // The mock provider: GET 404, create, add backends per new Service.
    assert_eq!(cloud["writes"], 40, "{r}");
    assert_eq!(cloud["reads"], 20, "{r}");
    assert_eq!(cloud["by_operation"]["CreateLoadBalancer"], 20, "{r}");
    assert_eq!(cloud["throttled"], 0, "{r}");
    let kube = &r["kube_calls"];
    assert!(
        kube["writes"].as_u64().unwrap() >= 40,
        "status patches: {r}"
    );
    assert!(kube["reads"].as_u64().unwrap() >= 20, "live reads: {r}");
    assert!(r["memory_mib"].as_f64().unwrap() > 1.0, "{r}");
    assert!(!r["memory_method"].as_str().unwrap().is_empty());
}

#[test]
fn s1_generic_bound_is_computed_from_the_profile() {
    // 25 Services: 50 writes through a 20-burst, 20/s bucket = (50 - 20) / 20 = 1.5 s.
    let r = bench_json(&["s1", "--services", "25", "--profile", "generic"]);
    let bound = r["bound_s"].as_f64().unwrap();
    assert!((bound - 1.5).abs() < 1e-6, "{r}");
    let eff = r["efficiency"].as_f64().unwrap();
    assert!(eff > 0.0 && eff <= 1.05, "{r}");
    assert_eq!(r["checks"].as_array().unwrap().len(), 2, "{r}");
}

/// S1 on the AWS profile: the AWS provider against the AWS front, bounded by AWS's own
/// CreateLoadBalancer bucket (10 burst, 0.2/s): 12 Services need (12 - 10) / 0.2 = 10 s.
#[test]
fn s1_aws_bound_comes_from_the_create_load_balancer_bucket() {
    let r = bench_json(&["s1", "--services", "12", "--nodes", "2", "--profile", "aws"]);
    assert_eq!(r["profile"], "aws", "{r}");
    let bound = r["bound_s"].as_f64().unwrap();
    assert!((bound - 10.0).abs() < 0.01, "{r}");
    assert!(
        r["bound_how"].as_str().unwrap().contains("elbv2-create-lb"),
        "{r}"
    );
    let measured = r["measured_s"].as_f64().unwrap();
    assert!((9.0..60.0).contains(&measured), "{r}");
}

/// P-gce and P-azure: the mock provider against the generic cloud with GCE's fixed windows
/// resp. Azure's buckets, sliding window and per-LB serialisation. 20 Services fit in every
/// window, so the critical path binds; the table must still name each window it weighed, and
/// the client budget (a copy of the profile) must keep 429s rare.
#[test]
fn s1_gcp_and_azure_bounds_name_their_windows() {
    let out = Command::new(env!("CARGO_BIN_EXE_frontdesk"))
        .args([
            "bench",
            "s1",
            "--services",
            "20",
            "--nodes",
            "3",
            "--profile",
            "gcp",
        ])
        .env("FRONTDESK_LOG", "warn")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "profile gcp",
        "writes window (fixed 1500 per 60 s)",
        "reads + operation polls windows (fixed 1500 + 1500 per 60 s)",
        "binds: the critical path",
    ] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    let r = bench_json(&[
        "s1",
        "--services",
        "20",
        "--nodes",
        "3",
        "--profile",
        "azure",
    ]);
    assert_eq!(r["profile"], "azure", "{r}");
    let how = r["bound_how"].as_str().unwrap();
    assert!(how.contains("writes: (40 - 200) / 10 per s"), "{r}");
    assert!(
        how.contains("writes window (sliding 1000 per 300 s)"),
        "{r}"
    );
    assert!(how.contains("binds: "), "{r}");
    let cloud = &r["cloud_calls"];
    assert_eq!(cloud["by_operation"]["CreateLoadBalancer"], 20, "{r}");
    let throttled = r["extra"]["throttled calls (%)"].as_f64().unwrap();
    assert!(throttled <= 3.0, "{r}");
    assert!(r["measured_s"].as_f64().unwrap() < 30.0, "{r}");
}

#[test]
fn unknown_profile_and_scenario_are_named() {
    for (args, needle) in [
        (
            &["s1", "--profile", "gke"][..],
            "choose generic, aws, gcp, azure",
        ),
        (&["s2", "--profile", "aws"][..], "s1 only"),
        (&["s9"][..], "unknown bench scenario"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_frontdesk"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn s8_runs_the_controller_as_a_child_and_reads_its_memory() {
    let r = bench_json(&[
        "s8",
        "--services",
        "200",
        "--nodes",
        "20",
        "--profile",
        "none",
    ]);
    assert_eq!(r["scenario"], "s8");
    let mib = r["memory_mib"].as_f64().unwrap();
    // A real process: the binary alone is several MiB resident; far below the S8 limit.
    assert!(mib > 2.0 && mib < 150.0, "{r}");
    assert!(
        r["memory_method"]
            .as_str()
            .unwrap()
            .contains("child process"),
        "{r}"
    );
    // Every Service reconciled once in the initial sync.
    let reconciles = r["extra"]["A: reconciles in the initial sync"]
        .as_u64()
        .unwrap();
    assert!(reconciles >= 200, "{r}");
    assert!(r["measured_s"].as_f64().unwrap() < 60.0, "{r}");
    // The forced relists really happened (410, then fresh watches of both kinds).
    let relisted = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "S8 every forced relist relisted Services and Nodes")
        .unwrap_or_else(|| panic!("no relist check: {r}"));
    assert_eq!(relisted["ok"], true, "{r}");
}

/// Node sync (S2) must not leave a load balancer behind for the 10 s recheck because of one
/// stray 429 or 5xx: throttled updates are retried inside the pass, other failures on a
/// pass that comes back after 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sync_retries_failed_backend_updates_soon() {
    use std::time::{Duration, Instant};

    use frontdesk_mock_cloud::faults::Injection;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::Api;

    use crate::support::{World, eventually, example_path, start_controller, test_config};

    const OP_BACKENDS: &str = "UpdateBackends";
    let w = World::start(2).await;
    let ctl = start_controller(&w, test_config()).await;
    w.kubectl_ok(&["apply", "-f", &example_path()]).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    eventually(Duration::from_secs(20), "an address", || async {
        let s = api.get_opt("my-app-service").await.ok()??;
        (!s.status?.load_balancer?.ingress?.is_empty()).then_some(())
    })
    .await;
    let faults = w.cloud.generic.faults().clone();
    let has = |id: &str| {
        w.cloud
            .generic
            .cloud()
            .all()
            .iter()
            .all(|lb| lb.backends.iter().any(|b| b == id))
    };

    for (status, count, what) in [(429, 2, "two 429s"), (500, 1, "one 500")] {
        let seq = faults.next_seq().saturating_sub(1);
        faults
            .inject(Injection::fail_next(OP_BACKENDS, count, status))
            .unwrap();
        let started = Instant::now();
        let added = w.cloud.instances.add("mock");
        eventually(
            Duration::from_secs(15),
            "the new node in the backends",
            || async { has(&added.id).then_some(()) },
        )
        .await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "after {what} the new node took {took:?} (the 10 s recheck, not a retry)"
        );
        let log = faults.calls(Some(seq));
        let refused = log
            .iter()
            .filter(|c| c.operation == OP_BACKENDS && c.status == status)
            .count();
        let applied = log
            .iter()
            .filter(|c| c.operation == OP_BACKENDS && c.status < 300)
            .count();
        assert_eq!((refused, applied), (count as usize, 1), "{what}: {log:?}");
    }
    ctl.stop().await;
    w.shutdown().await;
}

#[test]
fn s6_small_run_allocates_once_and_restart_changes_nothing() {
    let r = bench_json(&["s6", "--services", "200"]);
    assert_eq!(r["scenario"], "s6");
    assert_eq!(r["services"], 200);
    let x = &r["extra"];
    assert_eq!(x["addresses changed by the restart"], 0, "{r}");
    assert_eq!(x["distinct addresses"], 200, "{r}");
    assert_eq!(x["IPAddressClaims"], 200, "{r}");
    // One create per address, no conflicts with a single controller, and no claim list per
    // allocation (a load, then the pool status pass every 2 s).
    assert_eq!(x["  POST ipaddressclaims"], 200, "{r}");
    assert!(x["  LIST ipaddressclaims"].as_u64().unwrap() <= 10, "{r}");
    let checks = r["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{r}");
    assert!(r["memory_mib"].as_f64().unwrap() > 1.0, "{r}");
}
