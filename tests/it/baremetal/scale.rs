//! Bare-metal allocation under contention and at scale: racing controllers, a restart in the middle of 1,000 allocations.

use super::*;

#[tokio::test]
async fn two_controllers_racing_never_hand_out_one_address_twice() {
    let world = bm_world(&["192.0.2.0/26"]).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    // Two controllers (classes a and b), each with its own memory, both starting at the
    // pool's first address: only the claims keep them from handing out one address twice.
    for i in 0..40 {
        let mut svc = bare_service(&format!("s{i}"));
        let class = if i % 2 == 0 {
            "example.com/a"
        } else {
            "example.com/b"
        };
        svc.spec.as_mut().unwrap().load_balancer_class = Some(class.to_string());
        api.create(&PostParams::default(), &svc).await.unwrap();
    }
    let start = |class: &'static str| {
        let w = &world;
        async move {
            let client = client_for(&w.kubeconfig).await;
            let metrics = Arc::new(Metrics::new());
            let ctx = ProviderContext::new(Arc::new(ApiBudget::unlimited()), metrics.clone());
            let provider = BareMetalProvider::new(client.clone(), ctx);
            let mut config = test_config();
            config.load_balancer_class = Some(class.to_string());
            config.claim_unclassed = false;
            // Distinct cluster names: with one name, each controller takes the other's
            // Services (a record of "its" cluster, a class not its own) for ones it must clean
            // up, and releases their addresses.
            config.cluster_name = format!("test-{}", &class[class.len() - 1..]);
            start_controller_with(client, provider, config, metrics).await
        }
    };
    let (a, b) = tokio::join!(start("example.com/a"), start("example.com/b"));
    let ips = eventually(Duration::from_secs(20), "40 addresses", || {
        let c = world.client.clone();
        async move {
            let ips = all_ips(&c).await;
            (ips.len() == 40).then_some(ips)
        }
    })
    .await;
    let unique: HashSet<&String> = ips.values().collect();
    assert_eq!(unique.len(), 40, "duplicate addresses: {ips:?}");
    let held: HashSet<String> = claims(&world.client)
        .await
        .iter()
        .map(|c| c.spec.address.clone())
        .collect();
    assert_eq!(
        held,
        ips.values().cloned().collect(),
        "every published address is claimed once"
    );
    // They really raced: some create met the other's claim (AlreadyExists, counted Conflict).
    let mut conflicts = 0;
    for ctl in [&a, &b] {
        let text = reqwest::get(&ctl.metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        conflicts += text
            .lines()
            .filter(|l| {
                l.contains("operation=\"CreateClaim\"") && l.contains("result=\"Conflict\"")
            })
            .count();
    }
    assert!(
        conflicts > 0,
        "the controllers never collided; the test proves nothing"
    );
    a.stop().await;
    b.stop().await;
    world.shutdown().await;
}

#[tokio::test]
async fn restart_in_the_middle_of_1000_allocations() {
    let world = bm_world(&["10.20.0.0/22"]).await;
    let api: Api<Service> = Api::namespaced(world.client.clone(), "default");
    let t0 = std::time::Instant::now();
    futures::stream::iter(0..1000)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &bare_service(&format!("r{i}")))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    eprintln!("created 1000 Services in {:?}", t0.elapsed());
    let (c1, log1) = counting_client(&world).await;
    let first = start_bm(&world, c1).await;
    // Cheap progress probe: the claim count (a one-item page says how many remain); a full
    // list of 1,000 Services every poll costs more CPU than the allocations being watched.
    slowly(Duration::from_secs(30), "300 claims", || {
        let api: Api<IPAddressClaim> = Api::all(world.client.clone());
        async move {
            let page = api.list(&ListParams::default().limit(1)).await.ok()?;
            let n = page.items.len() as i64 + page.metadata.remaining_item_count.unwrap_or(0);
            (n >= 300).then_some(())
        }
    })
    .await;
    eprintln!("300 addresses after {:?}", t0.elapsed());
    first.kill();
    eprintln!("calls of the first controller: {:?}", log1.lock().unwrap());
    let before = all_ips(&world.client).await;
    assert!(
        before.len() < 1000,
        "finished before the restart; the test proves nothing"
    );
    let (c2, log2) = counting_client(&world).await;
    let second = start_bm(&world, c2).await;
    slowly(Duration::from_secs(60), "1000 claims", || {
        let api: Api<IPAddressClaim> = Api::all(world.client.clone());
        async move {
            let page = api.list(&ListParams::default().limit(1)).await.ok()?;
            let n = page.items.len() as i64 + page.metadata.remaining_item_count.unwrap_or(0);
            (n >= 1000).then_some(())
        }
    })
    .await;
    let after = slowly(Duration::from_secs(30), "1000 addresses", || {
        let c = world.client.clone();
        async move {
            let ips = all_ips(&c).await;
            (ips.len() == 1000).then_some(ips)
        }
    })
    .await;
    for (name, ip) in &before {
        assert_eq!(
            after.get(name),
            Some(ip),
            "{name} lost its address across the restart"
        );
    }
    eprintln!(
        "1000 after {:?}; calls of the second controller: {:?}",
        t0.elapsed(),
        log2.lock().unwrap()
    );
    // No list of claims per allocation (each one scans every claim on the API server): one
    // load at start, then the pool status pass every 2 s.
    for (who, log) in [("first", &log1), ("second", &log2)] {
        let lists = log
            .lock()
            .unwrap()
            .get("LIST ipaddressclaims")
            .copied()
            .unwrap_or(0);
        assert!(lists <= 40, "{who} controller listed claims {lists} times");
    }
    let unique: HashSet<&String> = after.values().collect();
    assert_eq!(unique.len(), 1000, "duplicate addresses");
    let held = claims(&world.client).await;
    assert_eq!(held.len(), 1000, "one claim per address, none leaked");
    second.stop().await;
    world.shutdown().await;
}
