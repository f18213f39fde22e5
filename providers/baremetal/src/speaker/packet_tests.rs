#![allow(clippy::unwrap_used)]

use super::*;

const OWN: Mac = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT: Mac = [0x02, 0, 0, 0, 0, 0x99];

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An ARP request as a client sends it (`op` 1 = request, 2 = reply).
fn arp_request(eth_dst: Mac, op: u16, target: &str) -> Vec<u8> {
    let mut f = arp_frame(eth_dst, op, CLIENT, v4("192.0.2.1"), [0; 6], v4(target));
    f.truncate(42);
    f
}

/// A neighbour solicitation from `source` for `target`, with or without the SLLA option.
fn solicitation(source: Ipv6Addr, target: Ipv6Addr, with_slla: bool, hop_limit: u8) -> Vec<u8> {
    let mut icmp = vec![NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    if with_slla {
        icmp.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        icmp.extend_from_slice(&CLIENT);
    }
    let dst = solicited_node(target);
    let sum = icmpv6_checksum(source, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = ethernet(multicast_mac(dst), CLIENT, ETHERTYPE_IPV6, 0);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6, hop_limit]);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn arp_requests_are_parsed_and_everything_else_ignored() {
    let want = Some(Query::Arp {
        sender_mac: CLIENT,
        sender_ip: v4("192.0.2.1"),
        target: v4("192.0.2.10"),
    });
    let cases: Vec<(&str, Vec<u8>, Option<Query>)> = vec![
        (
            "broadcast request",
            arp_request(BROADCAST, 1, "192.0.2.10"),
            want.clone(),
        ),
        (
            "unicast to us",
            arp_request(OWN, 1, "192.0.2.10"),
            want.clone(),
        ),
        (
            "unicast to another MAC",
            arp_request([2, 0, 0, 0, 0, 7], 1, "192.0.2.10"),
            None,
        ),
        ("a reply", arp_request(BROADCAST, 2, "192.0.2.10"), None),
        (
            "our own frame",
            arp_frame(
                BROADCAST,
                1,
                OWN,
                v4("192.0.2.10"),
                [0; 6],
                v4("192.0.2.10"),
            ),
            None,
        ),
        (
            "truncated",
            arp_request(BROADCAST, 1, "192.0.2.10")[..30].to_vec(),
            None,
        ),
        ("empty", vec![], None),
    ];
    for (name, frame, want) in cases {
        assert_eq!(parse(&frame, OWN), want, "{name}");
    }
}

#[test]
fn arp_reply_answers_the_requester_from_the_address() {
    let f = arp_reply(OWN, v4("192.0.2.10"), CLIENT, v4("192.0.2.1"));
    assert_eq!(f.len(), 60);
    assert_eq!(&f[0..6], &CLIENT, "unicast back");
    assert_eq!(&f[6..12], &OWN);
    assert_eq!(&f[20..22], &[0, 2], "op reply");
    assert_eq!(&f[22..28], &OWN, "sender hardware = our MAC");
    assert_eq!(
        &f[28..32],
        &[192, 0, 2, 10],
        "sender protocol = the address"
    );
    assert_eq!(&f[32..38], &CLIENT);
    assert_eq!(&f[38..42], &[192, 0, 2, 1]);
}

#[test]
fn gratuitous_arp_is_a_broadcast_request_and_reply_for_the_address() {
    let [req, rep] = gratuitous_arp(OWN, v4("192.0.2.10"));
    for (f, op) in [(&req, 1u8), (&rep, 2u8)] {
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(f[21], op);
        assert_eq!(&f[28..32], &[192, 0, 2, 10]);
        assert_eq!(&f[38..42], &[192, 0, 2, 10], "target = sender");
    }
}

#[test]
fn solicitations_are_parsed_with_their_link_layer_option() {
    let client = v6("fe80::99");
    let target = v6("2001:db8::10");
    let cases: Vec<(&str, Vec<u8>, Option<Query>)> = vec![
        (
            "with SLLA",
            solicitation(client, target, true, 255),
            Some(Query::Ndp {
                eth_src: CLIENT,
                source: client,
                source_ll: Some(CLIENT),
                target,
            }),
        ),
        (
            "duplicate detection (no source, no SLLA)",
            solicitation(Ipv6Addr::UNSPECIFIED, target, false, 255),
            Some(Query::Ndp {
                eth_src: CLIENT,
                source: Ipv6Addr::UNSPECIFIED,
                source_ll: None,
                target,
            }),
        ),
        (
            "hop limit below 255 (forwarded: must be ignored)",
            solicitation(client, target, true, 64),
            None,
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(parse(&frame, OWN), want, "{name}");
    }
}

#[test]
fn advertisements_carry_a_valid_checksum_flags_and_our_mac() {
    let target = v6("2001:db8::10");
    let client = v6("fe80::99");
    let na = answer_solicitation(OWN, target, CLIENT, client, Some(CLIENT));
    assert_eq!(&na[0..6], &CLIENT);
    let ip = &na[14..];
    assert_eq!(ip[7], 255, "hop limit");
    assert_eq!(ipv6_at(ip, 24), Some(client));
    let icmp = &ip[40..];
    assert_eq!(icmp[0], NEIGHBOR_ADVERT);
    assert_eq!(icmp[4], FLAG_SOLICITED | FLAG_OVERRIDE);
    assert_eq!(ipv6_at(icmp, 8), Some(target));
    assert_eq!(&icmp[24..26], &[OPT_TARGET_LL, 1]);
    assert_eq!(&icmp[26..32], &OWN, "target link-layer address");
    assert_eq!(
        icmpv6_checksum(target, client, icmp),
        0,
        "checksum verifies"
    );

    let un = unsolicited_advert(OWN, target);
    assert_eq!(&un[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(un[14 + 40 + 4], FLAG_OVERRIDE, "Override, not Solicited");
    assert_eq!(icmpv6_checksum(target, ALL_NODES, &un[54..]), 0);

    let dad = answer_solicitation(OWN, target, CLIENT, Ipv6Addr::UNSPECIFIED, None);
    assert_eq!(dad, un, "duplicate detection is answered to all nodes");
}

#[test]
fn solicited_node_groups() {
    assert_eq!(
        solicited_node(v6("2001:db8::12:3456")),
        v6("ff02::1:ff12:3456")
    );
    assert_eq!(
        multicast_mac(v6("ff02::1:ff12:3456")),
        [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]
    );
}
