use rand::SeedableRng;

use super::*;

fn call(op: &str, mutating: bool) -> CallInfo {
    CallInfo::generic(op, "lb", mutating)
}

#[tokio::test(start_paused = true)]
async fn generic_profile_throttles_mutations_after_burst() {
    let faults = Faults::new(Profile::Generic, 7);
    faults.set_latency(Latency::None).unwrap();
    for _ in 0..20 {
        faults.admit(&call("Create", true)).await.unwrap();
    }
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(err.status(), 429);
    assert_eq!(err.retry_after_secs(), Some(1));
    // Reads have their own bucket.
    faults.admit(&call("Get", false)).await.unwrap();
    // 20 per second refill: one token after 50 ms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    faults.admit(&call("Create", true)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn injections_by_count_and_wildcard() {
    let faults = Faults::default();
    faults.fail_next("Create", 2, 503);
    let table = [
        ("Get", None),
        ("Create", Some(503)),
        ("Create", Some(503)),
        ("Create", None),
    ];
    for (op, want) in table {
        let got = faults
            .admit(&call(op, true))
            .await
            .err()
            .map(|f| f.status());
        assert_eq!(got, want, "{op}");
    }
    faults
        .inject(Injection::fail_randomly("*", 1.0, 500))
        .unwrap();
    assert_eq!(
        faults
            .admit(&call("Any", false))
            .await
            .unwrap_err()
            .status(),
        500
    );
    faults.clear_injections();
    faults.admit(&call("Any", false)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn probability_is_seeded_and_roughly_right() {
    let run = || async {
        let faults = Faults::default();
        faults
            .inject(Injection::fail_randomly("Get", 0.25, 500))
            .unwrap();
        let mut failed = 0;
        for _ in 0..2000 {
            failed += usize::from(faults.admit(&call("Get", false)).await.is_err());
        }
        failed
    };
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b, "same seed, same outcome");
    assert!((400..600).contains(&a), "{a}");
}

#[test]
fn lognormal_median_and_p99() {
    let mut rng = StdRng::seed_from_u64(1);
    let model = Latency::Lognormal {
        median_ms: 50,
        p99_ms: 200,
    };
    let mut samples: Vec<f64> = (0..20_000)
        .map(|_| sample_latency(&model, &mut rng).as_secs_f64() * 1000.0)
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    assert!((45.0..55.0).contains(&median), "median {median}");
    assert!((170.0..230.0).contains(&p99), "p99 {p99}");
}

#[tokio::test(start_paused = true)]
async fn latency_is_waited_on_tokio_time() {
    let faults = Faults::default();
    faults.set_latency(Latency::Fixed { ms: 40 }).unwrap();
    let start = Instant::now();
    faults.admit(&call("Get", false)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(40));
}

#[test]
fn log_sequence_survives_clear() {
    let faults = Faults::default();
    assert_eq!(faults.record(&call("A", false), 200), 1);
    assert_eq!(faults.record(&call("B", true), 201), 2);
    assert_eq!(faults.calls(Some(1)).len(), 1);
    faults.clear_calls();
    assert!(faults.calls(None).is_empty());
    assert_eq!(faults.record(&call("C", true), 200), 3);
}

#[test]
fn apply_validates_before_changing_anything() {
    let faults = Faults::default();
    let bad = FaultUpdate {
        profile: Some(Profile::Generic),
        injections: vec![Injection::fail_randomly("Get", 2.0, 500)],
        ..Default::default()
    };
    assert!(faults.apply(bad).is_err());
    assert_eq!(faults.config(), FaultConfig::default());
    let good = FaultUpdate {
        profile: Some(Profile::Generic),
        ..Default::default()
    };
    assert_eq!(faults.apply(good).unwrap(), Profile::Generic.config());
    assert!("bogus".parse::<Profile>().is_err());
}

fn windowed(name: &str, spec: WindowSpec) -> Faults {
    let faults = Faults::default();
    let config = FaultConfig {
        windows: BTreeMap::from([(name.to_string(), spec)]),
        ..FaultConfig::default()
    };
    faults.set_config(config).unwrap();
    faults
}

fn retry_after(fault: Fault) -> Duration {
    match fault {
        Fault::Throttled { retry_after, .. } => retry_after,
        other => panic!("not throttled: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn fixed_window_resets_at_the_boundary() {
    let faults = windowed(BUCKET_MUTATE, WindowSpec::fixed(3, 60_000));
    // The first window opens with the first call.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for _ in 0..3 {
        faults.admit(&call("Create", true)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(err.status(), 429);
    // Hit at +15 s into the window: the refill is at +60 s, not 60 s after the hit.
    assert_eq!(retry_after(err), Duration::from_secs(45));
    // Reads are not charged to this window.
    faults.admit(&call("Get", false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(44_999)).await;
    assert!(faults.admit(&call("Create", true)).await.is_err());
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..3 {
        faults.admit(&call("Create", true)).await.unwrap();
    }
    assert!(faults.admit(&call("Create", true)).await.is_err());
    // Windows stay on the grid after an idle stretch: 2.5 periods later we are 30 s into
    // the window that opened at 180 s after the first call.
    tokio::time::sleep(Duration::from_secs(150)).await;
    for _ in 0..3 {
        faults.admit(&call("Create", true)).await.unwrap();
    }
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn sliding_window_refuses_the_1001st_until_the_oldest_ages_out() {
    let faults = windowed(BUCKET_MUTATE, WindowSpec::sliding(1000, 300_000));
    // 1000 writes spread over the first 100 s (one every 100 ms).
    for _ in 0..1000 {
        faults.admit(&call("Create", true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At 100 s: the oldest was admitted at 0 s, so a slot frees at 300 s.
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(200));
    // A fixed window would have reset at 300 s too, but a sliding one refuses at 299.95 s
    // and then admits exactly one call per call that ages out.
    tokio::time::sleep(Duration::from_millis(199_950)).await;
    assert!(faults.admit(&call("Create", true)).await.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    faults.admit(&call("Create", true)).await.unwrap();
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_refused_call_takes_nothing_from_buckets_or_windows() {
    let faults = Faults::default();
    let config = FaultConfig {
        buckets: BTreeMap::from([(
            BUCKET_MUTATE.to_string(),
            BucketSpec {
                capacity: 2.0,
                refill_per_sec: 1.0,
            },
        )]),
        windows: BTreeMap::from([(BUCKET_MUTATE.to_string(), WindowSpec::sliding(3, 10_000))]),
        ..FaultConfig::default()
    };
    faults.set_config(config).unwrap();
    faults.admit(&call("Create", true)).await.unwrap();
    faults.admit(&call("Create", true)).await.unwrap();
    // The bucket is empty: refused, and the window did not count it.
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    faults.admit(&call("Create", true)).await.unwrap();
    // Now the window binds (3 in 10 s) although the bucket refills.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = faults.admit(&call("Create", true)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn serialized_mutations_of_one_target_answer_another_operation() {
    let faults = Faults::default();
    faults
        .set_config(FaultConfig {
            latency: Latency::Fixed { ms: 400 },
            serialize_mutations: true,
            ..FaultConfig::default()
        })
        .unwrap();
    let first = {
        let f = faults.clone();
        tokio::spawn(async move { f.admit(&call("Update", true)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = faults.admit(&call("Update", true)).await.unwrap_err();
    assert_eq!(
        err,
        Fault::AnotherOperation {
            target: "lb".into(),
            retry_after: Duration::from_millis(300)
        }
    );
    assert_eq!((err.status(), err.retry_after_secs()), (429, Some(1)));
    // Reads and other targets are not serialised.
    faults.admit(&call("Get", false)).await.unwrap();
    let other = CallInfo::generic("Update", "other-lb", true);
    faults.admit(&other).await.unwrap();
    first.await.unwrap().unwrap();
    // The first call has ended: the target is free.
    faults.admit(&call("Update", true)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_throttled_mutation_frees_its_target_at_once() {
    let faults = Faults::default();
    faults
        .set_config(FaultConfig {
            latency: Latency::Fixed { ms: 400 },
            windows: BTreeMap::from([(BUCKET_MUTATE.to_string(), WindowSpec::fixed(1, 60_000))]),
            serialize_mutations: true,
            ..FaultConfig::default()
        })
        .unwrap();
    faults.admit(&call("Update", true)).await.unwrap();
    let err = faults.admit(&call("Update", true)).await.unwrap_err();
    assert!(matches!(err, Fault::Throttled { .. }), "{err:?}");
    // Not AnotherOperation: the refused call released its claim.
    let err = faults.admit(&call("Update", true)).await.unwrap_err();
    assert!(matches!(err, Fault::Throttled { .. }), "{err:?}");
}

#[test]
fn profiles_parse_and_validate() {
    let table = [
        ("gce", Profile::Gce),
        ("gcp", Profile::Gce),
        ("azure", Profile::Azure),
        ("aws", Profile::Aws),
    ];
    for (name, want) in table {
        let p: Profile = name.parse().unwrap();
        assert_eq!(p, want);
        config::validate(&p.config()).unwrap();
    }
    let err = "gke".parse::<Profile>().unwrap_err().to_string();
    assert!(err.contains("gce (or gcp), azure"), "{err}");
    let gce = Profile::Gce.config();
    assert!(gce.buckets.is_empty());
    assert_eq!(gce.windows[BUCKET_MUTATE], WindowSpec::fixed(1500, 60_000));
    let azure = Profile::Azure.config();
    assert_eq!(
        azure.windows[BUCKET_MUTATE],
        WindowSpec::sliding(1000, 300_000)
    );
    assert!(azure.serialize_mutations);
}

#[test]
fn old_configs_without_windows_still_parse() {
    let json = r#"{"latency":{"kind":"none"},"buckets":{},"injections":[]}"#;
    let config: FaultConfig = serde_json::from_str(json).unwrap();
    assert!(config.windows.is_empty() && !config.serialize_mutations);
    let bad = FaultConfig {
        windows: BTreeMap::from([("read".to_string(), WindowSpec::fixed(0, 1000))]),
        ..FaultConfig::default()
    };
    let err = config::validate(&bad).unwrap_err().to_string();
    assert!(err.contains("windows.read"), "{err}");
}
