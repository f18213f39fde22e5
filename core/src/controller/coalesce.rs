//! When a changed set of eligible nodes is handed to node sync ("published").
//!
//! Every published change costs one backend write per load balancer, paced by the cloud's
//! write budget: with 1,000 load balancers and 20 writes/s a pass takes ~50 s. Nodes that
//! join one after another (an autoscaler scale-up, a rolling replacement) would each start
//! a pass, and every write made before the last join has to be made again. So:
//!
//! - a change that removes a node, or changes one (its address), is published as soon as the
//!   node set has been quiet for `debounce` (a burst of removals becomes one write): a load
//!   balancer sending traffic to a node that is gone is an outage;
//! - a change that only adds nodes is held: a join with no recent predecessor for `add_hold`
//!   (it may be the first of a series); while joins keep coming, for 1.2 × the gap between
//!   the last two (at least `debounce`), so the next join of a series lands inside the hold
//!   and the series becomes one write per load balancer, and a quick burst is written one
//!   debounce after its last join;
//! - nothing is held longer than `max_hold` after the first unpublished change, so endless
//!   churn still reaches the load balancers (`max_hold` 0 turns holding off).
//!
//! The trade-off, measured by `frontdesk bench s2`: the last join of a series waits one
//! extra gap before the pass starts (it cannot know it is the last).

use std::time::Duration;

use tokio::time::Instant;

/// What node sync does with the set it has just observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to publish: the observed set is the published one.
    Idle,
    /// Publish the observed set now.
    Publish,
    /// Keep the published set; look again at this instant.
    HoldUntil(Instant),
}

#[derive(Debug)]
pub struct Coalescer {
    debounce: Duration,
    add_hold: Duration,
    max_hold: Duration,
    /// When the observed set last changed, and the gap before that change (only when the
    /// two changes were close enough to be one series).
    last_change: Option<Instant>,
    gap: Option<Duration>,
    /// When the oldest change not yet published was seen.
    first_pending: Option<Instant>,
}

/// What the observation compared: the observed set against the last observed one and
/// against the published one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The observed set differs from the previously observed set.
    pub changed: bool,
    /// The observed set differs from the published set.
    pub pending: bool,
    /// The published set has a node (or a node's addresses) the observed set lacks.
    pub removes: bool,
}

impl Coalescer {
    pub fn new(debounce: Duration, add_hold: Duration, max_hold: Duration) -> Self {
        Self {
            debounce,
            add_hold,
            max_hold,
            last_change: None,
            gap: None,
            first_pending: None,
        }
    }

