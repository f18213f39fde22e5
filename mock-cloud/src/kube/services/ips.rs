//! ClusterIP allocation from `--service-cluster-ip-range`. Upstream keeps one `IPAddress`
//! object per allocated IP; here an in-memory bitmap over the range gives the same answers
//! (uniqueness, static/dynamic bands, error texts) at a fraction of the cost.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rand::rngs::StdRng;

use super::bitmap::BandedBitmap;

/// Never track more than 2^20 addresses (the apiserver refuses larger ranges anyway).
const MAX_SLOTS: u128 = 1 << 20;
/// The legacy IPv6 bitmap caps at 65536 entries; keep that for IPv6 ranges.
const MAX_SLOTS_V6: u128 = 1 << 16;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    NotInRange { ip: String, range: String },
    #[error("provided IP is already allocated")]
    Allocated,
    #[error("range is full")]
    Full,
}

/// KEP-3070: `min(max(16, cidrSize/16), 256)`, no static band for ranges of 16 or fewer.
pub fn static_band_size(cidr_size: u128) -> usize {
    if cidr_size <= 16 {
        0
    } else {
        (cidr_size / 16).clamp(16, 256) as usize
    }
}

#[derive(Debug)]
pub struct IpAllocator {
    net: IpNet,
    /// The address at slot 0 (network address + 1).
    first: u128,
    bits: BandedBitmap,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl IpAllocator {
    pub fn new(net: IpNet) -> Self {
        let net = net.trunc();
        let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
        let cidr_size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        let usable = match net {
            // Neither the network nor the broadcast address is handed out.
            IpNet::V4(_) => cidr_size.saturating_sub(2).min(MAX_SLOTS),
            IpNet::V6(_) => cidr_size.saturating_sub(1).min(MAX_SLOTS_V6),
        };
        let usable = usable as usize;
        Self {
            net,
            first: to_u128(net.network()) + 1,
            bits: BandedBitmap::new(usable, static_band_size(cidr_size).min(usable)),
        }
    }

    /// `IPv4` or `IPv6`, as `spec.ipFamilies` spells it.
    pub fn family(&self) -> &'static str {
        match self.net {
            IpNet::V4(_) => "IPv4",
            IpNet::V6(_) => "IPv6",
        }
    }

    pub fn cidr(&self) -> String {
        self.net.to_string()
    }

    fn addr_at(&self, i: usize) -> IpAddr {
        let v = self.first + i as u128;
        match self.net {
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }

    fn index(&self, ip: IpAddr) -> Option<usize> {
        if ip.is_ipv4() != matches!(self.net, IpNet::V4(_)) || !self.net.contains(&ip) {
            return None;
        }
        let i = usize::try_from(to_u128(ip).checked_sub(self.first)?).ok()?;
        (i < self.bits.size()).then_some(i)
    }

    fn parse(&self, ip: &str) -> Result<IpAddr, IpError> {
        ip.parse::<IpAddr>().map_err(|_| IpError::NotInRange {
            ip: ip.to_string(),
            range: self.cidr(),
        })
    }

    /// What `allocate` would answer, without taking the address.
    pub fn check(&self, ip: &str) -> Result<usize, IpError> {
        let addr = self.parse(ip)?;
        let i = self.index(addr).ok_or_else(|| IpError::NotInRange {
            ip: addr.to_string(),
            range: self.cidr(),
        })?;
        if self.bits.has(i) {
            Err(IpError::Allocated)
        } else {
            Ok(i)
        }
    }

    pub fn allocate(&mut self, ip: &str) -> Result<(), IpError> {
        let i = self.check(ip)?;
        self.bits.set(i);
        Ok(())
    }

    pub fn allocate_next(&mut self, rng: &mut StdRng) -> Result<IpAddr, IpError> {
        let i = self.bits.pick_next(rng).ok_or(IpError::Full)?;
        self.bits.set(i);
        Ok(self.addr_at(i))
    }

    /// The placeholder a dry-run dynamic allocation reports: the network address.
    pub fn dry_run_placeholder(&self) -> IpAddr {
        self.net.network()
    }

    /// Releasing a free, foreign or malformed address is a silent no-op.
    pub fn release(&mut self, ip: &str) {
        if let Some(i) = self.parse(ip).ok().and_then(|a| self.index(a)) {
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

    fn alloc(cidr: &str) -> IpAllocator {
        IpAllocator::new(cidr.parse().expect("cidr"))
    }

    #[test]
    fn static_bands_match_kep_3070() {
        for (cidr, want) in [
            ("10.96.0.0/28", 0usize),
            ("10.96.0.0/24", 16),
            ("10.96.0.0/20", 256),
            ("10.96.0.0/12", 256),
        ] {
            let a = alloc(cidr);
            let net: IpNet = cidr.parse().expect("cidr");
            let size = 1u128 << (32 - net.prefix_len());
            assert_eq!(static_band_size(size), want, "{cidr}");
            assert_eq!(a.family(), "IPv4");
        }
    }

    #[test]
    fn slash_24_dynamic_skips_static_band_and_edges() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut a = alloc("10.96.0.0/24");
        let mut got = Vec::new();
        for _ in 0..238 {
            let ip = a.allocate_next(&mut rng).expect("room");
            got.push(ip);
        }
        for ip in &got {
            let last = match ip {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => 0,
            };
            assert!((17..=254).contains(&last), "{ip} outside dynamic band");
        }
        // Then the static band .1-.16, then full.
        for _ in 0..16 {
            let ip = a.allocate_next(&mut rng).expect("room").to_string();
            let last: u8 = ip
                .rsplit('.')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("octet");
            assert!((1..=16).contains(&last), "{ip}");
        }
        assert_eq!(a.allocate_next(&mut rng), Err(IpError::Full));
    }

    #[test]
    fn explicit_allocation_errors() {
        let mut a = alloc("10.96.0.0/16");
        assert_eq!(a.allocate("10.96.0.1"), Ok(()));
        assert_eq!(a.allocate("10.96.0.1"), Err(IpError::Allocated));
        assert_eq!(
            a.allocate("1.1.1.1").map_err(|e| e.to_string()),
            Err("the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16".to_string())
        );
        // Network and broadcast addresses are not in the valid range.
        assert!(matches!(
            a.allocate("10.96.0.0"),
            Err(IpError::NotInRange { .. })
        ));
        assert!(matches!(
            a.allocate("10.96.255.255"),
            Err(IpError::NotInRange { .. })
        ));
        assert_eq!(a.allocate("10.96.255.254"), Ok(()));
        assert_eq!(a.used(), 2);
        a.release("10.96.0.1");
        a.release("10.96.0.1");
        a.release("garbage");
        assert_eq!(a.used(), 1);
        assert_eq!(a.allocate("10.96.0.1"), Ok(()));
    }

    #[test]
    fn ipv6_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut a = alloc("fd00:10:96::/112");
        assert_eq!(a.family(), "IPv6");
        assert_eq!(a.allocate("fd00:10:96::a"), Ok(()));
        let ip = a.allocate_next(&mut rng).expect("room");
        assert!(ip.is_ipv6());
        assert!(matches!(
            a.allocate("10.0.0.1"),
            Err(IpError::NotInRange { .. })
        ));
    }
}
