#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use crate::crd::LabelSelector;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, addrs: &[&str]) -> PoolDef {
    PoolDef {
        name: name.into(),
        ranges: addrs.iter().map(|a| AddrRange::parse(a).unwrap()).collect(),
        auto_assign: true,
        avoid_buggy: false,
        allocation: None,
        deleting: false,
    }
}

fn req(uid: &str) -> ServiceRequest {
    ServiceRequest {
        uid: uid.into(),
        namespace: "default".into(),
        name: format!("svc-{uid}"),
        labels: BTreeMap::new(),
        namespace_labels: BTreeMap::new(),
        families: vec![IpFamily::IPv4],
        policy: FamilyPolicy::SingleStack,
        requested_ips: vec![],
        pool: None,
        sharing_key: None,
        ports: vec![(Protocol::Tcp, 80)],
        backend_key: String::new(),
    }
}

fn alloc_with(pools: Vec<PoolDef>) -> Allocator {
    let mut a = Allocator::default();
    a.set_pools(pools);
    a
}

/// Allocate every planned family and record the claims, like the provider does.
fn allocate(a: &mut Allocator, r: &ServiceRequest) -> Result<Vec<IpAddr>, AllocError> {
    let mut out = Vec::new();
    let mut first_pool: Option<String> = None;
    for (family, want) in Allocator::plan(r)? {
        let c = a.choose(r, family, want, first_pool.as_deref(), &HashSet::new())?;
        let mut users = a.holding(c.ip).map(|h| h.users.clone()).unwrap_or_default();
        users.retain(|u| u.uid != r.uid);
        users.push(User::of(r));
        a.hold(
            c.ip,
            Holding {
                pool: c.pool.clone(),
                sharing_key: r.sharing_key.clone(),
                users,
            },
        );
        first_pool.get_or_insert(c.pool);
        out.push(c.ip);
    }
    Ok(out)
}

#[test]
fn exhaustion_and_counts() {
    let mut a = alloc_with(vec![pool("small", &["192.0.2.10-192.0.2.12"])]);
    let got: Vec<IpAddr> = (0..3)
        .map(|i| allocate(&mut a, &req(&i.to_string())).unwrap()[0])
        .collect();
    assert_eq!(
        got,
        vec![ip("192.0.2.10"), ip("192.0.2.11"), ip("192.0.2.12")]
    );
    let err = allocate(&mut a, &req("x")).unwrap_err();
    assert!(matches!(err, AllocError::Exhausted { .. }));
    assert!(err.to_string().contains("add addresses to a pool"));
    let c = a.counts("small");
    assert_eq!((c.assigned_v4, c.available_v4), (3, 0));
}

#[test]
fn next_fit_holds_a_released_address_back() {
    let mut a = alloc_with(vec![pool("p", &["192.0.2.0/29"])]);
    let first = allocate(&mut a, &req("a")).unwrap()[0];
    allocate(&mut a, &req("b")).unwrap();
    a.release(first);
    // The freed .0 is not handed out again while never-used addresses remain.
    let next = allocate(&mut a, &req("c")).unwrap()[0];
    assert_eq!(next, ip("192.0.2.2"));
}

#[test]
fn avoid_buggy_ips() {
    let mut p = pool("p", &["192.0.2.254-192.0.3.1"]);
    p.avoid_buggy = true;
    let mut a = alloc_with(vec![p]);
    assert_eq!(a.counts("p").available_v4, 2);
    let got: Vec<IpAddr> = (0..2)
        .map(|i| allocate(&mut a, &req(&i.to_string())).unwrap()[0])
        .collect();
    assert_eq!(got, vec![ip("192.0.2.254"), ip("192.0.3.1")]);
    assert!(allocate(&mut a, &req("z")).is_err());
}

