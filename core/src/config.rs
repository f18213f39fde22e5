//! Controller configuration: one YAML file, overridable by flags, validated once at start.
//! A bad value is reported with the field's path and what would be accepted.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Everything the controller can be told. Field names are the YAML keys (camelCase).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// Name of this cluster: part of every ownership tag and cloud name. Changing it orphans
    /// everything provisioned under the old name, so keep it stable.
    pub cluster_name: String,
    /// Claim Services with this `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// Also claim LoadBalancer Services with no class (the default controller of a cluster).
    pub claim_unclassed: bool,
    /// Services reconciled at once.
    pub concurrency: u16,
    /// First retry delay after a failure (seconds); doubles up to `backoffMaxSeconds`.
    pub backoff_base_seconds: f64,
    pub backoff_max_seconds: f64,
    /// A removal is written once the node set has been quiet this long (seconds).
    pub node_sync_debounce_seconds: f64,
    /// A join with no other join shortly before it waits this long before load balancers
    /// are updated (seconds): new capacity is not urgent, and it may be the first of a
    /// series. Removals are never held.
    pub node_sync_add_hold_seconds: f64,
    /// While nodes keep joining, each join holds the update for 1.2 × the gap since the
    /// previous one (at least the debounce), so a series of joins becomes one backend write per load balancer; no
    /// join waits longer than this in total (seconds, 0 = no holding at all).
    pub node_sync_max_hold_seconds: f64,
    /// How often every load balancer is compared with the cloud and repaired (seconds, 0 = off).
    pub drift_interval_seconds: f64,
    /// How often resources owned by this cluster but by no Service are looked for (0 = off).
    pub sweep_interval_seconds: f64,
    /// An orphan is deleted only after it has been seen orphaned for this long.
    pub sweep_grace_seconds: f64,
    /// Report orphans (log + metric) but delete nothing.
    pub sweep_dry_run: bool,
    pub leader_election: LeaderElectionConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// Timeout of every single cloud call (seconds).
    pub cloud_call_timeout_seconds: f64,
    /// Client-side cloud API buckets by name, overriding the provider's defaults (which copy
    /// the cloud's published throttling buckets). Raise them if your account has higher limits.
    pub cloud_api_buckets: std::collections::BTreeMap<String, BucketSpec>,
    /// Client-side window limiters by bucket name (at most `limit` calls in any
    /// `periodSeconds`), for clouds whose quotas are per window rather than token buckets
    /// (GCE: 1500 per minute; Azure Network RP: 1000 writes per 5 minutes). Empty by default.
    pub cloud_api_windows: std::collections::BTreeMap<String, WindowSpec>,
}

/// One client-side window limiter (sliding: a conservative match for fixed server windows too).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    pub limit: u32,
    pub period_seconds: f64,
}

impl WindowSpec {
    pub fn to_window(self) -> crate::ratelimit::WindowConfig {
        crate::ratelimit::WindowConfig::new(
            self.limit,
            Duration::from_secs_f64(self.period_seconds),
        )
    }
}

/// One client-side token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSpec {
    pub capacity: f64,
    pub refill_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LeaderElectionConfig {
    pub enabled: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    /// How long a lease is valid without renewal (seconds).
    pub lease_duration_seconds: f64,
    /// How often the holder renews (seconds); must be well under the duration.
    pub renew_interval_seconds: f64,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_name: "frontdesk-controller".to_string(),
            lease_namespace: "kube-system".to_string(),
            lease_duration_seconds: 15.0,
            renew_interval_seconds: 2.0,
        }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            cluster_name: "kubernetes".to_string(),
            load_balancer_class: None,
            claim_unclassed: true,
            concurrency: 32,
            backoff_base_seconds: 5.0,
            backoff_max_seconds: 300.0,
            node_sync_debounce_seconds: 1.0,
            node_sync_add_hold_seconds: 5.0,
            node_sync_max_hold_seconds: 60.0,
            drift_interval_seconds: 300.0,
            sweep_interval_seconds: 600.0,
            sweep_grace_seconds: 300.0,
            sweep_dry_run: false,
            leader_election: LeaderElectionConfig::default(),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            cloud_call_timeout_seconds: 30.0,
            cloud_api_buckets: Default::default(),
            cloud_api_windows: Default::default(),
        }
    }
}

