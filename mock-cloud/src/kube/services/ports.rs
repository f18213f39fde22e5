//! The cluster-wide NodePort bitmap (`portallocator`): one bit per port of
//! `--service-node-port-range`, static band at the bottom kept for user-chosen ports.

use rand::rngs::StdRng;

use super::bitmap::BandedBitmap;

/// The allocator's errors, worded exactly as upstream's (clients match on them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    NotInRange(String),
    #[error("provided port is already allocated")]
    Allocated,
    #[error("range is full")]
    Full,
}

/// KEP-3668: `min(max(16, size/32), 128)`, no static band for tiny ranges.
pub fn static_band_size(size: usize) -> usize {
    if size <= 16 {
        0
    } else {
        (size / 32).clamp(16, 128)
    }
}

#[derive(Debug)]
pub struct PortAllocator {
    base: i64,
    range: String,
    bits: BandedBitmap,
}

impl PortAllocator {
    /// `first..=last`, both inclusive like the flag; a reversed range is swapped.
    pub fn new(first: u16, last: u16) -> Self {
        let (first, last) = if first <= last {
            (first, last)
        } else {
            (last, first)
        };
        let size = usize::from(last - first) + 1;
        Self {
            base: i64::from(first),
            range: format!("{first}-{last}"),
            bits: BandedBitmap::new(size, static_band_size(size)),
        }
    }

    fn index(&self, port: i64) -> Option<usize> {
        let i = usize::try_from(port - self.base).ok()?;
        (i < self.bits.size()).then_some(i)
    }

    /// Checks what `allocate` would answer without taking the port.
    pub fn check(&self, port: i64) -> Result<(), PortError> {
        match self.index(port) {
            None => Err(PortError::NotInRange(self.range.clone())),
            Some(i) if self.bits.has(i) => Err(PortError::Allocated),
            Some(_) => Ok(()),
        }
    }

    pub fn allocate(&mut self, port: i64) -> Result<(), PortError> {
        self.check(port)?;
        if let Some(i) = self.index(port) {
            self.bits.set(i);
        }
        Ok(())
    }

    pub fn allocate_next(&mut self, rng: &mut StdRng) -> Result<i64, PortError> {
        let i = self.bits.pick_next(rng).ok_or(PortError::Full)?;
        self.bits.set(i);
        Ok(self.base + i as i64)
    }

    /// Releasing a free or out-of-range port is a silent no-op.
    pub fn release(&mut self, port: i64) {
        if let Some(i) = self.index(port) {
            self.bits.clear(i);
        }
    }

    pub fn used(&self) -> usize {
        self.bits.used()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn static_band_sizes_match_kep_3668() {
        for (first, last, want) in [
            (30000u16, 32767u16, 86usize),
            (30000, 30015, 0),
            (30000, 30099, 16),
            (20000, 29999, 128),
        ] {
            let size = usize::from(last - first) + 1;
            assert_eq!(static_band_size(size), want, "{first}-{last}");
        }
    }

    #[test]
    fn errors_match_upstream() {
        let mut p = PortAllocator::new(30000, 32767);
        assert_eq!(
            p.allocate(8080).map_err(|e| e.to_string()),
            Err(
                "provided port is not in the valid range. The range of valid ports is 30000-32767"
                    .to_string()
            )
        );
        assert_eq!(p.allocate(30000), Ok(()));
        assert_eq!(
            p.allocate(30000).map_err(|e| e.to_string()),
            Err("provided port is already allocated".to_string())
        );
        p.release(30000);
        p.release(30000);
        p.release(1);
        assert_eq!(p.used(), 0);
    }

    #[test]
    fn tiny_range_fills_then_reports_full() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut p = PortAllocator::new(30000, 30015);
        let mut seen: Vec<i64> = (0..16)
            .map(|_| p.allocate_next(&mut rng).expect("room"))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (30000..=30015).collect::<Vec<_>>());
        assert_eq!(p.allocate_next(&mut rng), Err(PortError::Full));
        assert_eq!(PortError::Full.to_string(), "range is full");
    }
}
