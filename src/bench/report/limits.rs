//! The lower-bound math: what the profile's buckets and windows allow a number of calls,
//! and which limit binds.

use std::collections::BTreeMap;

use frontdesk_mock_cloud::faults::{
    BUCKET_MUTATE, BUCKET_READ, CallRecord, FaultConfig, Latency, WindowKind, WindowSpec,
};

/// The profile's numbers a bound is computed from.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// (burst, refill per second) of the mutating bucket; `None` = unlimited.
    pub writes: Option<(f64, f64)>,
    pub reads: Option<(f64, f64)>,
    /// Window limiters of the mutating and the read bucket (GCE, Azure).
    pub write_window: Option<WindowSpec>,
    pub read_window: Option<WindowSpec>,
    /// The window operation polls are charged to instead of the read one (GCE). The reads a
    /// scenario counts include the polls, so the read floor uses both windows together.
    pub poll_window: Option<WindowSpec>,
    /// Median latency of one call, seconds.
    pub latency_s: f64,
}

/// Seconds until the `calls`-th call can pass a window that starts empty: the calls fill
/// ⌈calls / limit⌉ windows, and the last of them opens (⌈calls / limit⌉ − 1) periods after
/// the first call. Fixed windows (starting with the first call, the worst phase) and sliding
/// windows give the same floor: the (k·limit + 1)-th call waits for the k-th period.
pub fn window_wait(window: &WindowSpec, calls: f64) -> f64 {
    if calls <= 0.0 || window.limit == 0 {
        return 0.0;
    }
    let windows = (calls / window.limit as f64).ceil() - 1.0;
    windows.max(0.0) * window.period_ms as f64 / 1000.0
}

/// A sliding window and a token bucket on the same calls: the k-th call cannot pass before the
/// bucket allows it, nor less than `period` after the (k − limit)-th (any `period` holds at most
/// `limit` calls), so the W-th waits max over j of bucket(W − j·limit) + j·period. E.g. P-azure,
/// 2000 writes: the 1000th passes the bucket at (1000 − 200) / 10 = 80 s, so the 2000th at
/// 80 + 300 = 380 s (the window alone says 300 s, the bucket alone 180 s).
pub fn sliding_with_bucket(window: &WindowSpec, bucket: Option<(f64, f64)>, calls: f64) -> f64 {
    if window.kind != WindowKind::Sliding || window.limit == 0 {
        return window_wait(window, calls);
    }
    let tb = |k: f64| match bucket {
        Some((burst, refill)) if refill > 0.0 => ((k - burst).max(0.0)) / refill,
        _ => 0.0,
    };
    let (limit, period) = (window.limit as f64, window.period_ms as f64 / 1000.0);
    let mut worst = 0.0_f64;
    let mut j = 0.0;
    while calls - j * limit >= 1.0 {
        worst = worst.max(tb(calls - j * limit) + j * period);
        j += 1.0;
    }
    worst
}

/// `fixed 1500 per 60 s`, for the "how" strings.
pub fn window_name(window: &WindowSpec) -> String {
    let kind = match window.kind {
        WindowKind::Fixed => "fixed",
        WindowKind::Sliding => "sliding",
    };
    format!(
        "{kind} {} per {} s",
        window.limit,
        window.period_ms as f64 / 1000.0
    )
}

fn window_how(what: &str, window: &WindowSpec, calls: f64) -> String {
    format!(
        "{what} window ({}): (ceil({calls:.0} / {}) - 1) x {} s",
        window_name(window),
        window.limit,
        window.period_ms as f64 / 1000.0
    )
}