/// A configuration problem: the field path and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("config field `{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl ControllerConfig {
    /// Parse YAML; unknown keys and wrong types are errors that name the field.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str::<Self>(text).map_err(|e| {
            let location = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()));
            err("<file>", format!("{e}{}", location.unwrap_or_default()))
        })
    }

    /// Check every value; all checks are about what the user can fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_dns_label(&self.cluster_name) || self.cluster_name.len() > 40 {
            return Err(err(
                "clusterName",
                format!(
                    "{:?} must be 1-40 lower-case letters, digits or '-', starting and ending with a letter or digit",
                    self.cluster_name
                ),
            ));
        }
        if let Some(class) = &self.load_balancer_class
            && (class.is_empty() || !class.contains('/'))
        {
            return Err(err(
                "loadBalancerClass",
                format!("{class:?} must be a label-style key with a prefix, e.g. frontdesk.dev/lb"),
            ));
        }
        if self.load_balancer_class.is_none() && !self.claim_unclassed {
            return Err(err(
                "claimUnclassed",
                "is false and no loadBalancerClass is set, so no Service would ever be claimed; set loadBalancerClass or claimUnclassed: true",
            ));
        }
        if self.concurrency == 0 {
            return Err(err("concurrency", "must be at least 1"));
        }
        positive("backoffBaseSeconds", self.backoff_base_seconds)?;
        positive("backoffMaxSeconds", self.backoff_max_seconds)?;
        if self.backoff_max_seconds < self.backoff_base_seconds {
            return Err(err(
                "backoffMaxSeconds",
                "must not be smaller than backoffBaseSeconds",
            ));
        }
        non_negative("nodeSyncDebounceSeconds", self.node_sync_debounce_seconds)?;
        for (field, v) in [
            ("nodeSyncAddHoldSeconds", self.node_sync_add_hold_seconds),
            ("nodeSyncMaxHoldSeconds", self.node_sync_max_hold_seconds),
        ] {
            non_negative(field, v)?;
            if v > 3600.0 {
                return Err(err(
                    field,
                    format!(
                        "{v} is more than an hour; new nodes would wait that long for traffic (use at most 3600)"
                    ),
                ));
            }
        }
        non_negative("driftIntervalSeconds", self.drift_interval_seconds)?;
        non_negative("sweepIntervalSeconds", self.sweep_interval_seconds)?;
        non_negative("sweepGraceSeconds", self.sweep_grace_seconds)?;
        positive("cloudCallTimeoutSeconds", self.cloud_call_timeout_seconds)?;
        for (name, b) in &self.cloud_api_buckets {
            positive(&format!("cloudApiBuckets.{name}.capacity"), b.capacity)?;
            positive(
                &format!("cloudApiBuckets.{name}.refillPerSecond"),
                b.refill_per_second,
            )?;
        }
        for (name, w) in &self.cloud_api_windows {
            if w.limit == 0 {
                return Err(err(
                    &format!("cloudApiWindows.{name}.limit"),
                    "must be at least 1 (remove the entry for no limit)",
                ));
            }
            positive(
                &format!("cloudApiWindows.{name}.periodSeconds"),
                w.period_seconds,
            )?;
        }
        let le = &self.leader_election;
        if le.enabled {
            if !is_dns_label(&le.lease_name) {
                return Err(err("leaderElection.leaseName", "must be a DNS label"));
            }
            if !is_dns_label(&le.lease_namespace) {
                return Err(err("leaderElection.leaseNamespace", "must be a DNS label"));
            }
            positive(
                "leaderElection.leaseDurationSeconds",
                le.lease_duration_seconds,
            )?;
            positive(
                "leaderElection.renewIntervalSeconds",
                le.renew_interval_seconds,
            )?;
            if le.renew_interval_seconds * 2.0 > le.lease_duration_seconds {
                return Err(err(
                    "leaderElection.renewIntervalSeconds",
                    "must be at most half of leaseDurationSeconds, or the lease expires between renewals",
                ));
            }
        }
        Ok(())
    }

    pub fn backoff_base(&self) -> Duration {
        Duration::from_secs_f64(self.backoff_base_seconds)
    }
    pub fn backoff_max(&self) -> Duration {
        Duration::from_secs_f64(self.backoff_max_seconds)
    }
    pub fn node_sync_debounce(&self) -> Duration {
        Duration::from_secs_f64(self.node_sync_debounce_seconds)
    }
    pub fn node_sync_add_hold(&self) -> Duration {
        Duration::try_from_secs_f64(self.node_sync_add_hold_seconds.min(3600.0)).unwrap_or_default()
    }
    pub fn node_sync_max_hold(&self) -> Duration {
        Duration::try_from_secs_f64(self.node_sync_max_hold_seconds.min(3600.0)).unwrap_or_default()
    }
    pub fn cloud_call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.cloud_call_timeout_seconds)
    }
}

