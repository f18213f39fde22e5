//! Fault injection shared by every front of the mock cloud: per-call latency, server-side token
//! buckets and window limiters (429 + `Retry-After`), per-target serialisation of mutations,
//! injected errors, and a call log.
//!
//! A front describes each incoming call as a [`CallInfo`], asks [`Faults::admit`] whether it may
//! proceed (rendering a [`Fault`] in its own wire format when not), runs the call, and records the
//! answered status with [`Faults::record`]. Everything uses tokio time so tests can run on paused
//! virtual time, and the RNG is seeded so runs are reproducible.

mod admin;
mod config;
mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use admin::admin_router;
pub use config::{
    BUCKET_OPERATION_READ, BucketSpec, FaultConfig, FaultUpdate, FaultsError, Injection, Latency,
    Profile, WindowKind, WindowSpec, sample_latency,
};
use config::{validate, validate_injection, validate_latency};
use window::Window;

/// Bucket names of the generic profile; other fronts may define their own.
pub const BUCKET_READ: &str = "read";
pub const BUCKET_MUTATE: &str = "mutate";

/// The call log keeps at most this many entries (oldest dropped): enough for every benchmark
/// scenario, bounded so a long sandbox run cannot grow without limit.
const LOG_CAP: usize = 500_000;

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
    /// Another mutation of the same target is still in flight (with
    /// [`FaultConfig::serialize_mutations`]): answer 429 with `Retry-After` until it ends.
    AnotherOperation {
        target: String,
        retry_after: Duration,
    },
}

impl Fault {
    pub fn status(&self) -> u16 {
        match self {
            Fault::Throttled { .. } | Fault::AnotherOperation { .. } => 429,
            Fault::Injected { status } => *status,
        }
    }

    /// `Retry-After` in whole seconds (HTTP allows no fractions), rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Fault::Throttled { retry_after, .. } | Fault::AnotherOperation { retry_after, .. } => {
                Some(ceil_secs(*retry_after))
            }
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
    /// Server-side buckets the call was charged to (benchmarks compute bounds from these).
    #[serde(default)]
    pub buckets: Vec<String>,
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
    windows: BTreeMap<String, Window>,
    /// Target -> when its in-flight mutation ends (with `serialize_mutations`).
    in_flight: HashMap<String, Instant>,
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
            windows: build_windows(&config),
            in_flight: HashMap::new(),
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

    /// Replace the whole configuration; buckets start full, windows empty.
    pub fn set_config(&self, config: FaultConfig) -> Result<(), FaultsError> {
        validate(&config)?;
        self.lock().reset_limits(config);
        Ok(())
    }

    pub fn set_profile(&self, profile: Profile) {
        self.lock().reset_limits(profile.config());
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

    /// The bucket operation polls are charged to, if the profile separates them from reads.
    pub fn operation_read_bucket(&self) -> Option<String> {
        self.lock().config.operation_read_bucket.clone()
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

    /// Decide the fate of one call: waits the modelled latency, then applies injections,
    /// buckets and windows. With `serialize_mutations`, a mutation of a target whose previous
    /// mutation is still in flight is refused at once. A refused call is not logged here; the
    /// front logs every answer via [`Faults::record`].
    pub async fn admit(&self, call: &CallInfo) -> Result<(), Fault> {
        let exclusive = call.mutating && !call.target.is_empty();
        let (total, injected, claimed) = {
            let mut inner = self.lock();
            let latency = sample_latency(&inner.config.latency.clone(), &mut inner.rng);
            let injected = take_injection(&mut inner, &call.operation);
            let extra = injected.as_ref().map_or(Duration::ZERO, |(d, _)| *d);
            let total = latency + extra;
            let claimed = if exclusive && inner.config.serialize_mutations {
                Some(inner.claim_target(&call.target, total)?)
            } else {
                None
            };
            (total, injected, claimed)
        };
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
        let verdict = match injected {
            Some((_, Some(status))) => Err(Fault::Injected { status }),
            _ => self.take_tokens(&call.buckets),
        };
        if let (Err(_), Some(until)) = (&verdict, claimed) {
            // A refused call changed nothing: the target is free again.
            self.lock().release_target(&call.target, until);
        }
        verdict
    }

    /// Take one token from each bucket and one slot from each window, all or nothing.
    fn take_tokens(&self, names: &[String]) -> Result<(), Fault> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut short: Option<(String, Duration)> = None;
        let mut note = |name: &String, wait: Duration| {
            if short.as_ref().is_none_or(|(_, w)| wait > *w) {
                short = Some((name.clone(), wait));
            }
        };
        for name in names {
            if let Some(bucket) = inner.buckets.get_mut(name) {
                bucket.refill(now);
                if bucket.tokens < 1.0 {
                    note(name, bucket.wait_for_one());
                }
            }
            if let Some(window) = inner.windows.get_mut(name)
                && let Some(wait) = window.wait(now)
            {
                note(name, wait);
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
            if let Some(window) = inner.windows.get_mut(name) {
                window.take(now);
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
            buckets: call.buckets.clone(),
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

impl Inner {
    /// New limits: buckets full, windows empty, nothing in flight.
    fn reset_limits(&mut self, config: FaultConfig) {
        self.buckets = build_buckets(&config, Instant::now());
        self.windows = build_windows(&config);
        self.in_flight.clear();
        self.config = config;
    }

    /// Mark `target` busy for `for_how_long`, or refuse when its last mutation is still in
    /// flight. Returns when the claim ends (to release it if the call is refused later).
    fn claim_target(&mut self, target: &str, for_how_long: Duration) -> Result<Instant, Fault> {
        let now = Instant::now();
        if let Some(until) = self.in_flight.get(target)
            && *until > now
        {
            return Err(Fault::AnotherOperation {
                target: target.to_string(),
                retry_after: *until - now,
            });
        }
        // Finished claims are dropped now and then, so the map stays as small as the number
        // of targets mutated within one latency.
        if self.in_flight.len() >= 1024 {
            self.in_flight.retain(|_, until| *until > now);
        }
        let until = now + for_how_long;
        self.in_flight.insert(target.to_string(), until);
        Ok(until)
    }

    fn release_target(&mut self, target: &str, until: Instant) {
        if self.in_flight.get(target) == Some(&until) {
            self.in_flight.remove(target);
        }
    }
}

fn build_windows(config: &FaultConfig) -> BTreeMap<String, Window> {
    config
        .windows
        .iter()
        .map(|(name, spec)| (name.clone(), Window::new(*spec)))
        .collect()
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

#[cfg(test)]
mod tests;
