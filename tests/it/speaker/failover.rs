//! Speaker failover in the namespace lab: SIGKILL and graceful stop, never two MACs at once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_kill_and_faster_on_graceful_stop_never_two_macs() {
    let mut net = Net::up().await;
    let v4 = net.service("web", false, &NODES).await;
    let first = winner(v4.into(), &NODES);
    net.wait_answerer(v4, Some(&first), Duration::from_secs(20))
        .await;

    // An IPv6 address the same node wins, and the client's neighbour cache holding the old
    // MAC for both: the takeover's gratuitous ARP and unsolicited NA (Override) must rewrite
    // those entries without the client asking.
    let base: Ipv6Addr = net
        .lab
        .pool_v6()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let v6 = (0..64u128)
        .map(|k| Ipv6Addr::from(u128::from(base) + k))
        .find(|a| winner((*a).into(), &NODES) == first)
        .unwrap();
    net.service_v6("web6", v6).await;
    let client = net.lab.client.ns.clone();
    let old_mac = net.mac(&first);
    for (fam, ip) in [("-4", v4.to_string()), ("-6", v6.to_string())] {
        net.lab
            .exec(
                &client,
                &[
                    "ip", fam, "neigh", "replace", &ip, "lladdr", &old_mac, "dev", "eth0", "nud",
                    "stale",
                ],
            )
            .unwrap();
    }

    let probe = net.lab.probe(v4, Duration::from_millis(20)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = std::time::Instant::now();
    net.stop_speaker(&first, "KILL");
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != first).collect();
    let second = winner(v4.into(), &rest);
    net.wait_answerer(v4, Some(&second), Duration::from_secs(10))
        .await;
    let second6 = winner(v6.into(), &rest);
    for (fam, ip, node) in [
        ("-4", v4.to_string(), &second),
        ("-6", v6.to_string(), &second6),
    ] {
        let want = net.mac(node);
        let lab = &net.lab;
        let client = client.clone();
        eventually(
            Duration::from_secs(5),
            "the client's neighbour entry to follow",
            || {
                let out = lab
                    .exec(&client, &["ip", fam, "neigh", "show", &ip, "dev", "eth0"])
                    .unwrap_or_default();
                let ok = out.to_ascii_lowercase().contains(&want);
                async move { ok.then_some(()) }
            },
        )
        .await;
    }
    let f = lab::failover(
        &probe.replies(),
        &net.mac(&first),
        killed_at - Duration::from_secs(1),
    )
    .expect("a failover in the probe");
    assert_eq!(f.to, net.mac(&second));
    assert_eq!(
        f.overlap, 0,
        "the old MAC answered after the new one: {f:?}"
    );
    assert!(
        f.gap < Duration::from_millis(2500),
        "SIGKILL failover took {:?}",
        f.gap
    );
    eprintln!("SIGKILL failover: {:?}", f.gap);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = std::time::Instant::now();
    net.stop_speaker(&second, "TERM");
    let third = rest
        .iter()
        .copied()
        .find(|n| *n != second)
        .unwrap()
        .to_string();
    net.wait_answerer(v4, Some(&third), Duration::from_secs(10))
        .await;
    let g = lab::failover(
        &probe.replies(),
        &net.mac(&second),
        stopped_at - Duration::from_secs(1),
    )
    .expect("a second failover in the probe");
    assert_eq!(g.to, net.mac(&third));
    assert_eq!(
        g.overlap, 0,
        "the old MAC answered after the new one: {g:?}"
    );
    assert!(
        g.gap < Duration::from_secs(1),
        "graceful failover took {:?}",
        g.gap
    );
    eprintln!("SIGTERM failover: {:?}", g.gap);
    drop(probe);
    net.down().await;
}
