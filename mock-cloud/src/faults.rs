//! Fault injection shared by every front of the mock cloud: per-call latency, server-side token
//! buckets (429 + `Retry-After`), injected errors, and a call log.
//!
//! A front describes each incoming call as a [`CallInfo`], asks [`Faults::admit`] whether it may
//! proceed (rendering a [`Fault`] in its own wire format when not), runs the call, and records the
//! answered status with [`Faults::record`]. Everything uses tokio time so tests can run on paused
//! virtual time, and the RNG is seeded so runs are reproducible.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Bucket names of the generic profile; other fronts may define their own.
pub const BUCKET_READ: &str = "read";
pub const BUCKET_MUTATE: &str = "mutate";

/// The call log keeps at most this many entries (oldest dropped): enough for every benchmark
/// scenario, bounded so a long sandbox run cannot grow without limit.
const LOG_CAP: usize = 500_000;

/// The z-score of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

/// Per-call latency model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Latency {
    #[default]
    None,
    Fixed {
        ms: u64,
    },
    /// Lognormal with the given median and 99th percentile.
    Lognormal {
        median_ms: u64,
        p99_ms: u64,
    },
    /// Uniform in `[min_ms, max_ms]` (e.g. P-aws: LB active after U[60, 180] s).
    Uniform {
        min_ms: u64,
        max_ms: u64,
    },
}

/// Size and refill rate of one server-side token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketSpec {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

/// One injected fault rule, matched by operation name (`*` matches every operation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    pub operation: String,
    /// HTTP status to answer; `None` only delays the call (to provoke client timeouts).
    #[serde(default)]
    pub status: Option<u16>,
    /// Extra delay before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fire for the next `count` matching calls, then disappear. `None` = forever.
    #[serde(default)]
    pub count: Option<u64>,
    /// Fire with this probability per matching call (default 1).
    #[serde(default)]
    pub probability: Option<f64>,
}

impl Injection {
    /// The next `count` calls of `operation` fail with `status`.
    pub fn fail_next(operation: impl Into<String>, count: u64, status: u16) -> Self {
        Self {
            operation: operation.into(),
            status: Some(status),
            delay_ms: 0,
            count: Some(count),
            probability: None,
        }
    }

    /// Every call of `operation` fails with `status` with probability `p`.
    pub fn fail_randomly(operation: impl Into<String>, p: f64, status: u16) -> Self {
        Self {
            operation: operation.into(),
            status: Some(status),
            delay_ms: 0,
            count: None,
            probability: Some(p),
        }
    }

    fn matches(&self, operation: &str) -> bool {
        self.operation == "*" || self.operation == operation
    }
}

/// The whole fault configuration; serialisable for the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct FaultConfig {
    pub latency: Latency,
    /// Bucket name -> spec. A call charged to a bucket not listed here is not limited.
    pub buckets: BTreeMap<String, BucketSpec>,
    pub injections: Vec<Injection>,
    /// How long a new load balancer stays `provisioning` before it is `active`.
    #[serde(default)]
    pub provisioning: Latency,
}

/// Named profiles (cloud-api-limits §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// No latency, no limits.
    None,
    /// P-generic: 50 ms lognormal latency (p99 200 ms), mutating 20 burst / 20 per s, reads
    /// 100 / 100 per s.
    Generic,
}

