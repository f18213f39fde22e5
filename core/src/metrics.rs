//! Prometheus metrics (text exposition on `/metrics`).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    pub provider: String,
    pub operation: String,
    /// `ok`, or the error class (`Throttled`, `Transient`, ...).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `apply`, `cleanup`, `node_sync`, `drift`, `sweep`.
    pub action: String,
    /// `ok`, `provisioning`, or the error class.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub provider: String,
    pub operation: String,
}

/// Every metric frontdesk exports. Cheap to clone handles; one instance per process.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_errors: Family<ReconcileLabels, Counter>,
    pub cloud_calls: Family<CloudCallLabels, Counter>,
    pub cloud_call_duration: Family<OperationLabels, Histogram>,
    pub queue_depth: Gauge,
    pub managed_services: Gauge,
    pub leader: Gauge,
    pub create_to_address: Histogram,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("frontdesk");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by action and result",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles by action and error class",
            reconcile_errors.clone(),
        );
        let cloud_calls = Family::<CloudCallLabels, Counter>::default();
        registry.register(
            "cloud_calls",
            "Cloud API calls by provider, operation and result",
            cloud_calls.clone(),
        );
        let cloud_call_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "cloud_call_duration_seconds",
            "Cloud API call latency",
            cloud_call_duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Services waiting to be reconciled",
            queue_depth.clone(),
        );
        let managed_services = Gauge::default();
        registry.register(
            "managed_services",
            "LoadBalancer Services this controller currently claims",
            managed_services.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let create_to_address = Histogram::new(exponential_buckets(0.05, 2.0, 16));
        registry.register(
            "service_create_to_address_seconds",
            "Time from Service creation to its first published address",
            create_to_address.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            reconciles,
            reconcile_errors,
            cloud_calls,
            cloud_call_duration,
            queue_depth,
            managed_services,
            leader,
            create_to_address,
        }
    }

    /// Count one cloud call. Providers call this for every request they send.
    pub fn record_cloud_call(&self, provider: &str, operation: &str, result: &str, took: Duration) {
        self.cloud_calls
            .get_or_create(&CloudCallLabels {
                provider: provider.to_string(),
                operation: operation.to_string(),
                result: result.to_string(),
            })
            .inc();
        self.cloud_call_duration
            .get_or_create(&OperationLabels {
                provider: provider.to_string(),
                operation: operation.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Prometheus text exposition (format 0.0.4), what `promtool check metrics` and every
    /// Prometheus version accept.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        openmetrics_to_prometheus_text(&out)
    }
}

/// prometheus-client writes OpenMetrics, where a counter's HELP and TYPE name the family
/// (`x`) and its sample is `x_total`. The classic text format wants HELP/TYPE on `x_total`
/// and knows neither `# UNIT` nor `# EOF`; rewrite just those lines.
fn openmetrics_to_prometheus_text(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_like_their_samples() {
        let m = Metrics::new();
        m.record_cloud_call(
            "mock",
            "GetLoadBalancer",
            "ok",
            std::time::Duration::from_millis(3),
        );
        let text = m.encode();
        assert!(
            text.contains("# TYPE frontdesk_cloud_calls_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# HELP frontdesk_cloud_calls_total "),
            "{text}"
        );
        assert!(
            text.contains("frontdesk_cloud_calls_total{provider=\"mock\""),
            "{text}"
        );
        assert!(
            text.contains("# TYPE frontdesk_cloud_call_duration_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
