//! ARP and NDP frames, parsed and built byte by byte (pure; the socket is in `responder`).
//!
//! Only what the responder needs: ARP requests over Ethernet/IPv4, IPv6 neighbour
//! solicitations without extension headers, and the replies, gratuitous ARPs and unsolicited
//! neighbour advertisements it sends.

use std::net::{Ipv4Addr, Ipv6Addr};

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICIT: u8 = 135;
const NEIGHBOR_ADVERT: u8 = 136;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// NA flags (first byte after the ICMPv6 header).
pub const FLAG_SOLICITED: u8 = 0x40;
pub const FLAG_OVERRIDE: u8 = 0x20;
/// `ff02::1`, all nodes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A question the responder may answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// "Who has `target`? Tell `sender_ip` at `sender_mac`."
    Arp {
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
        target: Ipv4Addr,
    },
    /// Neighbour solicitation for `target`; `source` is `::` during duplicate detection.
    Ndp {
        eth_src: Mac,
        source: Ipv6Addr,
        /// The source link-layer address option, if present.
        source_ll: Option<Mac>,
        target: Ipv6Addr,
    },
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn mac_at(b: &[u8], i: usize) -> Option<Mac> {
    b.get(i..i + 6)?.try_into().ok()
}

/// Parse an Ethernet frame received on an interface whose MAC is `own`. Frames that are not a
/// question for us (replies, our own frames, unicast to another MAC, malformed) give `None`.
pub fn parse(frame: &[u8], own: Mac) -> Option<Query> {
    let dst = mac_at(frame, 0)?;
    let src = mac_at(frame, 6)?;
    if src == own {
        return None;
    }
    match u16_at(frame, 12)? {
        ETHERTYPE_ARP => {
            // MetalLB's rule: requests must be broadcast or to our MAC.
            if dst != BROADCAST && dst != own {
                return None;
            }
            let arp = frame.get(14..42)?;
            let well_formed = u16_at(arp, 0)? == 1
                && u16_at(arp, 2)? == ETHERTYPE_IPV4
                && arp[4] == 6
                && arp[5] == 4
                && u16_at(arp, 6)? == ARP_REQUEST;
            if !well_formed {
                return None;
            }
            let sender_mac = mac_at(arp, 8)?;
            let sender_ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
            let target = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
            Some(Query::Arp {
                sender_mac,
                sender_ip,
                target,
            })
        }
        ETHERTYPE_IPV6 => {
            let ip = frame.get(14..)?;
            if ip.len() < 40 || ip[0] >> 4 != 6 || ip[6] != ICMPV6 || ip[7] != 255 {
                return None;
            }
            let source = ipv6_at(ip, 8)?;
            let payload_len = usize::from(u16_at(ip, 4)?);
            let icmp = ip.get(40..40 + payload_len)?;
            if icmp.len() < 24 || icmp[0] != NEIGHBOR_SOLICIT || icmp[1] != 0 {
                return None;
            }
            let target = ipv6_at(icmp, 8)?;
            let source_ll = options(&icmp[24..])
                .find(|(kind, _)| *kind == OPT_SOURCE_LL)
                .and_then(|(_, data)| mac_at(data, 0));
            Some(Query::Ndp {
                eth_src: src,
                source,
                source_ll,
                target,
            })
        }
        _ => None,
    }
}

fn ipv6_at(b: &[u8], i: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = b.get(i..i + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// NDP options as (type, data after the 2-byte header); stops at a malformed one.
fn options(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let kind = *b.first()?;
        let len = usize::from(*b.get(1)?) * 8;
        if len == 0 || len > b.len() {
            return None;
        }
        let (opt, rest) = b.split_at(len);
        b = rest;
        Some((kind, &opt[2..]))
    })
}

fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn arp_frame(eth_dst: Mac, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = ethernet(eth_dst, sha, ETHERTYPE_ARP, 28);
    f.extend_from_slice(&1u16.to_be_bytes());
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    // Pad to the Ethernet minimum (60 bytes without FCS); some stacks drop runts.
    f.resize(60, 0);
    f
}

/// The ARP reply telling `requester` that `address` is at `own`.
pub fn arp_reply(
    own: Mac,
    address: Ipv4Addr,
    requester_mac: Mac,
    requester_ip: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(
        requester_mac,
        ARP_REPLY,
        own,
        address,
        requester_mac,
        requester_ip,
    )
}

/// Gratuitous ARP, request and reply form (MetalLB sends both; hosts differ in which they
/// honour): sender = target = `address`, to broadcast.
pub fn gratuitous_arp(own: Mac, address: Ipv4Addr) -> [Vec<u8>; 2] {
    [
        arp_frame(BROADCAST, ARP_REQUEST, own, address, [0; 6], address),
        arp_frame(BROADCAST, ARP_REPLY, own, address, BROADCAST, address),
    ]
}

/// The Ethernet address of an IPv6 multicast group (`33:33` + low 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast group of `address` (`ff02::1:ffXX:XXXX`).
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// A neighbour advertisement for `target` (sent from `target` itself, so it needs no other
/// address on the interface) with our MAC as target link-layer address.
pub fn neighbor_advert(
    own: Mac,
    target: Ipv6Addr,
    eth_dst: Mac,
    ip_dst: Ipv6Addr,
    flags: u8,
) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOR_ADVERT, 0, 0, 0, flags, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LL, 1]);
    icmp.extend_from_slice(&own);
    let sum = icmpv6_checksum(target, ip_dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = ethernet(eth_dst, own, ETHERTYPE_IPV6, 40 + icmp.len());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6, 255]);
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&ip_dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The answer to a solicitation: unicast to the solicitor with Solicited + Override, or to
/// all nodes (Override only) when the solicitor has no address yet (duplicate detection).
pub fn answer_solicitation(
    own: Mac,
    target: Ipv6Addr,
    eth_src: Mac,
    source: Ipv6Addr,
    source_ll: Option<Mac>,
) -> Vec<u8> {
    if source.is_unspecified() {
        return unsolicited_advert(own, target);
    }
    neighbor_advert(
        own,
        target,
        source_ll.unwrap_or(eth_src),
        source,
        FLAG_SOLICITED | FLAG_OVERRIDE,
    )
}

/// Unsolicited NA with Override, to all nodes: the IPv6 takeover announcement.
pub fn unsolicited_advert(own: Mac, target: Ipv6Addr) -> Vec<u8> {
    neighbor_advert(
        own,
        target,
        multicast_mac(ALL_NODES),
        ALL_NODES,
        FLAG_OVERRIDE,
    )
}

/// RFC 4443 checksum over the IPv6 pseudo-header and the ICMPv6 message.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(icmp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
