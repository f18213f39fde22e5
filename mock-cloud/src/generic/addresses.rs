//! Address pools of the generic cloud. A rolling cursor hands out addresses so a released one
//! is not handed out again right away (like real clouds), and a held one never is.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// External addresses: TEST-NET-3 first (what people expect to see), then the RFC 2544
/// benchmarking range so scale scenarios with thousands of load balancers do not run dry.
pub fn default_external() -> Vec<Ipv4Net> {
    vec![
        Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
        Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
    ]
}

pub fn default_internal() -> Vec<Ipv4Net> {
    vec![Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 0, 0), 16)]
}

#[derive(Debug)]
pub struct Pool {
    nets: Vec<Ipv4Net>,
    cursor: u64,
    held: HashSet<Ipv4Addr>,
}

/// Usable hosts of a net: network and broadcast addresses excluded for prefixes up to /30.
fn host_range(net: &Ipv4Net) -> (u32, u64) {
    let first = u32::from(net.network());
    let size = 1u64 << (32 - u32::from(net.prefix_len()));
    if size >= 4 {
        (first + 1, size - 2)
    } else {
        (first, size)
    }
}

impl Pool {
    pub fn new(nets: Vec<Ipv4Net>) -> Self {
        Self {
            nets,
            cursor: 0,
            held: HashSet::new(),
        }
    }

    fn total(&self) -> u64 {
        self.nets.iter().map(|n| host_range(n).1).sum()
    }

    fn nth(&self, mut idx: u64) -> Option<Ipv4Addr> {
        for net in &self.nets {
            let (first, count) = host_range(net);
            if idx < count {
                return Some(Ipv4Addr::from(first + idx as u32));
            }
            idx -= count;
        }
        None
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.nets.iter().any(|n| {
            let (first, count) = host_range(n);
            let a = u32::from(addr);
            a >= first && u64::from(a - first) < count
        })
    }

    /// The next free address after the cursor, or `None` when the pool is exhausted.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let total = self.total();
        for step in 0..total {
            let idx = (self.cursor + step) % total;
            let addr = self.nth(idx)?;
            if !self.held.contains(&addr) {
                self.cursor = (idx + 1) % total;
                self.held.insert(addr);
                return Some(addr);
            }
        }
        None
    }

    /// Claim a specific address; false when it is already held.
    pub fn claim(&mut self, addr: Ipv4Addr) -> bool {
        self.held.insert(addr)
    }

    pub fn release(&mut self, addr: Ipv4Addr) {
        self.held.remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_in_order_without_reuse() {
        let mut pool = Pool::new(vec![
            "192.0.2.0/30".parse().unwrap(),
            "192.0.2.8/31".parse().unwrap(),
        ]);
        let a = pool.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(192, 0, 2, 1));
        pool.release(a);
        // The cursor moved on: the released address is not handed out again right away.
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        let want: Vec<Ipv4Addr> = ["192.0.2.2", "192.0.2.8", "192.0.2.9", "192.0.2.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(pool.allocate().is_none());
    }

    #[test]
    fn claim_and_contains() {
        let mut pool = Pool::new(default_external());
        let table = [
            ("203.0.113.7", true),
            ("203.0.113.0", false),
            ("198.19.255.254", true),
            ("8.8.8.8", false),
        ];
        for (addr, want) in table {
            assert_eq!(pool.contains(addr.parse().unwrap()), want, "{addr}");
        }
        assert!(pool.claim(Ipv4Addr::new(203, 0, 113, 1)));
        assert!(!pool.claim(Ipv4Addr::new(203, 0, 113, 1)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(203, 0, 113, 2)));
    }
}