#[test]
fn requested_address_table() {
    let mut gold = pool("gold", &["192.0.2.0/28"]);
    gold.auto_assign = false;
    let mut team = pool("team", &["198.51.100.0/28"]);
    team.allocation = Some(ServiceAllocation {
        namespaces: vec!["team-a".into()],
        ..Default::default()
    });
    let mut a = alloc_with(vec![gold, team]);
    let mut holder = req("holder");
    holder.requested_ips = vec![ip("192.0.2.5")];
    allocate(&mut a, &holder).unwrap();

    type Case = (
        &'static str,
        fn(&mut ServiceRequest),
        fn(&Result<Vec<IpAddr>, AllocError>) -> bool,
    );
    let cases: Vec<Case> = vec![
        (
            "free address in a non-autoAssign pool",
            |r| r.requested_ips = vec!["192.0.2.6".parse().unwrap()],
            |g| g.as_ref().unwrap() == &vec!["192.0.2.6".parse::<IpAddr>().unwrap()],
        ),
        (
            "taken address",
            |r| r.requested_ips = vec!["192.0.2.5".parse().unwrap()],
            |g| matches!(g, Err(AllocError::Taken { by, .. }) if by.contains("default/svc-holder")),
        ),
        (
            "outside every pool",
            |r| r.requested_ips = vec!["203.0.113.1".parse().unwrap()],
            |g| matches!(g, Err(AllocError::NotInAnyPool { .. })),
        ),
        (
            "pool the namespace may not use",
            |r| r.requested_ips = vec!["198.51.100.3".parse().unwrap()],
            |g| matches!(g, Err(AllocError::NotAllowed { .. })),
        ),
        (
            "requested pool disagrees",
            |r| {
                r.requested_ips = vec!["192.0.2.7".parse().unwrap()];
                r.pool = Some("team".into());
            },
            |g| matches!(g, Err(AllocError::NotAllowed { .. })),
        ),
        (
            "allowed namespace",
            |r| {
                r.namespace = "team-a".into();
                r.requested_ips = vec!["198.51.100.3".parse().unwrap()];
            },
            |g| g.is_ok(),
        ),
        (
            "no autoAssign pool for default ns",
            |_| {},
            |g| matches!(g, Err(AllocError::NoPool { .. })),
        ),
        (
            "named non-autoAssign pool",
            |r| r.pool = Some("gold".into()),
            |g| {
                g.as_ref()
                    .is_ok_and(|v| v[0] != "192.0.2.5".parse::<IpAddr>().unwrap())
            },
        ),
        (
            "named pool missing",
            |r| r.pool = Some("nope".into()),
            |g| matches!(g, Err(AllocError::NoSuchPool { .. })),
        ),
    ];
    for (i, (name, edit, check)) in cases.into_iter().enumerate() {
        let mut r = req(&format!("case{i}"));
        edit(&mut r);
        let got = allocate(&mut a, &r);
        assert!(check(&got), "{name}: {got:?}");
    }
}

