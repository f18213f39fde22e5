//! Server-side window limiters: at most `limit` calls per `period`, counted in fixed windows
//! (GCE's per-minute quotas) or over a sliding interval (Azure's Network RP 5-minute limit).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{WindowKind, WindowSpec};

#[derive(Debug)]
pub(super) struct Window {
    spec: WindowSpec,
    /// Fixed: when the current window opened (`None` until the first call) and its count.
    opened: Option<Instant>,
    count: u64,
    /// Sliding: when each call of the last `period` was admitted, oldest first.
    admitted: VecDeque<Instant>,
}

impl Window {
    pub(super) fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            opened: None,
            count: 0,
            admitted: VecDeque::new(),
        }
    }

    /// Bring the state up to `now`: a fixed window that ended is replaced by the one
    /// containing `now` (on the same grid), a sliding window forgets calls older than `period`.
    fn advance(&mut self, now: Instant) {
        let period = self.spec.period();
        match self.spec.kind {
            WindowKind::Fixed => {
                if let Some(opened) = self.opened {
                    let elapsed = now.saturating_duration_since(opened);
                    if elapsed >= period {
                        let whole = elapsed.as_nanos() / period.as_nanos().max(1);
                        let step = period.as_nanos().saturating_mul(whole);
                        let step = Duration::from_nanos(u64::try_from(step).unwrap_or(u64::MAX));
                        self.opened = Some(opened + step);
                        self.count = 0;
                    }
                }
            }
            WindowKind::Sliding => {
                while self
                    .admitted
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= period)
                {
                    self.admitted.pop_front();
                }
            }
        }
    }

    /// `None` when a call may pass now, otherwise how long until a slot frees.
    pub(super) fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.advance(now);
        let period = self.spec.period();
        match self.spec.kind {
            WindowKind::Fixed => match self.opened {
                Some(opened) if self.count >= self.spec.limit => {
                    Some((opened + period).saturating_duration_since(now))
                }
                _ => None,
            },
            WindowKind::Sliding => {
                if (self.admitted.len() as u64) < self.spec.limit {
                    return None;
                }
                // Full: the oldest call frees its slot when it is `period` old.
                self.admitted
                    .front()
                    .map(|oldest| (*oldest + period).saturating_duration_since(now))
            }
        }
    }

    /// Count one call admitted at `now` (after [`Window::wait`] said it may pass).
    pub(super) fn take(&mut self, now: Instant) {
        match self.spec.kind {
            WindowKind::Fixed => {
                if self.opened.is_none() {
                    self.opened = Some(now);
                }
                self.count += 1;
            }
            WindowKind::Sliding => self.admitted.push_back(now),
        }
    }
}
