//! A bitmap over `size` slots with kube-apiserver's two-band dynamic allocation
//! (`randomScanStrategyWithOffset`): dynamic picks start at a random slot of the upper band
//! `[offset, size)` and scan forward wrapping inside that band; only when it is full does the
//! lower band `[0, offset)` serve, again from a random start. Explicit picks may use any slot.
//!
//! Scans skip whole 64-bit words, so even a nearly full /12 costs a few thousand word reads.

use rand::Rng;
use rand::rngs::StdRng;

#[derive(Debug)]
pub struct BandedBitmap {
    words: Vec<u64>,
    size: usize,
    offset: usize,
    used: usize,
    used_lower: usize,
}

impl BandedBitmap {
    pub fn new(size: usize, offset: usize) -> Self {
        let offset = offset.min(size);
        Self {
            words: vec![0; size.div_ceil(64)],
            size,
            offset,
            used: 0,
            used_lower: 0,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn has(&self, i: usize) -> bool {
        i < self.size && self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Marks slot `i` used; false when it already was (or is out of range).
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.size || self.has(i) {
            return false;
        }
        self.words[i / 64] |= 1u64 << (i % 64);
        self.used += 1;
        if i < self.offset {
            self.used_lower += 1;
        }
        true
    }

    /// Frees slot `i`; freeing a free or out-of-range slot is a no-op, as upstream.
    pub fn clear(&mut self, i: usize) {
        if !self.has(i) {
            return;
        }
        self.words[i / 64] &= !(1u64 << (i % 64));
        self.used -= 1;
        if i < self.offset {
            self.used_lower -= 1;
        }
    }

    /// The slot a dynamic allocation would take, without taking it; `None` when full.
    pub fn pick_next(&self, rng: &mut StdRng) -> Option<usize> {
        if self.used >= self.size {
            return None;
        }
        let upper_len = self.size - self.offset;
        let used_upper = self.used - self.used_lower;
        if used_upper < upper_len {
            let start = self.offset + rng.random_range(0..upper_len);
            if let Some(i) = self.scan(start, self.offset, self.size) {
                return Some(i);
            }
        }
        if self.used_lower < self.offset {
            let start = rng.random_range(0..self.offset);
            return self.scan(start, 0, self.offset);
        }
        None
    }

    /// First free slot in `[start, hi)`, then in `[lo, start)`.
    fn scan(&self, start: usize, lo: usize, hi: usize) -> Option<usize> {
        self.first_free(start, hi)
            .or_else(|| self.first_free(lo, start))
    }

    /// First free slot in `[from, to)`.
    fn first_free(&self, from: usize, to: usize) -> Option<usize> {
        let mut i = from;
        while i < to {
            let word = self.words[i / 64];
            let bit = i % 64;
            // Free bits at or above `bit` in this word.
            let free = !word & (u64::MAX << bit);
            if free != 0 {
                let found = (i / 64) * 64 + free.trailing_zeros() as usize;
                return (found < to).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fills_upper_band_before_lower() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = BandedBitmap::new(200, 16);
        for n in 0..184 {
            let i = b.pick_next(&mut rng).expect("room");
            assert!(i >= 16, "allocation {n} took {i} from the lower band");
            assert!(b.set(i));
        }
        for _ in 0..16 {
            let i = b.pick_next(&mut rng).expect("room");
            assert!(i < 16);
            assert!(b.set(i));
        }
        assert_eq!(b.pick_next(&mut rng), None);
        assert_eq!(b.used(), 200);
        b.clear(150);
        assert_eq!(b.pick_next(&mut rng), Some(150));
    }

    #[test]
    fn set_and_clear_are_idempotent() {
        let mut b = BandedBitmap::new(70, 0);
        assert!(b.set(69));
        assert!(!b.set(69));
        assert!(!b.set(70));
        b.clear(69);
        b.clear(69);
        b.clear(1000);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn wraps_inside_the_band() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = BandedBitmap::new(128, 0);
        for i in 0..128 {
            if i != 3 {
                b.set(i);
            }
        }
        for _ in 0..20 {
            assert_eq!(b.pick_next(&mut rng), Some(3));
        }
    }
}
