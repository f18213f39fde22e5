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
