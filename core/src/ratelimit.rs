//! Client-side cloud API budget: token buckets and window limiters keyed like the cloud's own
//! throttling buckets and quotas.
//!
//! Every provider call goes through [`ApiBudget::acquire`] with the bucket the cloud would
//! charge. User-visible work (create, delete, spec change) runs with [`Priority::User`] and is
//! served before background work (node sync, drift checks, sweeps) whenever a bucket is short.
//! The priority travels in a task-local set by the controller, so providers need not thread it
//! through every call.
//!
//! A window ([`WindowConfig`]) allows `limit` calls in any interval of `period` (sliding).
//! That paces the client against both kinds of server window: if every interval of `period`
//! holds at most `limit` calls, so does every fixed window of the same length (GCE's per-minute
//! quotas), and a sliding server window (Azure's Network RP) is matched exactly.

use std::collections::{HashMap, VecDeque};
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

/// At most `limit` calls in any interval of `period`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowConfig {
    pub limit: u32,
    pub period: Duration,
}

impl WindowConfig {
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }
}

#[derive(Debug)]
struct Bucket {
    config: BucketConfig,
    tokens: f64,
    last: Instant,
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

#[derive(Debug)]
struct Window {
    config: WindowConfig,
    /// When each call of the last `period` was let through, oldest first.
    taken: VecDeque<Instant>,
    /// The cloud refused us anyway (its window counts other clients too): nothing passes
    /// before this.
    blocked_until: Option<Instant>,
}

impl Window {
    fn new(config: WindowConfig) -> Self {
        Self {
            config,
            taken: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Zero when a call may pass now, else how long until a slot frees.
    fn wait(&mut self, now: Instant) -> Duration {
        let period = self.config.period;
        while self
            .taken
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= period)
        {
            self.taken.pop_front();
        }
        let blocked = self
            .blocked_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let full = if self.taken.len() < self.config.limit as usize {
            Duration::ZERO
        } else {
            self.taken.front().map_or(Duration::ZERO, |t| {
                (*t + period).saturating_duration_since(now)
            })
        };
        blocked.max(full)
    }
}

/// Everything limiting one bucket name.
#[derive(Debug, Default)]
struct Limit {
    bucket: Option<Bucket>,
    window: Option<Window>,
    /// User-priority callers currently waiting: background callers yield to them.
    waiting_user: usize,
}

impl Limit {
    /// Zero when one call may pass now (a token and a window slot), else how long to wait.
    fn wait(&mut self, now: Instant) -> Duration {
        let bucket = self.bucket.as_mut().map_or(Duration::ZERO, |b| {
            b.refill(now);
            if b.tokens >= 1.0 {
                Duration::ZERO
            } else {
                b.wait_for_one()
            }
        });
        let window = self.window.as_mut().map_or(Duration::ZERO, |w| w.wait(now));
        bucket.max(window)
    }

    fn take(&mut self, now: Instant) {
        if let Some(b) = self.bucket.as_mut() {
            b.tokens -= 1.0;
        }
        if let Some(w) = self.window.as_mut() {
            w.taken.push_back(now);
        }
    }
}

/// A set of named token buckets and windows. Unknown names are not limited.
#[derive(Debug, Default)]
pub struct ApiBudget {
    limits: Mutex<HashMap<String, Limit>>,
}

impl ApiBudget {
    pub fn new<I, S>(buckets: I) -> Self
    where
        I: IntoIterator<Item = (S, BucketConfig)>,
        S: Into<String>,
    {
        let now = Instant::now();
        let limits = buckets
            .into_iter()
            .map(|(name, config)| {
                let bucket = Bucket {
                    config,
                    tokens: config.capacity,
                    last: now,
                };
                let limit = Limit {
                    bucket: Some(bucket),
                    ..Limit::default()
                };
                (name.into(), limit)
            })
            .collect();
        Self {
            limits: Mutex::new(limits),
        }
    }

