//! The fault configuration: latency models, bucket sizes, injection rules, named profiles.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::{BUCKET_MUTATE, BUCKET_READ};

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

/// How a window limiter counts (cloud-api-limits §3, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Consecutive windows of `period`, the count reset at each boundary (GCE's per-minute
    /// quotas). The first window opens with the first call charged to it after the
    /// configuration was set: the phase of a real cloud's minute relative to a run is
    /// arbitrary, and starting there is the worst case, which is what a computed bound assumes.
    #[default]
    Fixed,
    /// At most `limit` calls in any interval of `period` (Azure's Network RP: 1000 writes per
    /// 5 minutes).
    Sliding,
}

/// A window limiter: at most `limit` calls per `period_ms`, keyed like a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    #[serde(default)]
    pub kind: WindowKind,
    pub limit: u64,
    pub period_ms: u64,
}

impl WindowSpec {
    pub const fn fixed(limit: u64, period_ms: u64) -> Self {
        Self {
            kind: WindowKind::Fixed,
            limit,
            period_ms,
        }
    }

    pub const fn sliding(limit: u64, period_ms: u64) -> Self {
        Self {
            kind: WindowKind::Sliding,
            limit,
            period_ms,
        }
    }

    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }
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

    pub(super) fn matches(&self, operation: &str) -> bool {
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
    /// Window limiters by bucket name, checked beside the token buckets: a call charged to
    /// bucket `x` also needs a slot in window `x` when one is configured.
    #[serde(default)]
    pub windows: BTreeMap<String, WindowSpec>,
    /// At most one mutating call in flight per target (Azure: a concurrent mutation of the
    /// same load balancer answers 429 `RetryableErrorDueToAnotherOperation`). A call is in
    /// flight for its modelled latency.
    #[serde(default)]
    pub serialize_mutations: bool,
    /// When set, a read of a load balancer that is still provisioning is an operation poll and
    /// is charged to this bucket instead of the read bucket (GCE: operation polling has its
    /// own quota).
    #[serde(default)]
    pub operation_read_bucket: Option<String>,
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
    /// P-aws: the real ELBv2 and EC2 buckets (cloud-api-limits §2), load balancers `active`
    /// after U[60, 180] s. Bucket names are those of [`crate::aws::buckets`].
    Aws,
    /// P-gce on the generic cloud: fixed 60 s windows of 1500 mutations and 1500 reads,
    /// operation polls against their own 1500 per minute, load balancers `active` after
    /// U[2, 6] s.
    Gce,
    /// P-azure on the generic cloud: ARM buckets (writes 200 / 10 per s, reads 250 / 25 per
    /// s), Network RP sliding 5-minute windows (1000 writes, 10 000 reads), one in-flight
    /// mutation per load balancer, async operations of 20 s.
    Azure,
}

/// Bucket / window name of GCE operation polls (see [`FaultConfig::operation_read_bucket`]).
pub const BUCKET_OPERATION_READ: &str = "operation_read";

/// P-generic's call latency. GCE and Azure keep it: the reference documents how long their
/// operations take (modelled as provisioning), not the latency of one API call.
fn generic_latency() -> Latency {
    Latency::Lognormal {
        median_ms: 50,
        p99_ms: 200,
    }
}

fn bucket(capacity: f64, refill_per_sec: f64) -> BucketSpec {
    BucketSpec {
        capacity,
        refill_per_sec,
    }
}