#[test]
fn sharing_table() {
    type Case = (&'static str, fn(&mut ServiceRequest), bool);
    let cases: Vec<Case> = vec![
        (
            "same key, other port",
            |r| r.ports = vec![(Protocol::Tcp, 443)],
            true,
        ),
        (
            "same key, same port other protocol",
            |r| r.ports = vec![(Protocol::Udp, 80)],
            true,
        ),
        ("same key, same port", |_| {}, false),
        (
            "different key",
            |r| {
                r.sharing_key = Some("other".into());
                r.ports = vec![(Protocol::Tcp, 443)];
            },
            false,
        ),
        (
            "no key",
            |r| {
                r.sharing_key = None;
                r.ports = vec![(Protocol::Tcp, 443)];
            },
            false,
        ),
        (
            "local vs cluster traffic policy",
            |r| {
                r.ports = vec![(Protocol::Tcp, 443)];
                r.backend_key = "app=web".into();
            },
            false,
        ),
    ];
    let with_first = || {
        let mut a = alloc_with(vec![pool("p", &["192.0.2.0/28"])]);
        let mut first = req("first");
        first.sharing_key = Some("k".into());
        first.requested_ips = vec![ip("192.0.2.9")];
        allocate(&mut a, &first).unwrap();
        a
    };
    for (name, edit, shares) in cases {
        let mut a = with_first();
        // Requested explicitly: shared or refused.
        let mut r = req("second");
        r.sharing_key = Some("k".into());
        r.requested_ips = vec![ip("192.0.2.9")];
        edit(&mut r);
        let got = allocate(&mut a, &r);
        assert_eq!(got.is_ok(), shares, "{name} (requested): {got:?}");
        if !shares {
            assert!(
                got.unwrap_err().to_string().contains("allow-shared-ip"),
                "{name}"
            );
        }
        // Not requested: a compatible Service joins the shared address, others get their own.
        let mut a = with_first();
        let mut r2 = req("third");
        r2.sharing_key = Some("k".into());
        edit(&mut r2);
        let got = allocate(&mut a, &r2).unwrap();
        assert_eq!(got[0] == ip("192.0.2.9"), shares, "{name} (auto): {got:?}");
    }
}

#[test]
fn dual_stack_table() {
    let both = || pool("both", &["192.0.2.0/28", "2001:db8::/124"]);
    let v4only = || pool("v4", &["198.51.100.0/28"]);
    type Case = (
        &'static str,
        Vec<PoolDef>,
        FamilyPolicy,
        Vec<IpFamily>,
        Result<usize, ()>,
    );
    let cases: Vec<Case> = vec![
        (
            "single",
            vec![both()],
            FamilyPolicy::SingleStack,
            vec![IpFamily::IPv4, IpFamily::IPv6],
            Ok(1),
        ),
        (
            "require",
            vec![both()],
            FamilyPolicy::RequireDualStack,
            vec![IpFamily::IPv6, IpFamily::IPv4],
            Ok(2),
        ),
        (
            "prefer",
            vec![both()],
            FamilyPolicy::PreferDualStack,
            vec![IpFamily::IPv4, IpFamily::IPv6],
            Ok(2),
        ),
        (
            "require without v6",
            vec![v4only()],
            FamilyPolicy::RequireDualStack,
            vec![IpFamily::IPv4, IpFamily::IPv6],
            Err(()),
        ),
    ];
    for (name, pools, policy, families, want) in cases {
        let mut a = alloc_with(pools);
        let mut r = req("d");
        r.policy = policy;
        r.families = families.clone();
        let got = allocate(&mut a, &r);
        match want {
            Ok(n) => {
                let got = got.unwrap();
                assert_eq!(got.len(), n, "{name}");
                assert_eq!(family_of(got[0]), families[0], "{name}: primary first");
            }
            Err(()) => assert!(
                matches!(
                    got,
                    Err(AllocError::NoPool {
                        family: IpFamily::IPv6
                    })
                ),
                "{name}: {got:?}"
            ),
        }
    }
    // The second family comes from the pool of the first when it can.
    let mut a = alloc_with(vec![pool("a-v6", &["2001:db8:1::/124"]), both()]);
    let mut r = req("d");
    r.policy = FamilyPolicy::RequireDualStack;
    r.families = vec![IpFamily::IPv4, IpFamily::IPv6];
    let got = allocate(&mut a, &r).unwrap();
    assert!(got[1].to_string().starts_with("2001:db8::"), "{got:?}");
    // RequireDualStack with only one requested address is refused with the fix.
    r.requested_ips = vec![ip("192.0.2.3")];
    assert!(matches!(
        Allocator::plan(&r),
        Err(AllocError::DualStackRequest { .. })
    ));
}

#[test]
fn priority_and_selectors() {
    let sel = |k: &str, v: &str| LabelSelector {
        match_labels: [(k.to_string(), v.to_string())].into(),
        match_expressions: vec![],
    };
    let mut low = pool("a-low", &["192.0.2.0/28"]);
    low.allocation = Some(ServiceAllocation {
        priority: Some(20),
        ..Default::default()
    });
    let mut high = pool("b-high", &["192.0.2.16/28"]);
    high.allocation = Some(ServiceAllocation {
        priority: Some(10),
        service_selectors: vec![sel("tier", "web")],
        ..Default::default()
    });
    let mut nsel = pool("c-ns", &["192.0.2.32/28"]);
    nsel.allocation = Some(ServiceAllocation {
        priority: Some(1),
        namespace_selectors: vec![sel("env", "prod")],
        ..Default::default()
    });
    let plain = pool("0-plain", &["192.0.2.48/28"]);
    let mut a = alloc_with(vec![low, high, nsel, plain]);

    let mut web = req("web");
    web.labels.insert("tier".into(), "web".into());
    let mut prod = req("prod");
    prod.namespace_labels.insert("env".into(), "prod".into());
    let other = req("other");
    let in_pool = |a: &Allocator, ip: IpAddr| a.holding(ip).unwrap().pool.clone();
    let g = allocate(&mut a, &web).unwrap()[0];
    assert_eq!(in_pool(&a, g), "b-high");
    let g = allocate(&mut a, &prod).unwrap()[0];
    assert_eq!(in_pool(&a, g), "c-ns");
    // Pools with serviceAllocation before pools without, even when named first.
    let g = allocate(&mut a, &other).unwrap()[0];
    assert_eq!(in_pool(&a, g), "a-low");
}

#[test]
fn keeps_address_unless_request_changes() {
    let mut a = alloc_with(vec![
        pool("p", &["192.0.2.0/28"]),
        pool("q", &["198.51.100.0/28"]),
    ]);
    let mut r = req("k");
    let got = allocate(&mut a, &r).unwrap()[0];
    assert!(a.keeps(&r, got));
    // Pool edits and restarts do not move it: a fresh index with the claim keeps it too.
    a.set_pools(vec![pool("q", &["198.51.100.0/28"])]);
    assert!(a.keeps(&r, got));
    r.pool = Some("q".into());
    assert!(!a.keeps(&r, got));
    r.pool = None;
    r.requested_ips = vec![ip("192.0.2.9")];
    assert!(!a.keeps(&r, got));
    assert_eq!(a.held_by("k"), vec![got]);
}

#[test]
fn many_allocations_are_cheap_and_unique() {
    let mut a = alloc_with(vec![pool("big", &["10.0.0.0/16"])]);
    let start = std::time::Instant::now();
    let mut seen = HashSet::new();
    for i in 0..20_000 {
        let g = allocate(&mut a, &req(&i.to_string())).unwrap()[0];
        assert!(seen.insert(g));
    }
    // Next-fit: each choice looks at about one address (a linear scan would take seconds).
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(a.counts("big").assigned_v4, 20_000);
}

#[test]
fn skip_set_moves_past_addresses_taken_elsewhere() {
    let mut a = alloc_with(vec![pool("p", &["192.0.2.0/30"])]);
    let skip: HashSet<IpAddr> = [ip("192.0.2.0"), ip("192.0.2.1")].into();
    let c = a
        .choose(&req("s"), IpFamily::IPv4, None, None, &skip)
        .unwrap();
    assert_eq!(c.ip, ip("192.0.2.2"));
    let mut r = req("s");
    r.requested_ips = vec![ip("192.0.2.0")];
    assert!(matches!(
        a.choose(&r, IpFamily::IPv4, Some(ip("192.0.2.0")), None, &skip),
        Err(AllocError::Taken { .. })
    ));
}

/// A reservation (claim create in flight) keeps other choosers off the address but is nobody's
/// holding: when the create fails, the Service must not find itself "holding" an address no
/// claim backs (that is how two Services once published one address).
#[test]
fn reservation_is_not_a_holding() {
    let mut a = alloc_with(vec![pool("p", &["192.0.2.0/30"])]);
    let r1 = req("u1");
    let c = a
        .choose(&r1, IpFamily::IPv4, None, None, &HashSet::new())
        .unwrap();
    assert!(a.reserve(c.ip));
    assert!(!a.reserve(c.ip), "second reservation of one address");
    assert!(a.held_by("u1").is_empty(), "a reservation is not held");
    assert_eq!(a.counts("p").assigned_v4, 0);
    let other = a
        .choose(&req("u2"), IpFamily::IPv4, None, None, &HashSet::new())
        .unwrap();
    assert_ne!(other.ip, c.ip, "reserved address handed out again");
    let mut want = req("u3");
    want.requested_ips = vec![c.ip];
    let e = a
        .choose(&want, IpFamily::IPv4, Some(c.ip), None, &HashSet::new())
        .unwrap_err();
    assert!(matches!(e, AllocError::Taken { .. }), "{e:?}");
    // The create failed: the address is free again, for anyone.
    a.unreserve(c.ip);
    assert!(a.held_by("u1").is_empty());
    assert!(
        a.choose(&want, IpFamily::IPv4, Some(c.ip), None, &HashSet::new())
            .is_ok()
    );
}