impl Limits {
    pub fn of(config: &FaultConfig) -> Self {
        let bucket = |name: &str| {
            config
                .buckets
                .get(name)
                .map(|b| (b.capacity, b.refill_per_sec))
        };
        let latency_s = match config.latency {
            Latency::None => 0.0,
            Latency::Fixed { ms } => ms as f64 / 1000.0,
            Latency::Lognormal { median_ms, .. } => median_ms as f64 / 1000.0,
            Latency::Uniform { min_ms, max_ms } => (min_ms + max_ms) as f64 / 2000.0,
        };
        Self {
            writes: bucket(BUCKET_MUTATE),
            reads: bucket(BUCKET_READ),
            write_window: config.windows.get(BUCKET_MUTATE).copied(),
            read_window: config.windows.get(BUCKET_READ).copied(),
            poll_window: config
                .operation_read_bucket
                .as_ref()
                .and_then(|b| config.windows.get(b))
                .copied(),
            latency_s,
        }
    }

    /// Seconds `calls` need through a bucket that starts full: (calls − burst) / refill.
    fn drain(bucket: Option<(f64, f64)>, calls: f64) -> f64 {
        match bucket {
            Some((burst, refill)) if refill > 0.0 => ((calls - burst).max(0.0)) / refill,
            _ => 0.0,
        }
    }

    /// The lower bound from every server-side bucket the logged calls were charged to (for
    /// profiles with many buckets, such as AWS's per-action ones): the slowest bucket's
    /// (calls − burst) / refill. Returns (seconds, how it was computed, naming that bucket).
    pub fn bucket_bound(config: &FaultConfig, calls: &[CallRecord]) -> (f64, String) {
        let mut charged: BTreeMap<&str, f64> = BTreeMap::new();
        for c in calls.iter().filter(|c| c.status < 400) {
            for b in &c.buckets {
                *charged.entry(b.as_str()).or_default() += 1.0;
            }
        }
        let mut worst = (0.0, String::from("no bucket binds"));
        for (name, n) in charged {
            if let Some(b) = config.buckets.get(name) {
                let t = Self::drain(Some((b.capacity, b.refill_per_sec)), n);
                if t > worst.0 {
                    worst = (
                        t,
                        format!(
                            "bucket {name}: ({n:.0} calls - {:.0}) / {} per s",
                            b.capacity, b.refill_per_sec
                        ),
                    );
                }
            }
            if let Some(w) = config.windows.get(name) {
                let t = window_wait(w, n);
                if t > worst.0 {
                    worst = (t, window_how(name, w, n));
                }
            }
        }
        worst
    }

    /// One window's floor for the "how" list: alone, or (sliding, with a bucket on the same
    /// calls) together with the bucket, whichever is larger.
    fn window_part(
        &self,
        what: &str,
        w: &WindowSpec,
        bucket: Option<(f64, f64)>,
        calls: f64,
        name: &'static str,
    ) -> (String, &'static str, f64) {
        let alone = window_wait(w, calls);
        let with_bucket = sliding_with_bucket(w, bucket, calls);
        // Within one window's limit the bucket alone is the floor (listed on its own).
        if with_bucket > alone && calls > w.limit as f64 {
            let back = (calls / w.limit as f64).ceil() - 1.0;
            let how = format!(
                "{what} window ({}) after the bucket: call {calls:.0} comes {:.0} s after call {:.0}, which the bucket lets through at the earliest",
                window_name(w),
                back * w.period_ms as f64 / 1000.0,
                calls - back * w.limit as f64,
            );
            (how, name, with_bucket)
        } else {
            (window_how(what, w, calls), name, alone)
        }
    }