impl Profile {
    pub fn config(self) -> FaultConfig {
        match self {
            Profile::None => FaultConfig::default(),
            Profile::Generic => FaultConfig {
                latency: Latency::Lognormal {
                    median_ms: 50,
                    p99_ms: 200,
                },
                buckets: BTreeMap::from([
                    (
                        BUCKET_MUTATE.to_string(),
                        BucketSpec {
                            capacity: 20.0,
                            refill_per_sec: 20.0,
                        },
                    ),
                    (
                        BUCKET_READ.to_string(),
                        BucketSpec {
                            capacity: 100.0,
                            refill_per_sec: 100.0,
                        },
                    ),
                ]),
                injections: Vec::new(),
                provisioning: Latency::None,
            },
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = FaultsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Profile::None),
            "generic" => Ok(Profile::Generic),
            other => Err(FaultsError::UnknownProfile(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("unknown fault profile {0:?} (known: none, generic)")]
    UnknownProfile(String),
    #[error("invalid fault configuration: {0}")]
    Invalid(String),
}

/// What a front knows about one incoming call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// API operation name, e.g. `CreateLoadBalancer`.
    pub operation: String,
    /// The resource the call is about (a name or id), empty for collection calls.
    pub target: String,
    /// Short free-form detail worth asserting on, e.g. `add=i-1,i-2 remove=`.
    pub detail: String,
    pub mutating: bool,
    /// Server-side buckets the call is charged to (all must have a token).
    pub buckets: Vec<String>,
}

impl CallInfo {
    /// A call charged to the generic `read` or `mutate` bucket.
    pub fn generic(operation: &str, target: &str, mutating: bool) -> Self {
        let bucket = if mutating { BUCKET_MUTATE } else { BUCKET_READ };
        Self {
            operation: operation.to_string(),
            target: target.to_string(),
            detail: String::new(),
            mutating,
            buckets: vec![bucket.to_string()],
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Why a call was refused before reaching the front's handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A server-side bucket is empty: answer 429 with `Retry-After`.
    Throttled {
        bucket: String,
        retry_after: Duration,
    },
    /// An injection rule fired: answer `status`.
    Injected { status: u16 },
}

impl Fault {
    pub fn status(&self) -> u16 {
        match self {
            Fault::Throttled { .. } => 429,
            Fault::Injected { status } => *status,
        }
    }

    /// `Retry-After` in whole seconds (HTTP allows no fractions), rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Fault::Throttled { retry_after, .. } => Some(ceil_secs(*retry_after)),
            Fault::Injected { status: 429 | 503 } => Some(1),
            Fault::Injected { .. } => None,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    whole.max(1)
}

/// One entry of the call log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Strictly increasing, starting at 1, never reset (so `since` stays valid after a clear).
    pub seq: u64,
    /// Milliseconds since the mock cloud started, on tokio's clock.
    pub at_ms: f64,
    /// Wall clock, RFC 3339.
    pub time: String,
    pub operation: String,
    pub target: String,
    pub detail: String,
    pub mutating: bool,
    pub status: u16,
}

#[derive(Debug)]
struct Bucket {
    spec: BucketSpec,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(spec: BucketSpec, now: Instant) -> Self {
        Self {
            spec,
            tokens: spec.capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.spec.refill_per_sec).min(self.spec.capacity);
        self.last = now;
    }

    fn wait_for_one(&self) -> Duration {
        if self.spec.refill_per_sec <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0)) / self.spec.refill_per_sec)
    }
}

#[derive(Debug)]
struct Inner {
    config: FaultConfig,
    buckets: BTreeMap<String, Bucket>,
    rng: StdRng,
    log: VecDeque<CallRecord>,
    next_seq: u64,
}

/// Fault state of one mock cloud; cheap to clone, shared by every front.
#[derive(Clone, Debug)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    epoch: Instant,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new(Profile::None, 0)
    }
}

