//! Client-side cloud API budget: token buckets keyed like the cloud's own throttling buckets.
//!
//! Every provider call goes through [`ApiBudget::acquire`] with the bucket the cloud would
//! charge. User-visible work (create, delete, spec change) runs with [`Priority::User`] and is
//! served before background work (node sync, drift checks, sweeps) whenever a bucket is short.
//! The priority travels in a task-local set by the controller, so providers need not thread it
//! through every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Background: node sync, drift check, orphan sweep.
    Background,
    /// A user is waiting: create, delete, spec change.
    User,
}

tokio::task_local! {
    /// The priority of the work the current task does for the controller.
    pub static PRIORITY: Priority;
}

/// The priority of the current task (User when none was set: an unlabelled call is never
/// starved behind background work).
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::User)
}

/// Size and refill of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketConfig {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

impl BucketConfig {
    pub const fn new(capacity: f64, refill_per_sec: f64) -> Self {
        Self {
            capacity,
            refill_per_sec,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    config: BucketConfig,
    tokens: f64,
    last: Instant,
    /// User-priority callers currently waiting: background callers yield to them.
    waiting_user: usize,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.config.refill_per_sec).min(self.config.capacity);
        self.last = now;
    }

    /// How long until one token is there.
    fn wait_for_one(&self) -> Duration {
        if self.config.refill_per_sec <= 0.0 {
            return Duration::from_secs(1);
        }
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.config.refill_per_sec).max(Duration::from_millis(1))
    }
}

/// A set of named token buckets. Unknown bucket names are not limited.
#[derive(Debug, Default)]
pub struct ApiBudget {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl ApiBudget {
    pub fn new<I, S>(buckets: I) -> Self
    where
        I: IntoIterator<Item = (S, BucketConfig)>,
        S: Into<String>,
    {
        let now = Instant::now();
        let buckets = buckets
            .into_iter()
            .map(|(name, config)| {
                let bucket = Bucket {
                    config,
                    tokens: config.capacity,
                    last: now,
                    waiting_user: 0,
                };
                (name.into(), bucket)
            })
            .collect();
        Self {
            buckets: Mutex::new(buckets),
        }
    }

    /// No limits at all (tests, or a cloud that publishes none).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Take one token from each named bucket, waiting as needed. Background callers wait while
    /// a user-priority caller is queued on the same bucket.
    pub async fn acquire(&self, buckets: &[&str]) {
        for name in buckets {
            self.acquire_one(name).await;
        }
    }

    async fn acquire_one(&self, name: &str) {
        let priority = current_priority();
        let mut registered = false;
        loop {
            let wait = {
                let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                let Some(bucket) = map.get_mut(name) else {
                    return;
                };
                bucket.refill(Instant::now());
                let blocked_by_user = priority == Priority::Background && bucket.waiting_user > 0;
                if bucket.tokens >= 1.0 && !blocked_by_user {
                    bucket.tokens -= 1.0;
                    if registered {
                        bucket.waiting_user -= 1;
                    }
                    return;
                }
                if priority == Priority::User && !registered {
                    bucket.waiting_user += 1;
                    registered = true;
                }
                bucket.wait_for_one()
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The cloud throttled us anyway (its bucket is shared with other clients): empty ours so
    /// every caller waits at least `retry_after`.
    pub fn penalize(&self, bucket: &str, retry_after: Duration) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get_mut(bucket) {
            b.refill(Instant::now());
            let debt = retry_after.as_secs_f64() * b.config.refill_per_sec;
            b.tokens = b.tokens.min(1.0 - debt);
        }
    }

    /// Tokens available now (for metrics and tests).
    pub fn available(&self, bucket: &str) -> Option<f64> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(bucket).map(|b| {
            b.refill(Instant::now());
            b.tokens
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_rate() {
        let budget = ApiBudget::new([("w", BucketConfig::new(5.0, 10.0))]);
        let start = Instant::now();
        for _ in 0..25 {
            budget.acquire(&["w"]).await;
        }
        // 5 from the burst, 20 more at 10/s = 2 s.
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_bucket_is_free() {
        let budget = ApiBudget::new([("w", BucketConfig::new(1.0, 1.0))]);
        let start = Instant::now();
        for _ in 0..100 {
            budget.acquire(&["other"]).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn user_work_goes_first() {
        let budget = Arc::new(ApiBudget::new([("w", BucketConfig::new(1.0, 1.0))]));
        budget.acquire(&["w"]).await; // drain
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (b, o) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(PRIORITY.scope(
                Priority::Background,
                async move {
                    b.acquire(&["w"]).await;
                    o.lock().unwrap().push(format!("bg{i}"));
                },
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (b, o) = (budget.clone(), order.clone());
        tasks.push(tokio::spawn(PRIORITY.scope(Priority::User, async move {
            b.acquire(&["w"]).await;
            o.lock().unwrap().push("user".to_string());
        })));
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(order.lock().unwrap()[0], "user");
    }

    #[tokio::test(start_paused = true)]
    async fn penalize_delays_everyone() {
        let budget = ApiBudget::new([("w", BucketConfig::new(10.0, 10.0))]);
        budget.penalize("w", Duration::from_secs(2));
        let start = Instant::now();
        budget.acquire(&["w"]).await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
}