    /// calls one after another: the slowest of the write bucket, the read bucket and the
    /// critical path. Returns (seconds, how it was computed).
    ///
    /// With window limiters (GCE, Azure) each window is a further floor, and the "how" ends
    /// with the limit that binds.
    pub fn bound(&self, writes: f64, reads: f64, chain: f64) -> (f64, String) {
        let fmt = |b: Option<(f64, f64)>, calls: f64, name: &str| match b {
            Some((burst, refill)) => {
                format!("{name}: ({calls:.0} - {burst:.0}) / {refill:.0} per s")
            }
            None => format!("{name}: unlimited"),
        };
        let path = chain * self.latency_s;
        let mut parts: Vec<(String, &str, f64)> = vec![
            (
                fmt(self.writes, writes, "writes"),
                "the write bucket",
                Self::drain(self.writes, writes),
            ),
            (
                fmt(self.reads, reads, "reads"),
                "the read bucket",
                Self::drain(self.reads, reads),
            ),
        ];
        if let Some(w) = &self.write_window {
            parts.push(self.window_part("writes", w, self.writes, writes, "the write window"));
        }
        if let Some(w) = &self.read_window {
            match self.poll_window {
                // Reads and polls through two windows of one period: together they pass at
                // most the sum of both limits per period.
                Some(p) if p.period_ms == w.period_ms => {
                    let both = WindowSpec {
                        limit: w.limit + p.limit,
                        ..*w
                    };
                    let how = format!(
                        "reads + operation polls windows ({} + {} per {} s): (ceil({reads:.0} / {}) - 1) x {} s",
                        window_name(w).split(" per ").next().unwrap_or_default(),
                        p.limit,
                        w.period_ms as f64 / 1000.0,
                        both.limit,
                        w.period_ms as f64 / 1000.0
                    );
                    parts.push((how, "the read window", window_wait(&both, reads)));
                }
                _ => {
                    parts.push(self.window_part("reads", w, self.reads, reads, "the read window"));
                }
            }
        }
        parts.push((
            format!(
                "critical path {chain:.0} calls x {:.0} ms",
                self.latency_s * 1000.0
            ),
            "the critical path",
            path,
        ));
        let listed: Vec<String> = parts
            .iter()
            .map(|(how, _, t)| {
                let digits = if how.starts_with("critical") { 2 } else { 1 };
                format!("{how} = {t:.digits$} s")
            })
            .collect();
        let mut how = format!("max of {}", listed.join("; "));
        let (bound, binding) =
            parts.iter().fold(
                (0.0, "nothing"),
                |acc, (_, name, t)| if *t > acc.0 { (*t, name) } else { acc },
            );
        if self.write_window.is_some() || self.read_window.is_some() {
            let binding = match binding {
                "the write window" => self
                    .write_window
                    .map(|w| format!("the write window ({})", window_name(&w))),
                "the read window" => self
                    .read_window
                    .map(|w| format!("the read window ({})", window_name(&w))),
                _ => None,
            }
            .unwrap_or_else(|| binding.to_string());
            how.push_str(&format!("; binds: {binding}"));
        }
        (bound, how)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_from_the_generic_profile() {
        let limits = Limits {
            writes: Some((20.0, 20.0)),
            reads: Some((100.0, 100.0)),
            latency_s: 0.05,
            ..Limits::default()
        };
        let cases = [
            // S1 with 1000 Services at 2 writes + 1 read each.
            (2000.0, 1000.0, 3.0, 99.0),
            // S2: one backend write per LB.
            (1000.0, 0.0, 1.0, 49.0),
            // Within the burst only the critical path is left.
            (10.0, 10.0, 3.0, 0.15),
        ];
        for (w, r, chain, want) in cases {
            let (got, _) = limits.bound(w, r, chain);
            assert!(
                (got - want).abs() < 1e-9,
                "{w} {r} {chain}: {got} != {want}"
            );
        }
        let none = Limits::default();
        assert_eq!(none.bound(1e6, 1e6, 3.0).0, 0.0);
    }

    #[test]
    fn window_floors() {
        let fixed = WindowSpec::fixed(1500, 60_000);
        let sliding = WindowSpec::sliding(1000, 300_000);
        let cases = [
            (fixed, 0.0, 0.0),
            (fixed, 1500.0, 0.0),
            // The 1501st call waits for the next window.
            (fixed, 1501.0, 60.0),
            (fixed, 3000.0, 60.0),
            (fixed, 3001.0, 120.0),
            (sliding, 1000.0, 0.0),
            (sliding, 1001.0, 300.0),
            (sliding, 2000.0, 300.0),
            (sliding, 3000.0, 600.0),
        ];
        for (w, calls, want) in cases {
            assert_eq!(window_wait(&w, calls), want, "{w:?} {calls}");
        }
    }

    #[test]
    fn sliding_window_after_a_bucket() {
        let w = WindowSpec::sliding(1000, 300_000);
        let bucket = Some((200.0, 10.0));
        let cases = [
            (800.0, 60.0),
            (1000.0, 80.0),
            (1001.0, 300.0),
            (2000.0, 380.0),
            (2001.0, 600.0),
        ];
        for (calls, want) in cases {
            let got = sliding_with_bucket(&w, bucket, calls);
            assert!((got - want).abs() < 1e-9, "{calls}: {got} != {want}");
        }
        // Fixed windows and no bucket: the window alone.
        assert_eq!(sliding_with_bucket(&w, None, 2000.0), 300.0);
        let fixed = WindowSpec::fixed(1500, 60_000);
        assert_eq!(sliding_with_bucket(&fixed, bucket, 3000.0), 60.0);
    }

    #[test]
    fn bounds_from_the_gce_and_azure_profiles() {
        use frontdesk_mock_cloud::faults::Profile;
        let gce = Limits::of(&Profile::Gce.config());
        let azure = Limits::of(&Profile::Azure.config());
        // (limits, writes, reads, chain, bound, binding named in the how)
        let cases = [
            // P-gce S1, 1500 Services: 3000 writes, the 1501st in the second minute.
            (
                gce,
                3000.0,
                1500.0,
                3.0,
                60.0,
                "the write window (fixed 1500 per 60 s)",
            ),
            // Within one window only the critical path is left.
            (gce, 40.0, 20.0, 3.0, 0.15, "the critical path"),
            // P-azure S1, 300 Services: the write bucket (600 - 200) / 10.
            (azure, 600.0, 300.0, 3.0, 40.0, "the write bucket"),
            // 1000 Services: 2000 writes. Window alone 300 s, bucket alone 180 s; together the
            // 1000th write passes the bucket at 80 s, so the 2000th at 380 s.
            (
                azure,
                2000.0,
                1000.0,
                3.0,
                380.0,
                "the write window (sliding 1000 per 300 s)",
            ),
            // 4500 writes: the 500th at 30 s, the 4500th 4 periods later.
            (azure, 4500.0, 0.0, 3.0, 1230.0, "the write window"),
            // 1200 writes: the 200th passes at once, the 1200th at 300 s; bucket 100 s.
            (azure, 1200.0, 0.0, 3.0, 300.0, "the write window"),
            // Reads: (1500 - 250) / 25 = 50 s.
            (azure, 0.0, 1500.0, 1.0, 50.0, "the read bucket"),
        ];
        for (limits, w, r, chain, want, binds) in cases {
            let (got, how) = limits.bound(w, r, chain);
            assert!(
                (got - want).abs() < 1e-9,
                "{w} {r}: {got} != {want} ({how})"
            );
            assert!(how.contains(&format!("binds: {binds}")), "{how}");
        }
        // GCE's reads include operation polls, which have their own 1500 per minute.
        let (got, how) = gce.bound(0.0, 3000.0, 1.0);
        assert!((got - 0.05).abs() < 1e-9, "{how}");
        assert!(
            how.contains("reads + operation polls windows (fixed 1500 + 1500 per 60 s)"),
            "{how}"
        );
        assert_eq!(gce.bound(0.0, 3001.0, 1.0).0, 60.0);
        // Azure within the window's limit: the bucket binds, the window adds nothing.
        let (_, how) = azure.bound(600.0, 0.0, 1.0);
        assert!(
            how.contains("(ceil(600 / 1000) - 1) x 300 s = 0.0 s") && !how.contains("after the"),
            "{how}"
        );
        // The generic profile's bound and "how" mention no window.
        let (_, how) = Limits::of(&Profile::Generic.config()).bound(2000.0, 1000.0, 3.0);
        assert!(!how.contains("window") && !how.contains("binds"), "{how}");
    }
}
