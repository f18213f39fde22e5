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
            Profile::Aws => FaultConfig {
                latency: Latency::None,
                buckets: crate::aws::buckets::aws_profile_buckets(),
                injections: Vec::new(),
                provisioning: Latency::Uniform {
                    min_ms: 60_000,
                    max_ms: 180_000,
                },
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
            other => Err(FaultsError::UnknownProfile(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error("unknown fault profile {0:?} (known: none, generic, aws)")]
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