impl Faults {
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self::with_config(profile.config(), seed)
    }

    pub fn with_config(config: FaultConfig, seed: u64) -> Self {
        let now = Instant::now();
        let inner = Inner {
            buckets: build_buckets(&config, now),
            config,
            rng: StdRng::seed_from_u64(seed),
            log: VecDeque::new(),
            next_seq: 1,
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            epoch: now,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the whole configuration; buckets start full.
    pub fn set_config(&self, config: FaultConfig) -> Result<(), FaultsError> {
        validate(&config)?;
        let mut inner = self.lock();
        inner.buckets = build_buckets(&config, Instant::now());
        inner.config = config;
        Ok(())
    }

    pub fn set_profile(&self, profile: Profile) {
        let mut inner = self.lock();
        let config = profile.config();
        inner.buckets = build_buckets(&config, Instant::now());
        inner.config = config;
    }

    pub fn set_latency(&self, latency: Latency) -> Result<(), FaultsError> {
        validate_latency(&latency)?;
        self.lock().config.latency = latency;
        Ok(())
    }

    pub fn set_provisioning(&self, delay: Latency) -> Result<(), FaultsError> {
        validate_latency(&delay)?;
        self.lock().config.provisioning = delay;
        Ok(())
    }

    /// How long the resource created now stays provisioning.
    pub fn sample_provisioning(&self) -> Duration {
        let mut inner = self.lock();
        let model = inner.config.provisioning.clone();
        sample_latency(&model, &mut inner.rng)
    }

    pub fn reseed(&self, seed: u64) {
        self.lock().rng = StdRng::seed_from_u64(seed);
    }

    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    pub fn inject(&self, injection: Injection) -> Result<(), FaultsError> {
        validate_injection(&injection)?;
        self.lock().config.injections.push(injection);
        Ok(())
    }

    /// The next `count` calls of `operation` fail with `status`.
    pub fn fail_next(&self, operation: &str, count: u64, status: u16) {
        self.lock()
            .config
            .injections
            .push(Injection::fail_next(operation, count, status));
    }

    pub fn clear_injections(&self) {
        self.lock().config.injections.clear();
    }

    /// Decide the fate of one call: waits the modelled latency, then applies injections and
    /// buckets. A refused call is not logged here; the front logs every answer via
    /// [`Faults::record`].
    pub async fn admit(&self, call: &CallInfo) -> Result<(), Fault> {
        let (latency, injected) = {
            let mut inner = self.lock();
            let latency = sample_latency(&inner.config.latency.clone(), &mut inner.rng);
            let injected = take_injection(&mut inner, &call.operation);
            (latency, injected)
        };
        let extra = injected.as_ref().map_or(Duration::ZERO, |(d, _)| *d);
        let total = latency + extra;
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
        if let Some((_, Some(status))) = injected {
            return Err(Fault::Injected { status });
        }
        self.take_tokens(&call.buckets)
    }

    /// Take one token from each bucket, all or nothing.
    fn take_tokens(&self, names: &[String]) -> Result<(), Fault> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut short: Option<(String, Duration)> = None;
        for name in names {
            if let Some(bucket) = inner.buckets.get_mut(name) {
                bucket.refill(now);
                if bucket.tokens < 1.0 {
                    let wait = bucket.wait_for_one();
                    if short.as_ref().is_none_or(|(_, w)| wait > *w) {
                        short = Some((name.clone(), wait));
                    }
                }
            }
        }
        if let Some((bucket, retry_after)) = short {
            return Err(Fault::Throttled {
                bucket,
                retry_after,
            });
        }
        for name in names {
            if let Some(bucket) = inner.buckets.get_mut(name) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }

    /// Log the answer to one call; returns its sequence number.
    pub fn record(&self, call: &CallInfo, status: u16) -> u64 {
        let at_ms = self.epoch.elapsed().as_secs_f64() * 1000.0;
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.log.len() >= LOG_CAP {
            inner.log.pop_front();
        }
        inner.log.push_back(CallRecord {
            seq,
            at_ms,
            time,
            operation: call.operation.clone(),
            target: call.target.clone(),
            detail: call.detail.clone(),
            mutating: call.mutating,
            status,
        });
        seq
    }

    /// Logged calls with `seq > since` (all with `None`).
    pub fn calls(&self, since: Option<u64>) -> Vec<CallRecord> {
        let since = since.unwrap_or(0);
        self.lock()
            .log
            .iter()
            .filter(|c| c.seq > since)
            .cloned()
            .collect()
    }

    /// The sequence number the next logged call will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    pub fn clear_calls(&self) {
        self.lock().log.clear();
    }
}

fn build_buckets(config: &FaultConfig, now: Instant) -> BTreeMap<String, Bucket> {
    config
        .buckets
        .iter()
        .map(|(name, spec)| (name.clone(), Bucket::new(*spec, now)))
        .collect()
}

/// Pick the first injection rule that matches and fires; consume one of its count.
fn take_injection(inner: &mut Inner, operation: &str) -> Option<(Duration, Option<u16>)> {
    let mut fired = None;
    for idx in 0..inner.config.injections.len() {
        let rule = &inner.config.injections[idx];
        if !rule.matches(operation) {
            continue;
        }
        let p = rule.probability.unwrap_or(1.0);
        if p < 1.0 && inner.rng.random::<f64>() >= p {
            continue;
        }
        fired = Some(idx);
        break;
    }
    let idx = fired?;
    let rule = &mut inner.config.injections[idx];
    let out = (Duration::from_millis(rule.delay_ms), rule.status);
    if let Some(count) = rule.count.as_mut() {
        *count = count.saturating_sub(1);
        if *count == 0 {
            inner.config.injections.remove(idx);
        }
    }
    Some(out)
}

/// One latency sample. Lognormal via Box-Muller (no extra crate): sigma is chosen so the 99th
/// percentile lands on `p99_ms`; samples are capped at 10x p99 so one unlucky draw cannot stall
/// a benchmark.
pub fn sample_latency(latency: &Latency, rng: &mut StdRng) -> Duration {
    match *latency {
        Latency::None => Duration::ZERO,
        Latency::Fixed { ms } => Duration::from_millis(ms),
        Latency::Uniform { min_ms, max_ms } => {
            Duration::from_millis(rng.random_range(min_ms..=max_ms.max(min_ms)))
        }
        Latency::Lognormal { median_ms, p99_ms } => {
            if median_ms == 0 {
                return Duration::ZERO;
            }
            let median = median_ms as f64;
            let sigma = ((p99_ms.max(median_ms) as f64) / median).ln() / Z_P99;
            let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
            let u2: f64 = rng.random::<f64>();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let ms = (median * (sigma * z).exp()).min(10.0 * p99_ms.max(median_ms) as f64);
            Duration::from_secs_f64(ms / 1000.0)
        }
    }
}