    pub fn observe(&mut self, now: Instant, o: Observation) -> Decision {
        if o.changed {
            self.gap = self
                .last_change
                .map(|prev| now.saturating_duration_since(prev))
                .filter(|gap| *gap <= self.max_hold);
            self.last_change = Some(now);
        }
        if !o.pending {
            self.first_pending = None;
            return Decision::Idle;
        }
        let last = self.last_change.unwrap_or(now);
        if o.removes || self.max_hold.is_zero() {
            let quiet = last + self.debounce;
            if now >= quiet {
                self.first_pending = None;
                return Decision::Publish;
            }
            return Decision::HoldUntil(quiet);
        }
        let first = *self.first_pending.get_or_insert(now);
        // A join with no recent predecessor may be the first of a series: the add hold.
        // Within a series, 1.2 × the last gap (a burst's short gaps: just the debounce).
        let hold = self
            .gap
            .map_or(self.add_hold, |gap| gap.mul_f64(1.2))
            .max(self.debounce)
            .min(self.max_hold);
        let deadline = (last + hold).min(first + self.max_hold);
        if now >= deadline {
            self.first_pending = None;
            Decision::Publish
        } else {
            Decision::HoldUntil(deadline)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: Observation = Observation {
        changed: true,
        pending: true,
        removes: false,
    };
    const TICK: Observation = Observation {
        changed: false,
        pending: true,
        removes: false,
    };

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn coalescer() -> Coalescer {
        Coalescer::new(s(1.0), s(3.0), s(60.0))
    }

    #[test]
    fn a_lone_join_waits_the_add_hold() {
        let t0 = Instant::now();
        let mut c = coalescer();
        assert_eq!(c.observe(t0, ADD), Decision::HoldUntil(t0 + s(3.0)));
        assert_eq!(
            c.observe(t0 + s(2.9), TICK),
            Decision::HoldUntil(t0 + s(3.0))
        );
        assert_eq!(c.observe(t0 + s(3.0), TICK), Decision::Publish);
    }

    #[test]
    fn removals_wait_only_for_the_debounce() {
        let t0 = Instant::now();
        let mut c = coalescer();
        assert!(matches!(c.observe(t0, ADD), Decision::HoldUntil(_)));
        let removal = Observation {
            removes: true,
            ..ADD
        };
        // Published once the set has been quiet for the debounce, not after the add hold.
        assert_eq!(
            c.observe(t0 + s(0.5), removal),
            Decision::HoldUntil(t0 + s(1.5))
        );
        let still = Observation {
            changed: false,
            ..removal
        };
        assert_eq!(c.observe(t0 + s(1.5), still), Decision::Publish);
    }

    /// Drive a coalescer in 0.25 s steps with joins at the given steps; returns the
    /// instants (seconds from the start) at which it published.
    fn drive(c: &mut Coalescer, joins: &[u32], steps: u32) -> Vec<f64> {
        let t0 = Instant::now();
        let (mut observed, mut published) = (0u32, 0u32);
        let mut out = Vec::new();
        for step in 0..steps {
            let now = t0 + s(f64::from(step) * 0.25);
            let changed = joins.contains(&step);
            if changed {
                observed += 1;
            }
            let o = Observation {
                changed,
                pending: observed != published,
                removes: false,
            };
            if c.observe(now, o) == Decision::Publish {
                published = observed;
                out.push(f64::from(step) * 0.25);
            }
        }
        out
    }

    #[test]
    fn a_series_of_joins_is_held_until_it_stops() {
        // S2: ten joins 6 s apart. The first is published after the add hold (no series is
        // known yet); the rest land inside the previous hold, and are published 1.2 × 6 s
        // after the last (54 s).
        let joins: Vec<u32> = (0..10).map(|k| k * 24).collect();
        let published = drive(&mut coalescer(), &joins, 400);
        assert_eq!(published, vec![3.0, 61.25], "{published:?}");
    }

    #[test]
    fn a_burst_is_one_publication() {
        let published = drive(&mut coalescer(), &[0, 1, 2, 3], 100);
        // Gaps of 0.25 s: the hold is the debounce after the last join.
        assert_eq!(published, vec![1.75]);
    }

    #[test]
    fn endless_churn_is_published_at_the_max_hold() {
        let t0 = Instant::now();
        let mut c = coalescer();
        assert!(matches!(c.observe(t0, ADD), Decision::HoldUntil(_)));
        assert_eq!(c.observe(t0 + s(3.0), TICK), Decision::Publish);
        // Now a join every 5 s, forever: the first unpublished one is at 5 s.
        let mut publish_at = None;
        for k in 1..40 {
            let now = t0 + s(5.0 * k as f64);
            match c.observe(now, ADD) {
                Decision::Publish => {
                    publish_at = Some(now);
                    break;
                }
                Decision::HoldUntil(at) => assert!(at <= t0 + s(65.0), "{k}: {at:?}"),
                Decision::Idle => unreachable!(),
            }
        }
        assert_eq!(publish_at, Some(t0 + s(65.0)));
    }

    #[test]
    fn zero_max_hold_publishes_at_once() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, s(3.0), Duration::ZERO);
        assert_eq!(c.observe(t0, ADD), Decision::Publish);
    }

    #[test]
    fn a_join_long_after_the_last_is_not_part_of_a_series() {
        let t0 = Instant::now();
        let mut c = coalescer();
        assert!(matches!(c.observe(t0, ADD), Decision::HoldUntil(_)));
        assert_eq!(c.observe(t0 + s(3.0), TICK), Decision::Publish);
        let later = t0 + s(600.0);
        assert_eq!(c.observe(later, ADD), Decision::HoldUntil(later + s(3.0)));
    }
}
