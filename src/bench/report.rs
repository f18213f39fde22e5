//! Output shared by the scenarios: the report (table or JSON), cloud call counting from the
//! mock cloud's call log, progress lines and memory readings; the lower-bound math is in
//! `limits`.

use std::collections::BTreeMap;

use frontdesk_mock_cloud::faults::CallRecord;
use serde_json::{Value, json};

use super::world::KubeCount;

mod limits;
pub use limits::*;

/// Resident memory of this process (kB): (current, peak).
pub fn rss_kib() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Progress goes to stderr so stdout stays the table or the JSON.
pub fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

/// Cloud calls from the mock cloud's call log, as the cloud saw them.
#[derive(Clone, Debug, Default)]
pub struct CloudCalls {
    /// Answered 2xx (or a 404 that is an answer, e.g. GET of a new name), by operation.
    pub by_operation: BTreeMap<String, u64>,
    pub reads: u64,
    pub writes: u64,
    /// Refused with 429.
    pub throttled: u64,
    /// Other failures (5xx, 4xx other than 404).
    pub failed: u64,
}

impl CloudCalls {
    pub fn from_log(log: &[CallRecord]) -> Self {
        let mut c = Self::default();
        for call in log {
            match call.status {
                429 => c.throttled += 1,
                s if s < 300 || s == 404 => {
                    *c.by_operation.entry(call.operation.clone()).or_default() += 1;
                    if call.mutating {
                        c.writes += 1;
                    } else {
                        c.reads += 1;
                    }
                }
                _ => c.failed += 1,
            }
        }
        c
    }

    pub fn op(&self, name: &str) -> u64 {
        self.by_operation.get(name).copied().unwrap_or(0)
    }

    fn json(&self) -> Value {
        json!({
            "reads": self.reads,
            "writes": self.writes,
            "throttled": self.throttled,
            "failed": self.failed,
            "by_operation": self.by_operation,
        })
    }
}

/// A pass/fail check against the targets.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub target: String,
    pub value: String,
    pub ok: bool,
}

impl Check {
    pub fn new(name: &str, target: &str, value: String, ok: bool) -> Self {
        Self {
            name: name.to_string(),
            target: target.to_string(),
            value,
            ok,
        }
    }
}

/// Everything one scenario run prints.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub profile: String,
    pub services: usize,
    pub nodes: usize,
    /// What was measured, e.g. "time until all 1000 Services have an address".
    pub measured_what: String,
    pub measured_s: Option<f64>,
    pub bound_s: Option<f64>,
    pub bound_how: String,
    pub cloud: CloudCalls,
    pub kube: KubeCount,
    /// Peak resident memory (MiB) and how it was measured.
    pub memory_mib: f64,
    pub memory_method: String,
    /// Further figures, in order.
    pub extra: Vec<(String, Value)>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn efficiency(&self) -> Option<f64> {
        match (self.bound_s, self.measured_s) {
            // A zero bound (an unlimited profile) has no meaningful ratio.
            (Some(b), Some(m)) if m > 0.0 && b > 0.0 => Some(b / m),
            _ => None,
        }
    }

    pub fn extra(&mut self, key: &str, value: impl Into<Value>) {
        self.extra.push((key.to_string(), value.into()));
    }

    pub fn json(&self) -> Value {
        let extra: serde_json::Map<String, Value> = self.extra.iter().cloned().collect();
        json!({
            "scenario": self.scenario,
            "profile": self.profile,
            "services": self.services,
            "nodes": self.nodes,
            "measured": self.measured_what,
            "measured_s": self.measured_s,
            "bound_s": self.bound_s,
            "bound_how": self.bound_how,
            "efficiency": self.efficiency(),
            "cloud_calls": self.cloud.json(),
            "kube_calls": {"reads": self.kube.reads, "writes": self.kube.writes, "watches": self.kube.watches},
            "memory_mib": self.memory_mib,
            "memory_method": self.memory_method,
            "extra": extra,
            "checks": self.checks.iter().map(|c| json!({"name": c.name, "target": c.target, "value": c.value, "ok": c.ok})).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }

    pub fn print(&self, as_json: bool) -> anyhow::Result<()> {
        if as_json {
            println!("{}", serde_json::to_string_pretty(&self.json())?);
            return Ok(());
        }
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.2}{unit}"));
        println!(
            "scenario {} | profile {} | {} Services | {} nodes",
            self.scenario, self.profile, self.services, self.nodes
        );
        let mut rows: Vec<(String, String)> = vec![
            ("measured".into(), self.measured_what.clone()),
            ("measured time".into(), opt(self.measured_s, " s")),
            ("lower bound".into(), opt(self.bound_s, " s")),
            ("  computed as".into(), self.bound_how.clone()),
            (
                "efficiency (bound / measured)".into(),
                opt(self.efficiency(), ""),
            ),
            ("cloud reads".into(), self.cloud.reads.to_string()),
            ("cloud writes".into(), self.cloud.writes.to_string()),
        ];
        for (op, n) in &self.cloud.by_operation {
            rows.push((format!("  {op}"), n.to_string()));
        }
        rows.push((
            "throttled calls (429)".into(),
            self.cloud.throttled.to_string(),
        ));
        rows.push(("failed calls (other)".into(), self.cloud.failed.to_string()));
        rows.push((
            "Kubernetes API calls (read/write/watch)".into(),
            format!(
                "{}/{}/{}",
                self.kube.reads, self.kube.writes, self.kube.watches
            ),
        ));
        rows.push(("peak memory".into(), format!("{:.1} MiB", self.memory_mib)));
        rows.push(("  measured as".into(), self.memory_method.clone()));
        for (k, v) in &self.extra {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
                other => other.to_string(),
            };
            rows.push((k.clone(), v));
        }
        for (k, v) in rows {
            println!("  {k:<42} {v}");
        }
        for c in &self.checks {
            println!(
                "  [{}] {}: {} (target {})",
                if c.ok { "ok" } else { "MISSED" },
                c.name,
                c.value,
                c.target
            );
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
        Ok(())
    }
}

/// Whole-process peak (VmHWM) in MiB.
pub fn peak_mib() -> f64 {
    rss_kib().1 as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_classified_by_answer() {
        let rec = |op: &str, mutating: bool, status: u16| CallRecord {
            seq: 1,
            at_ms: 0.0,
            time: String::new(),
            operation: op.into(),
            target: String::new(),
            detail: String::new(),
            mutating,
            status,
            buckets: Vec::new(),
        };
        let c = CloudCalls::from_log(&[
            rec("Get", false, 404),
            rec("Create", true, 201),
            rec("Create", true, 429),
            rec("Backends", true, 500),
        ]);
        assert_eq!((c.reads, c.writes, c.throttled, c.failed), (1, 1, 1, 1));
        assert_eq!(c.op("Create"), 1);
    }
}
