//! `sandbox-api`: the sandbox Kubernetes API alone (creates, watch, lists), no controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::BenchArgs;
use super::report::{progress, rss_kib};

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (n_services, n_nodes) = (args.services_or(10_000), args.nodes_or(5_000));
    use frontdesk_mock_cloud::kube::sandbox::{Sandbox, SandboxConfig};
    let (rss_before, _) = rss_kib();
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .context("starting the sandbox API")?;
    let dir = std::env::temp_dir().join(format!("frontdesk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, sandbox.kubeconfig_yaml())?;
    let client = crate::run::kube_client(Some(&kc)).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());

    // One watcher on Services for the whole run, like a controller.
    let seen = Arc::new(AtomicUsize::new(0));
    let watch_seen = seen.clone();
    let watch_api: Api<Service> = Api::all(client.clone());
    let watch = tokio::spawn(async move {
        let stream = watcher(watch_api, watcher::Config::default()).applied_objects();
        let mut stream = std::pin::pin!(stream);
        while let Ok(Some(_)) = stream.try_next().await {
            watch_seen.fetch_add(1, Ordering::Relaxed);
        }
    });

    progress(&format!("creating {} Services", n_services));
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n_services)
        .map(|i| {
            let api = services.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("svc-{i}"), "labels": {"bench": "true"}},
                    "spec": {"selector": {"app": format!("a{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}
                }))?;
                api.create(&PostParams::default(), &svc).await?;
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let svc_secs = start.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        bail!("{failed} Service creates failed; first: {e:#}");
    }

    progress(&format!("creating {} Nodes", n_nodes));
    let start = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n_nodes)
        .map(|i| {
            let api = nodes.clone();
            async move {
                let node: Node = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": format!("bench-node-{i}"), "labels": {"kubernetes.io/hostname": format!("bench-node-{i}")}},
                    "spec": {"providerID": format!("mock:///zone-a/i-bench{i:012}")},
                    "status": {"addresses": [{"type": "InternalIP", "address": format!("10.1.{}.{}", i / 250, i % 250 + 1)}],
                               "conditions": [{"type": "Ready", "status": "True"}]}
                }))?;
                api.create(&PostParams::default(), &node).await?;
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let node_secs = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        bail!("Node creates failed; first: {e:#}");
    }

    progress("waiting for the watcher to see every Service");
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::Relaxed) < n_services && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watched = seen.load(Ordering::Relaxed);

    progress("listing");
    let mut full = Vec::new();
    let mut paged = Vec::new();
    let mut node_list = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = services.list(&ListParams::default()).await?;
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            l.items.len() >= n_services,
            "list returned {} Services",
            l.items.len()
        );
        let t = Instant::now();
        let mut count = 0;
        let mut lp = ListParams::default().limit(500);
        loop {
            let page = services.list(&lp).await?;
            count += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
        paged.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(count >= n_services, "paged list returned {count} Services");
        let t = Instant::now();
        nodes.list(&ListParams::default()).await?;
        node_list.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (rss, peak) = rss_kib();
    watch.abort();
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    let rows = vec![
        ("services created", format!("{}", n_services)),
        (
            "service creates/s",
            format!("{:.0}", n_services as f64 / svc_secs),
        ),
        ("nodes created", format!("{}", n_nodes)),
        (
            "node creates/s",
            format!("{:.0}", n_nodes as f64 / node_secs),
        ),
        ("watch events seen", format!("{watched}")),
        (
            "list all services (median ms)",
            format!("{:.1}", median(&mut full)),
        ),
        (
            "list services, pages of 500 (median ms)",
            format!("{:.1}", median(&mut paged)),
        ),
        (
            "list all nodes (median ms)",
            format!("{:.1}", median(&mut node_list)),
        ),
        (
            "resident memory now (MiB)",
            format!("{:.1}", rss as f64 / 1024.0),
        ),
        (
            "resident memory peak (MiB)",
            format!("{:.1}", peak as f64 / 1024.0),
        ),
        (
            "resident memory at start (MiB)",
            format!("{:.1}", rss_before as f64 / 1024.0),
        ),
    ];
    if args.json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!(
            "scenario: sandbox-api (client and server in one process, {} concurrent requests)",
            args.concurrency
        );
        for (k, v) in rows {
            println!("  {k:<42} {v:>10}");
        }
    }
    Ok(())
}