    /// Add window limiters, by the same names calls are charged to (a name may have a bucket,
    /// a window, or both; a call needs both).
    pub fn with_windows<I, S>(self, windows: I) -> Self
    where
        I: IntoIterator<Item = (S, WindowConfig)>,
        S: Into<String>,
    {
        {
            let mut map = self.lock();
            for (name, config) in windows {
                map.entry(name.into()).or_default().window = Some(Window::new(config));
            }
        }
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Limit>> {
        self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// No limits at all (tests, or a cloud that publishes none).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Take one token (and one window slot) for each name, waiting as needed. Background
    /// callers wait while a user-priority caller is queued on the same name.
    pub async fn acquire(&self, buckets: &[&str]) {
        for name in buckets {
            self.acquire_one(name).await;
        }
    }

    async fn acquire_one(&self, name: &str) {
        let priority = current_priority();
        // Unregisters a waiting user caller even when its future is dropped mid-wait (a
        // timeout around the provider operation): a leaked count would hold every background
        // caller of this name back for good.
        let mut waiting = UserWaiting {
            budget: self,
            name,
            registered: false,
        };
        loop {
            let wait = {
                let mut map = self.lock();
                let Some(limit) = map.get_mut(name) else {
                    return;
                };
                let now = Instant::now();
                let wait = limit.wait(now);
                let blocked_by_user = priority == Priority::Background && limit.waiting_user > 0;
                if wait.is_zero() && !blocked_by_user {
                    limit.take(now);
                    if waiting.registered {
                        limit.waiting_user -= 1;
                        waiting.registered = false;
                    }
                    return;
                }
                if priority == Priority::User && !waiting.registered {
                    limit.waiting_user += 1;
                    waiting.registered = true;
                }
                // A background caller held back by a user one with nothing to wait for itself
                // looks again shortly.
                wait.max(Duration::from_millis(1))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The cloud throttled us anyway (its bucket is shared with other clients): empty ours so
    /// every caller waits at least `retry_after`; a window lets nothing through before then.
    /// The refused call did not count at the cloud, so its window slot is given back: kept, it
    /// would hold a slot for a whole period (5 minutes on Azure) that the cloud never used, and
    /// the last calls of a full window would wait for the next period.
    pub fn penalize(&self, bucket: &str, retry_after: Duration) {
        let mut map = self.lock();
        let Some(limit) = map.get_mut(bucket) else {
            return;
        };
        let now = Instant::now();
        if let Some(b) = limit.bucket.as_mut() {
            b.refill(now);
            let debt = retry_after.as_secs_f64() * b.config.refill_per_sec;
            b.tokens = b.tokens.min(1.0 - debt);
        }
        if let Some(w) = limit.window.as_mut() {
            // The refused call is among the newest slots taken (it was let through just now).
            w.taken.pop_back();
            let until = now + retry_after;
            w.blocked_until = Some(w.blocked_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Tokens available now (for metrics and tests).
    pub fn available(&self, bucket: &str) -> Option<f64> {
        let mut map = self.lock();
        map.get_mut(bucket)?.bucket.as_mut().map(|b| {
            b.refill(Instant::now());
            b.tokens
        })
    }
}

struct UserWaiting<'a> {
    budget: &'a ApiBudget,
    name: &'a str,
    registered: bool,
}

impl Drop for UserWaiting<'_> {
    fn drop(&mut self) {
        if self.registered
            && let Some(limit) = self.budget.lock().get_mut(self.name)
        {
            limit.waiting_user = limit.waiting_user.saturating_sub(1);
        }
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
    async fn window_allows_limit_per_any_period() {
        let budget = ApiBudget::unlimited()
            .with_windows([("w", WindowConfig::new(3, Duration::from_secs(60)))]);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            budget.acquire(&["w"]).await;
            at.push(start.elapsed().as_secs());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // 3 at once (1 s apart), then each waits for the call 3 back to age out.
        assert_eq!(at, [0, 1, 2, 60, 61, 62, 120]);
        // Any 60 s interval holds at most 3, so every fixed 60 s window of a server does too.
        for (i, t) in at.iter().enumerate().skip(3) {
            assert!(t - at[i - 3] >= 60, "{at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_and_window_of_one_name_both_bind() {
        // Azure-shaped, scaled down: bucket 4 burst / 2 per s, window 6 per 10 s.
        let budget = ApiBudget::new([("w", BucketConfig::new(4.0, 2.0))])
            .with_windows([("w", WindowConfig::new(6, Duration::from_secs(10)))]);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..8 {
            budget.acquire(&["w"]).await;
            at.push(start.elapsed().as_secs_f64());
        }
        // 4 from the burst, 2 more at 2/s (0.5, 1.0 s), then the window: the 7th waits for
        // the 1st to age out (10 s), the 8th for the 2nd (10 s as well).
        let want = [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 10.0, 10.0];
        for (got, want) in at.iter().zip(want) {
            assert!((got - want).abs() < 0.01, "{at:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn user_work_goes_first_through_a_window() {
        let budget = Arc::new(
            ApiBudget::unlimited()
                .with_windows([("w", WindowConfig::new(1, Duration::from_secs(60)))]),
        );
        budget.acquire(&["w"]).await; // the window is full for a minute
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, priority) in [Priority::Background, Priority::Background, Priority::User]
            .into_iter()
            .enumerate()
        {
            let (b, o) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(PRIORITY.scope(priority, async move {
                b.acquire(&["w"]).await;
                o.lock().unwrap().push((i, Instant::now()));
            })));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(order[0].0, 2, "the user call goes first");
        // One per minute after that.
        assert!(order[1].1 - order[0].1 >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_user_wait_does_not_block_background_work() {
        let budget = Arc::new(
            ApiBudget::unlimited()
                .with_windows([("w", WindowConfig::new(1, Duration::from_secs(60)))]),
        );
        budget.acquire(&["w"]).await;
        // A user call gives up after 10 s (a timeout around the provider operation).
        let user = PRIORITY.scope(Priority::User, budget.acquire(&["w"]));
        assert!(
            tokio::time::timeout(Duration::from_secs(10), user)
                .await
                .is_err()
        );
        let start = Instant::now();
        let background = PRIORITY.scope(Priority::Background, budget.acquire(&["w"]));
        tokio::time::timeout(Duration::from_secs(120), background)
            .await
            .expect("background work starved by a user caller that is gone");
        assert_eq!(start.elapsed(), Duration::from_secs(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_call_gives_its_window_slot_back() {
        let budget = ApiBudget::unlimited()
            .with_windows([("w", WindowConfig::new(2, Duration::from_secs(300)))]);
        budget.acquire(&["w"]).await;
        budget.acquire(&["w"]).await;
        // The cloud refused the second call: one slot is free again after the penalty.
        budget.penalize("w", Duration::from_secs(1));
        let start = Instant::now();
        budget.acquire(&["w"]).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // Now the window is full until the first call ages out.
        budget.acquire(&["w"]).await;
        assert_eq!(start.elapsed(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn penalize_blocks_a_window() {
        let budget = ApiBudget::unlimited()
            .with_windows([("w", WindowConfig::new(100, Duration::from_secs(60)))]);
        budget.penalize("w", Duration::from_secs(3));
        let start = Instant::now();
        budget.acquire(&["w"]).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
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
