//! Pool address ranges: parsing (`CIDR` or `first-last`), membership, counting, overlap.
//! Addresses are kept as `u128` so IPv4 and IPv6 share one arithmetic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use frontdesk_core::provider::IpFamily;
use ipnet::IpNet;

/// One inclusive range of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    pub family: IpFamily,
    pub first: u128,
    pub last: u128,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{value:?}: {why}; use a CIDR like 192.0.2.0/24 or 2001:db8::/120, or a range like \
     192.0.2.10-192.0.2.20"
)]
pub struct RangeError {
    pub value: String,
    pub why: String,
}

pub fn family_of(ip: IpAddr) -> IpFamily {
    match ip {
        IpAddr::V4(_) => IpFamily::IPv4,
        IpAddr::V6(_) => IpFamily::IPv6,
    }
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn from_u128(family: IpFamily, n: u128) -> IpAddr {
    match family {
        // Values of an IPv4 range never exceed u32::MAX (they come from to_u128).
        IpFamily::IPv4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpFamily::IPv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl AddrRange {
    pub fn parse(value: &str) -> Result<AddrRange, RangeError> {
        let err = |why: &str| RangeError {
            value: value.to_string(),
            why: why.to_string(),
        };
        let v = value.trim();
        if v.contains('/') {
            let net: IpNet = v.parse().map_err(|_| err("not a valid CIDR"))?;
            if net.trunc() != net {
                return Err(err(&format!(
                    "host bits are set (the network is {})",
                    net.trunc()
                )));
            }
            let first = net.network();
            let last = net.broadcast();
            return Ok(AddrRange {
                family: family_of(first),
                first: to_u128(first),
                last: to_u128(last),
            });
        }
        let Some((a, b)) = v.split_once('-') else {
            return Err(err("neither a CIDR nor a range"));
        };
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| err("the range's first address is not an IP address"))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| err("the range's last address is not an IP address"))?;
        if family_of(a) != family_of(b) {
            return Err(err("the range mixes IPv4 and IPv6"));
        }
        if to_u128(a) > to_u128(b) {
            return Err(err("the first address is after the last"));
        }
        Ok(AddrRange {
            family: family_of(a),
            first: to_u128(a),
            last: to_u128(b),
        })
    }

    /// Number of addresses (saturating: a full IPv6 /0 does not fit `u128`).
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        family_of(ip) == self.family && (self.first..=self.last).contains(&to_u128(ip))
    }

    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    /// IPv4 addresses ending in `.0` or `.255` inside the range (MetalLB's "buggy" IPs).
    pub fn buggy_count(&self) -> u128 {
        if self.family != IpFamily::IPv4 {
            return 0;
        }
        count_residue(self.first, self.last, 0) + count_residue(self.first, self.last, 255)
    }
}

/// How many `x` in `first..=last` have `x % 256 == r`.
fn count_residue(first: u128, last: u128, r: u128) -> u128 {
    // Numbers <= n with x % 256 == r.
    let upto = |n: u128| if n < r { 0 } else { (n - r) / 256 + 1 };
    upto(last) - if first == 0 { 0 } else { upto(first - 1) }
}

/// True for an IPv4 address ending in `.0` or `.255`.
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<(IpFamily, u128)>)] = &[
            ("192.0.2.0/24", Some((IpFamily::IPv4, 256))),
            ("192.0.2.10-192.0.2.20", Some((IpFamily::IPv4, 11))),
            (" 192.0.2.7/32 ", Some((IpFamily::IPv4, 1))),
            ("2001:db8::/120", Some((IpFamily::IPv6, 256))),
            ("2001:db8::1-2001:db8::4", Some((IpFamily::IPv6, 4))),
            ("10.0.0.0/16", Some((IpFamily::IPv4, 65536))),
            ("192.0.2.1/24", None),
            ("192.0.2.20-192.0.2.10", None),
            ("192.0.2.1-2001:db8::1", None),
            ("192.0.2.1", None),
            ("nope/24", None),
            ("192.0.2.1-x", None),
        ];
        for (input, want) in cases {
            let got = AddrRange::parse(input);
            match want {
                Some((family, size)) => {
                    let r = got.unwrap();
                    assert_eq!((r.family, r.size()), (*family, *size), "{input}");
                }
                None => {
                    let e = got.unwrap_err();
                    assert!(e.to_string().contains("192.0.2.0/24"), "{input}: {e}");
                }
            }
        }
    }

    #[test]
    fn buggy_counts_and_membership() {
        let r = AddrRange::parse("192.0.2.0/24").unwrap();
        assert_eq!(r.buggy_count(), 2);
        let r = AddrRange::parse("10.0.0.0/16").unwrap();
        assert_eq!(r.buggy_count(), 512);
        let r = AddrRange::parse("192.0.2.1-192.0.2.254").unwrap();
        assert_eq!(r.buggy_count(), 0);
        assert!(r.contains(ip("192.0.2.1")) && !r.contains(ip("192.0.2.255")));
        assert!(!r.contains(ip("2001:db8::1")));
        assert!(
            is_buggy(ip("10.0.1.0")) && is_buggy(ip("10.0.1.255")) && !is_buggy(ip("10.0.1.1"))
        );
        let a = AddrRange::parse("192.0.2.0/25").unwrap();
        let b = AddrRange::parse("192.0.2.100-192.0.2.200").unwrap();
        let c = AddrRange::parse("192.0.2.128/25").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&c) && !a.overlaps(&c));
        assert_eq!(
            from_u128(IpFamily::IPv4, to_u128(ip("192.0.2.9"))),
            ip("192.0.2.9")
        );
    }
}
