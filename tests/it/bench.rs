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

#[test]
fn unknown_profile_and_scenario_are_named() {
    for (args, needle) in [
        (&["s1", "--profile", "aws"][..], "not available yet"),
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
