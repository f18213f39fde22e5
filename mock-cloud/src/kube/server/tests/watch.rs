//! Watches over HTTP: events, shutdown, and a forced expiry (410 Gone).

use std::time::Duration;

use super::*;

#[tokio::test]
async fn watch_over_http() {
    let sb = sandbox().await;
    let rv = sb.store().resource_version();
    call(&sb, "POST", SVCS, &[JSON], &svc("a")).await;
    let w = call(
        &sb,
        "GET",
        &format!("{SVCS}?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        &[],
        "",
    )
    .await;
    assert_eq!(w.header("content-type"), Some("application/json"));
    let ev = w.lines();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (
            ev[0]["type"].as_str(),
            ev[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("a"))
    );
    assert_eq!(ev[0]["object"]["kind"], "Service");
    // RV 0: synthetic ADDED for all (kubernetes + a), Table rendering with headers once.
    let w = call(
        &sb,
        "GET",
        &format!("{SVCS}?watch=1&resourceVersion=0&timeoutSeconds=1"),
        &[TABLE],
        "",
    )
    .await;
    let ev = w.lines();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["object"]["kind"], "Table");
    assert!(ev[0]["object"]["columnDefinitions"].is_array());
    assert!(ev[1]["object"]["columnDefinitions"].is_null());
    // Streaming list: initial events then the end bookmark.
    let w = call(
        &sb,
        "GET",
        &format!("{SVCS}?&watch=true&timeoutSeconds=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0"),
        &[],
        "",
    )
    .await;
    let ev = w.lines();
    assert_eq!(ev[2]["type"], "BOOKMARK");
    assert_eq!(
        ev[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A live event arrives on an open watch; shutdown ends it.
    let sb2 = std::sync::Arc::new(sb);
    let watcher = {
        let sb = sb2.clone();
        tokio::spawn(async move {
            call(&sb, "GET", &format!("{SVCS}?watch=true&resourceVersion={}&fieldSelector=metadata.name%3Db&timeoutSeconds=1", sb.store().resource_version()), &[], "").await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    call(&sb2, "POST", SVCS, &[JSON], &svc("b")).await;
    call(&sb2, "POST", SVCS, &[JSON], &svc("c")).await;
    let w = watcher.await.unwrap();
    let ev = w.lines();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["object"]["metadata"]["name"], "b");
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let sb = sandbox().await;
    let addr = sb.addr();
    let watcher = tokio::spawn(async move {
        call_addr(addr, "GET", &format!("{SVCS}?watch=true"), &[], "").await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(5), sb.shutdown())
        .await
        .unwrap();
    let w = watcher.await.unwrap();
    assert_eq!(w.lines()[0]["object"]["metadata"]["name"], "kubernetes");
}

/// The wire a kube-runtime watcher sees at a forced expiry: its open watch ends cleanly, its
/// resume from the last version answers 200 with one `ERROR` 410 line (upstream reports the
/// expiry inside the stream), and a paginated relist's version is watchable.
#[tokio::test]
async fn expired_watches_end_and_resume_gets_410() {
    let sb = sandbox().await;
    let addr = sb.addr();
    let rv = sb.store().resource_version();
    // No timeoutSeconds: only the expiry can end this stream within the test's time.
    let open = tokio::spawn(async move {
        call_addr(
            addr,
            "GET",
            &format!("{SVCS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"),
            &[],
            "",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let floor = sb.store().expire_watches();
    let ended = tokio::time::timeout(Duration::from_secs(5), open)
        .await
        .expect("the open watch must end at the expiry")
        .unwrap();
    assert_eq!(ended.status, 200);
    let resumed = call(
        &sb,
        "GET",
        &format!(
            "{SVCS}?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion={rv}"
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(resumed.status, 200);
    let ev = resumed.lines();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["type"], "ERROR");
    assert_eq!(ev[0]["object"]["kind"], "Status");
    assert_eq!(ev[0]["object"]["code"], 410);
    assert_eq!(ev[0]["object"]["reason"], "Expired");
    // The relist (kube-rs pages with limit=500) returns the floor; a watch from it is live.
    let list = call(&sb, "GET", &format!("{SVCS}?limit=500"), &[], "").await;
    assert_eq!(
        list.json()["metadata"]["resourceVersion"],
        floor.to_string()
    );
    let w = call(
        &sb,
        "GET",
        &format!("{SVCS}?watch=true&timeoutSeconds=1&resourceVersion={floor}"),
        &[],
        "",
    )
    .await;
    assert!(w.lines().is_empty(), "{:?}", w.lines());
    let stats = sb.store().watch_stats("", "services");
    assert_eq!(
        (stats.gone, stats.resumed_after_expiry),
        (1, 1),
        "{stats:?}"
    );
    sb.shutdown().await;
}