impl Profile {
    pub fn config(self) -> FaultConfig {
        match self {
            Profile::None => FaultConfig::default(),
            Profile::Generic => FaultConfig {
                latency: generic_latency(),
                buckets: BTreeMap::from([
                    (BUCKET_MUTATE.to_string(), bucket(20.0, 20.0)),
                    (BUCKET_READ.to_string(), bucket(100.0, 100.0)),
                ]),
                ..FaultConfig::default()
            },
            Profile::Aws => FaultConfig {
                buckets: crate::aws::buckets::aws_profile_buckets(),
                provisioning: Latency::Uniform {
                    min_ms: 60_000,
                    max_ms: 180_000,
                },
                ..FaultConfig::default()
            },
            // cloud-api-limits §3: no token bucket, only per-minute quotas. The reference
            // gives no figure for OperationReadRequestsPerMinutePerRegion; we use the legacy
            // read default (1500 per minute) for it too.
            Profile::Gce => FaultConfig {
                latency: generic_latency(),
                windows: BTreeMap::from([
                    (BUCKET_MUTATE.to_string(), WindowSpec::fixed(1500, 60_000)),
                    (BUCKET_READ.to_string(), WindowSpec::fixed(1500, 60_000)),
                    (
                        BUCKET_OPERATION_READ.to_string(),
                        WindowSpec::fixed(1500, 60_000),
                    ),
                ]),
                provisioning: Latency::Uniform {
                    min_ms: 2_000,
                    max_ms: 6_000,
                },
                operation_read_bucket: Some(BUCKET_OPERATION_READ.to_string()),
                ..FaultConfig::default()
            },
            // cloud-api-limits §4 and §9. Deletes have their own ARM bucket of the same size
            // upstream; the generic cloud charges them to `mutate` (conservative).
            Profile::Azure => FaultConfig {
                latency: generic_latency(),
                buckets: BTreeMap::from([
                    (BUCKET_MUTATE.to_string(), bucket(200.0, 10.0)),
                    (BUCKET_READ.to_string(), bucket(250.0, 25.0)),
                ]),
                windows: BTreeMap::from([
                    (
                        BUCKET_MUTATE.to_string(),
                        WindowSpec::sliding(1000, 300_000),
                    ),
                    (
                        BUCKET_READ.to_string(),
                        WindowSpec::sliding(10_000, 300_000),
                    ),
                ]),
                serialize_mutations: true,
                provisioning: Latency::Fixed { ms: 20_000 },
                ..FaultConfig::default()
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
            "aws" => Ok(Profile::Aws),
            "gce" | "gcp" => Ok(Profile::Gce),
            "azure" => Ok(Profile::Azure),
            other => Err(FaultsError::UnknownProfile(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("unknown fault profile {0:?} (known: none, generic, aws, gce (or gcp), azure)")]
    UnknownProfile(String),
    #[error("invalid fault configuration: {0}")]
    Invalid(String),
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

pub(super) fn validate_latency(latency: &Latency) -> Result<(), FaultsError> {
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

pub(super) fn validate_injection(injection: &Injection) -> Result<(), FaultsError> {
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

pub(super) fn validate(config: &FaultConfig) -> Result<(), FaultsError> {
    validate_latency(&config.latency)?;
    validate_latency(&config.provisioning)?;
    for (name, b) in &config.buckets {
        if b.capacity < 1.0 || b.refill_per_sec < 0.0 {
            return Err(FaultsError::Invalid(format!(
                "buckets.{name}: capacity must be >= 1 and refill_per_sec >= 0"
            )));
        }
    }
    for (name, w) in &config.windows {
        if w.limit < 1 || w.period_ms < 1 {
            return Err(FaultsError::Invalid(format!(
                "windows.{name}: limit and period_ms must be >= 1"
            )));
        }
    }
    if config
        .operation_read_bucket
        .as_ref()
        .is_some_and(String::is_empty)
    {
        return Err(FaultsError::Invalid(
            "operation_read_bucket must not be empty (omit it to charge polls as reads)".into(),
        ));
    }
    config.injections.iter().try_for_each(validate_injection)
}

/// Body of `POST /_admin/faults`: every field optional, applied in order profile, latency,
/// buckets, clear_injections, injections, provisioning, windows, serialize_mutations, seed.
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
    /// Replaces every window limiter (counts restart).
    #[serde(default)]
    pub windows: Option<BTreeMap<String, WindowSpec>>,
    #[serde(default)]
    pub serialize_mutations: Option<bool>,
}
