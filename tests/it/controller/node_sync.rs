//! Node sync coalescing end to end: nodes join through the sandbox (the simulator registers
//! a Node per cloud instance), the controller holds joins and publishes removals at once, and
//! the mock cloud's call log counts the backend writes.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use super::{OP_BACKENDS, calls_since, lbs, wait_address};
use crate::support::{World, eventually, start_controller, test_config};

const SERVICES: usize = 3;

fn manifest() -> String {
    (0..SERVICES)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-{i}\nspec:\n  type: LoadBalancer\n  selector:\n    app: web-{i}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn backend_writes(w: &World, seq: u64) -> usize {
    calls_since(w, seq)
        .iter()
        .filter(|c| c.operation == OP_BACKENDS && c.status < 400)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_coalesced_and_removals_are_not_held() {
    let w = World::start(2).await;
    let mut config = test_config();
    // Joins 0.4 s apart: each holds the update for the 1 s debounce (more than 1.2 × 0.4 s).
    config.node_sync_debounce_seconds = 1.0;
    config.node_sync_add_hold_seconds = 2.0;
    config.node_sync_max_hold_seconds = 30.0;
    let ctl = start_controller(&w, config.clone()).await;
    w.kubectl_stdin(&["apply", "-f", "-"], &manifest()).await;
    let api: Api<Service> = Api::namespaced(w.client.clone(), "default");
    for i in 0..SERVICES {
        wait_address(&api, &format!("web-{i}")).await;
    }

    // Four nodes join 0.4 s apart: the holds cover the series, so each load balancer gets
    // exactly one backend write carrying all four.
    let seq = w.cloud.generic.faults().next_seq();
    let mut joined = Vec::new();
    for k in 0..4 {
        if k > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        joined.push(w.cloud.instances.add("mock").id);
    }
    // The hold is at least the debounce after the last join (a scheduler can only delay it).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        backend_writes(&w, seq),
        0,
        "a join was written before its hold ended"
    );
    eventually(
        Duration::from_secs(30),
        "every LB has the four new nodes",
        || async {
            let all = lbs(&w);
            (all.len() == SERVICES
                && all
                    .iter()
                    .all(|lb| joined.iter().all(|id| lb.backends.contains(id))))
            .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        backend_writes(&w, seq),
        SERVICES,
        "one backend write per load balancer for the whole series: {:?}",
        calls_since(&w, seq)
    );
    ctl.stop().await;

    // A long add hold, then a join followed by a removal: the removal is not held, and it
    // takes the pending join with it.
    config.node_sync_add_hold_seconds = 60.0;
    config.node_sync_max_hold_seconds = 120.0;
    let ctl = start_controller(&w, config).await;
    // The restarted controller trusts the converged Services; let its caches settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = w.cloud.generic.faults().next_seq();
    let late = w.cloud.instances.add("mock").id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone = joined[0].clone();
    w.cloud.instances.remove(&gone);
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        "removal and join written",
        || async {
            lbs(&w)
                .iter()
                .all(|lb| lb.backends.contains(&late) && !lb.backends.contains(&gone))
                .then_some(())
        },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the removal waited for the 60 s add hold: {:?}",
        started.elapsed()
    );
    assert_eq!(
        backend_writes(&w, seq),
        SERVICES,
        "{:?}",
        calls_since(&w, seq)
    );
    ctl.stop().await;
    w.shutdown().await;
}