fn positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(err(field, format!("{v} must be a positive number")))
    }
}

fn non_negative(field: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(err(field, format!("{v} must be zero or a positive number")))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ControllerConfig::default().validate().unwrap();
        assert_eq!(
            ControllerConfig::from_yaml("").unwrap(),
            ControllerConfig::default()
        );
    }

    #[test]
    fn yaml_overrides() {
        let c = ControllerConfig::from_yaml(
            "clusterName: prod-eu\nloadBalancerClass: frontdesk.dev/lb\nclaimUnclassed: false\nleaderElection:\n  leaseDurationSeconds: 10\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.cluster_name, "prod-eu");
        assert_eq!(c.leader_election.lease_duration_seconds, 10.0);
        assert_eq!(c.leader_election.lease_name, "frontdesk-controller");
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("clusterName: Prod_EU", "clusterName"),
            ("concurrency: 0", "concurrency"),
            ("claimUnclassed: false", "claimUnclassed"),
            ("loadBalancerClass: nope", "loadBalancerClass"),
            (
                "backoffBaseSeconds: 10\nbackoffMaxSeconds: 5",
                "backoffMaxSeconds",
            ),
            (
                "leaderElection:\n  renewIntervalSeconds: 10",
                "leaderElection.renewIntervalSeconds",
            ),
            ("driftIntervalSeconds: -1", "driftIntervalSeconds"),
            ("nodeSyncAddHoldSeconds: -3", "nodeSyncAddHoldSeconds"),
            ("nodeSyncMaxHoldSeconds: 1e30", "nodeSyncMaxHoldSeconds"),
            (
                "cloudApiBuckets:\n  mutate: {capacity: 0, refillPerSecond: 1}",
                "cloudApiBuckets.mutate.capacity",
            ),
            (
                "cloudApiWindows:\n  mutate: {limit: 0, periodSeconds: 60}",
                "cloudApiWindows.mutate.limit",
            ),
            (
                "cloudApiWindows:\n  read: {limit: 1500, periodSeconds: 0}",
                "cloudApiWindows.read.periodSeconds",
            ),
        ];
        for (yaml, field) in cases {
            let e = ControllerConfig::from_yaml(yaml)
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(&e.field, field, "{yaml}");
        }
    }

    #[test]
    fn cloud_api_windows_parse() {
        let c = ControllerConfig::from_yaml(
            "cloudApiWindows:\n  mutate: {limit: 1500, periodSeconds: 60}\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.cloud_api_windows["mutate"].to_window(),
            crate::ratelimit::WindowConfig::new(1500, Duration::from_secs(60))
        );
        let e =
            ControllerConfig::from_yaml("cloudApiWindows:\n  mutate: {limit: 1}\n").unwrap_err();
        assert!(e.message.contains("periodSeconds"), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_rejected() {
        let e = ControllerConfig::from_yaml("clustername: x").unwrap_err();
        assert!(e.message.contains("unknown field `clustername`"), "{e}");
        let e = ControllerConfig::from_yaml("concurrency: lots").unwrap_err();
        assert!(e.message.contains("concurrency"), "{e}");
    }
}