fn validate_latency(latency: &Latency) -> Result<(), FaultsError> {
    match latency {
        Latency::Lognormal { median_ms, p99_ms } if p99_ms < median_ms => {
            Err(FaultsError::Invalid("p99_ms must be >= median_ms".into()))
        }
        Latency::Uniform { min_ms, max_ms } if max_ms < min_ms => {
            Err(FaultsError::Invalid("max_ms must be >= min_ms".into()))
        }
        _ => Ok(()),
    }
}

fn validate_injection(injection: &Injection) -> Result<(), FaultsError> {
    if let Some(p) = injection.probability
        && !(0.0..=1.0).contains(&p)
    {
        return Err(FaultsError::Invalid(
            "injections[].probability must be in [0, 1]".into(),
        ));
    }
    if let Some(status) = injection.status
        && !(400..=599).contains(&status)
    {
        return Err(FaultsError::Invalid(
            "injections[].status must be a 4xx or 5xx code".into(),
        ));
    }
    if injection.operation.is_empty() {
        return Err(FaultsError::Invalid(
            "injections[].operation must not be empty".into(),
        ));
    }
    Ok(())
}

fn validate(config: &FaultConfig) -> Result<(), FaultsError> {
    validate_latency(&config.latency)?;
    validate_latency(&config.provisioning)?;
    for (name, b) in &config.buckets {
        if b.capacity < 1.0 || b.refill_per_sec < 0.0 {
            return Err(FaultsError::Invalid(format!(
                "buckets.{name}: capacity must be >= 1 and refill_per_sec >= 0"
            )));
        }
    }
    config.injections.iter().try_for_each(validate_injection)
}

/// Body of `POST /_admin/faults`: every field optional, applied in order profile, latency,
/// buckets, clear_injections, injections, provisioning, seed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FaultUpdate {
    #[serde(default)]
    pub profile: Option<Profile>,
    #[serde(default)]
    pub latency: Option<Latency>,
    #[serde(default)]
    pub buckets: Option<BTreeMap<String, BucketSpec>>,
    #[serde(default)]
    pub clear_injections: bool,
    #[serde(default)]
    pub injections: Vec<Injection>,
    #[serde(default)]
    pub provisioning: Option<Latency>,
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Faults {
    /// Apply an admin update atomically: validated first, nothing changes on error.
    pub fn apply(&self, update: FaultUpdate) -> Result<FaultConfig, FaultsError> {
        let mut config = match update.profile {
            Some(p) => p.config(),
            None => self.config(),
        };
        if let Some(latency) = update.latency {
            config.latency = latency;
        }
        let buckets_changed = update.profile.is_some() || update.buckets.is_some();
        if let Some(buckets) = update.buckets {
            config.buckets = buckets;
        }
        if update.clear_injections {
            config.injections.clear();
        }
        config.injections.extend(update.injections);
        if let Some(provisioning) = update.provisioning {
            config.provisioning = provisioning;
        }
        validate(&config)?;
        let mut inner = self.lock();
        if buckets_changed {
            inner.buckets = build_buckets(&config, Instant::now());
        }
        inner.config = config.clone();
        if let Some(seed) = update.seed {
            inner.rng = StdRng::seed_from_u64(seed);
        }
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

/// `/_admin/calls` (GET `?since=`, DELETE) and `/_admin/faults` (GET, POST [`FaultUpdate`]),
/// for any front to merge into its router.
pub fn admin_router(faults: Faults) -> Router {
    Router::new()
        .route("/_admin/calls", get(get_calls).delete(delete_calls))
        .route("/_admin/faults", get(get_faults).post(post_faults))
        .with_state(faults)
}

async fn get_calls(State(faults): State<Faults>, Query(q): Query<SinceQuery>) -> Response {
    let calls = faults.calls(q.since);
    let next = faults.next_seq();
    Json(serde_json::json!({ "calls": calls, "next_seq": next })).into_response()
}

async fn delete_calls(State(faults): State<Faults>) -> StatusCode {
    faults.clear_calls();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(faults): State<Faults>) -> Json<FaultConfig> {
    Json(faults.config())
}

async fn post_faults(State(faults): State<Faults>, Json(update): Json<FaultUpdate>) -> Response {
    match faults.apply(update) {
        Ok(config) => Json(config).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "code": "InvalidFaults", "message": e.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
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
}
