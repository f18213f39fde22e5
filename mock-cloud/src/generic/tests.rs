//! End-to-end tests of the generic API over real HTTP on 127.0.0.1 (a minimal HTTP/1.1 client,
//! since this crate has no HTTP client dependency).

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::faults::{Latency, Profile};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn create_body(name: &str, cluster: &str) -> Value {
    json!({
        "name": name,
        "tags": { "frontdesk.dev/cluster": cluster },
        "listeners": [{ "port": 80, "protocol": "TCP", "backend_port": 30080 }],
        "health_check": { "protocol": "TCP", "port": 30080 },
    })
}

async fn start() -> GenericHandle {
    let instances = Instances::with_count(3, "mock");
    serve(
        "127.0.0.1:0".parse().unwrap(),
        instances,
        Faults::new(Profile::None, 1),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn lifecycle_over_http() {
    let h = start().await;
    let addr = h.addr();
    assert_eq!(
        http(addr, "GET", "/v1/loadbalancers/a", None).await.status,
        404
    );
    let created = http(
        addr,
        "POST",
        "/v1/loadbalancers",
        Some(create_body("a", "c1")),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["address"], "203.0.113.1");
    assert_eq!(created.body["state"], "active");
    let dup = http(
        addr,
        "POST",
        "/v1/loadbalancers",
        Some(create_body("a", "c1")),
    )
    .await;
    assert_eq!(
        (dup.status, &dup.body["existing_id"]),
        (409, &created.body["id"])
    );

    let ids: Vec<String> = h
        .cloud()
        .instances()
        .list()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let add = http(
        addr,
        "POST",
        "/v1/loadbalancers/a/backends",
        Some(json!({ "add": ids })),
    )
    .await;
    assert_eq!(
        (add.status, add.body["backends"].as_array().unwrap().len()),
        (200, 3)
    );
    let rm = http(
        addr,
        "POST",
        "/v1/loadbalancers/a/backends/remove",
        Some(json!({ "remove": [ids[0]] })),
    )
    .await;
    assert_eq!(rm.body["backends"].as_array().unwrap().len(), 2);
    let rm2 = http(
        addr,
        "DELETE",
        "/v1/loadbalancers/a/backends",
        Some(json!({ "remove": [ids[1]] })),
    )
    .await;
    assert_eq!(rm2.body["backends"], json!([ids[2]]));
    let bad = http(
        addr,
        "POST",
        "/v1/loadbalancers/a/backends",
        Some(json!({ "add": ["i-nope"] })),
    )
    .await;
    assert_eq!(
        (bad.status, bad.body["code"].as_str()),
        (400, Some("InvalidTarget"))
    );

    let put = json!({
        "listeners": [{ "port": 443, "protocol": "TCP", "backend_port": 30443 }],
        "health_check": { "protocol": "HTTP", "port": 32000, "path": "/healthz" },
        "source_ranges": ["10.0.0.0/8"],
    });
    let updated = http(addr, "PUT", "/v1/loadbalancers/a", Some(put)).await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["listeners"][0]["port"], 443);
    assert_eq!(
        updated.body["backends"],
        json!([ids[2]]),
        "PUT never touches backends"
    );
    let sctp = json!({
        "listeners": [{ "port": 1, "protocol": "SCTP", "backend_port": 30001 }],
        "health_check": { "protocol": "TCP", "port": 30001 },
    });
    let rejected = http(addr, "PUT", "/v1/loadbalancers/a", Some(sctp)).await;
    assert_eq!(
        (rejected.status, rejected.body["field"].as_str()),
        (400, Some("listeners[0].protocol"))
    );
    let garbage = http(
        addr,
        "POST",
        "/v1/loadbalancers",
        Some(json!({ "name": 5 })),
    )
    .await;
    assert_eq!(
        (garbage.status, garbage.body["code"].as_str()),
        (400, Some("InvalidRequest"))
    );

    assert_eq!(
        http(addr, "DELETE", "/v1/loadbalancers/a", None)
            .await
            .status,
        204
    );
    assert_eq!(
        http(addr, "DELETE", "/v1/loadbalancers/a", None)
            .await
            .status,
        404
    );

    let log = http(addr, "GET", "/_admin/calls", None).await;
    let ops: Vec<&str> = log.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops.first(), Some(&OP_GET));
    assert_eq!(ops.iter().filter(|o| **o == OP_BACKENDS).count(), 4);
    let since = log.body["calls"][2]["seq"].as_u64().unwrap();
    let tail = http(addr, "GET", &format!("/_admin/calls?since={since}"), None).await;
    assert_eq!(tail.body["calls"].as_array().unwrap().len(), ops.len() - 3);
    assert_eq!(
        http(addr, "DELETE", "/_admin/calls", None).await.status,
        204
    );
    h.shutdown().await;
}

#[tokio::test]
async fn list_by_tag_with_pages() {
    let h = start().await;
    for i in 0..3 {
        http(
            h.addr(),
            "POST",
            "/v1/loadbalancers",
            Some(create_body(&format!("a{i}"), "c1")),
        )
        .await;
    }
    http(
        h.addr(),
        "POST",
        "/v1/loadbalancers",
        Some(create_body("b", "c2")),
    )
    .await;
    let page1 = http(
        h.addr(),
        "GET",
        "/v1/loadbalancers?tag=frontdesk.dev%2Fcluster%3Dc1&page_size=2",
        None,
    )
    .await;
    assert_eq!(page1.body["loadbalancers"].as_array().unwrap().len(), 2);
    let token = page1.body["next_page_token"].as_str().unwrap().to_string();
    let page2 = http(
        h.addr(),
        "GET",
        &format!("/v1/loadbalancers?tag=frontdesk.dev/cluster=c1&page_size=2&page_token={token}"),
        None,
    )
    .await;
    assert_eq!(page2.body["loadbalancers"][0]["name"], "a2");
    assert!(page2.body.get("next_page_token").is_none());
    let state = http(h.addr(), "GET", "/_admin/state", None).await;
    assert_eq!(state.body["loadbalancers"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn throttling_and_injections_over_http() {
    let h = start().await;
    let set = json!({
        "profile": "generic",
        "latency": { "kind": "none" },
        "buckets": { "mutate": { "capacity": 1.0, "refill_per_sec": 0.5 } },
        "injections": [{ "operation": "GetLoadBalancer", "status": 503, "count": 1 }],
    });
    assert_eq!(
        http(h.addr(), "POST", "/_admin/faults", Some(set))
            .await
            .status,
        200
    );
    let first = http(h.addr(), "GET", "/v1/loadbalancers/x", None).await;
    assert_eq!(
        (first.status, first.header("retry-after")),
        (503, Some("1"))
    );
    assert_eq!(
        http(h.addr(), "GET", "/v1/loadbalancers/x", None)
            .await
            .status,
        404
    );

    assert_eq!(
        http(
            h.addr(),
            "POST",
            "/v1/loadbalancers",
            Some(create_body("a", "c"))
        )
        .await
        .status,
        201
    );
    let throttled = http(h.addr(), "DELETE", "/v1/loadbalancers/a", None).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("retry-after"), Some("2"));
    assert_eq!(throttled.body["code"], "Throttled");

    let statuses: Vec<u64> = http(h.addr(), "GET", "/_admin/calls", None).await.body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [503, 404, 201, 429]);
    let bad = json!({ "latency": { "kind": "lognormal", "median_ms": 50, "p99_ms": 10 } });
    assert_eq!(
        http(h.addr(), "POST", "/_admin/faults", Some(bad))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn provisioning_delay_and_out_of_band_changes() {
    let h = start().await;
    h.faults()
        .set_provisioning(Latency::Fixed { ms: 60_000 })
        .unwrap();
    let created = http(
        h.addr(),
        "POST",
        "/v1/loadbalancers",
        Some(create_body("a", "c")),
    )
    .await;
    assert_eq!(created.body["state"], "provisioning");
    assert_eq!(
        http(
            h.addr(),
            "DELETE",
            "/_admin/loadbalancers/a/listeners/80",
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(h.cloud().get("a").unwrap().listeners.len(), 0);
    assert_eq!(
        http(h.addr(), "DELETE", "/_admin/loadbalancers/a", None)
            .await
            .status,
        204
    );
    assert_eq!(h.cloud().count_tagged("frontdesk.dev/cluster", "c"), 0);
    // Admin calls are not in the log.
    assert_eq!(h.faults().calls(None).len(), 1);
}
