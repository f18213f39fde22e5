//! HTTP tests against a real listening sandbox, with a minimal HTTP/1.1 client.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kube::sandbox::{Sandbox, SandboxConfig};

mod watch;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.body)
            .split_terminator('\n')
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..pos]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[pos + 2..pos + 2 + size]);
        raw = &raw[pos + 2 + size + 2..];
    }
}

async fn call(
    sb: &Sandbox,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    call_addr(sb.addr(), method, path, headers, body).await
}

async fn call_addr(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const MERGE: (&str, &str) = ("Content-Type", "application/merge-patch+json");
const APPLY: (&str, &str) = ("Content-Type", "application/apply-patch+yaml");
const SMP: (&str, &str) = ("Content-Type", "application/strategic-merge-patch+json");
const TABLE: (&str, &str) = (
    "Accept",
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
);

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).await.unwrap()
}

fn svc(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": name}},
           "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": name}}})
    .to_string()
}

const SVCS: &str = "/api/v1/namespaces/default/services";

#[tokio::test]
async fn basics_and_errors() {
    let sb = sandbox().await;
    let v = call(&sb, "GET", "/version?timeout=5s", &[], "").await;
    assert_eq!((v.status, v.json()["minor"].as_str()), (200, Some("32")));
    assert_eq!(call(&sb, "GET", "/healthz", &[], "").await.body, b"ok");
    let nf = call(&sb, "GET", "/nope", &[], "").await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["kind"], "Status");
    let nf = call(
        &sb,
        "GET",
        "/api/v1/namespaces/default/services/nope",
        &[],
        "",
    )
    .await;
    assert_eq!(nf.json()["message"], "services \"nope\" not found");
    assert_eq!(nf.json()["details"]["kind"], "services");
    let k = call(
        &sb,
        "GET",
        "/api/v1/namespaces/default/services/kubernetes",
        &[],
        "",
    )
    .await;
    assert_eq!(k.json()["kind"], "Service");
    assert_eq!(k.json()["spec"]["clusterIP"], "10.96.0.1");
    let bad = call(&sb, "POST", SVCS, &[JSON], "{nope").await;
    assert_eq!(
        (bad.status, bad.json()["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let wrong = call(
        &sb,
        "POST",
        SVCS,
        &[JSON],
        r#"{"apiVersion":"apps/v1","kind":"Service","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(
        wrong.json()["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    let pb = call(
        &sb,
        "POST",
        SVCS,
        &[("Content-Type", "application/vnd.kubernetes.protobuf")],
        "k8s\0",
    )
    .await;
    // An envelope without a kind is malformed (non-empty ones are decoded: `proto`).
    assert_eq!(pb.status, 400);
    let missing_ns = call(
        &sb,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        &[JSON],
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    assert_eq!(
        (missing_ns.status, missing_ns.json()["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );
    let invalid = call(
        &sb,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[JSON],
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(
        invalid.json()["details"]["causes"][0]["field"],
        "metadata.name"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn crud_list_and_patch() {
    let sb = sandbox().await;
    let c = call(
        &sb,
        "POST",
        &format!("{SVCS}?fieldManager=kubectl-create"),
        &[JSON],
        &svc("web"),
    )
    .await;
    assert_eq!(c.status, 201, "{}", String::from_utf8_lossy(&c.body));
    let created = c.json();
    assert_eq!(created["kind"], "Service");
    let dup = call(&sb, "POST", SVCS, &[JSON], &svc("web")).await;
    assert_eq!(
        (dup.status, dup.json()["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );

    let list = call(&sb, "GET", &format!("{SVCS}?&limit=500"), &[], "")
        .await
        .json();
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ServiceList"), Some("v1"))
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["items"][0].get("kind").is_none());
    let t = call(
        &sb,
        "GET",
        &format!("{SVCS}?labelSelector=app%3Dweb"),
        &[TABLE],
        "",
    )
    .await
    .json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    let page = call(&sb, "GET", "/api/v1/services?limit=1", &[], "")
        .await
        .json();
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let page2 = call(
        &sb,
        "GET",
        &format!("/api/v1/services?limit=1&continue={token}"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(page2["items"][0]["metadata"]["name"], "web");
    assert!(page2["metadata"].get("continue").is_none());

    // Stale PUT → 409; merge patch; no-op patch keeps the RV.
    let mut stale = created.clone();
    stale["metadata"]["labels"]["v"] = json!("1");
    let put = call(
        &sb,
        "PUT",
        &format!("{SVCS}/web"),
        &[JSON],
        &stale.to_string(),
    )
    .await;
    assert_eq!(put.status, 200);
    let put2 = call(
        &sb,
        "PUT",
        &format!("{SVCS}/web"),
        &[JSON],
        &stale.to_string(),
    )
    .await;
    assert_eq!(
        (put2.status, put2.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    let p = call(
        &sb,
        "PATCH",
        &format!("{SVCS}/web?fieldManager=kubectl-label"),
        &[MERGE],
        r#"{"metadata":{"labels":{"k":"v"}}}"#,
    )
    .await;
    assert_eq!(p.status, 200);
    let rv = p.json()["metadata"]["resourceVersion"].clone();
    let p2 = call(
        &sb,
        "PATCH",
        &format!("{SVCS}/web"),
        &[MERGE],
        r#"{"metadata":{"labels":{"k":"v"}}}"#,
    )
    .await;
    assert_eq!(p2.json()["metadata"]["resourceVersion"], rv);
    let st = call(
        &sb,
        "PATCH",
        &format!("{SVCS}/web/status"),
        &[SMP],
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}}"#,
    )
    .await;
    assert_eq!(
        st.json()["status"]["loadBalancer"]["ingress"][0]["ip"],
        "1.2.3.4"
    );
    let dry = call(
        &sb,
        "PATCH",
        &format!("{SVCS}/web?dryRun=All"),
        &[MERGE],
        r#"{"metadata":{"labels":{"d":"1"}}}"#,
    )
    .await;
    assert_eq!(dry.json()["metadata"]["labels"]["d"], "1");
    let now = call(&sb, "GET", &format!("{SVCS}/web"), &[], "")
        .await
        .json();
    assert!(now["metadata"]["labels"].get("d").is_none());

    // Apply: fieldManager required; creates with 201.
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"1"}}"#;
    let cms = "/api/v1/namespaces/default/configmaps";
    let no_mgr = call(&sb, "PATCH", &format!("{cms}/cfg"), &[APPLY], body).await;
    assert_eq!(no_mgr.status, 400);
    assert_eq!(
        no_mgr.json()["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let a = call(
        &sb,
        "PATCH",
        &format!("{cms}/cfg?fieldManager=kubectl&force=false"),
        &[APPLY],
        body,
    )
    .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let a2 = call(
        &sb,
        "PATCH",
        &format!("{cms}/cfg?fieldManager=kubectl"),
        &[APPLY],
        body,
    )
    .await;
    assert_eq!(a2.status, 200);

    // Deletes: Status for configmaps, the object for services.
    let d = call(
        &sb,
        "DELETE",
        &format!("{cms}/cfg"),
        &[JSON],
        "{\"propagationPolicy\":\"Background\"}\n",
    )
    .await;
    assert_eq!(
        (d.json()["kind"].as_str(), d.json()["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(d.json()["details"]["kind"], "configmaps");
    let d = call(&sb, "DELETE", &format!("{SVCS}/web"), &[], "").await;
    assert_eq!(
        (d.status, d.json()["kind"].as_str()),
        (200, Some("Service"))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn crds_and_discovery() {
    let sb = sandbox().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let c = call(
        &sb,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &[JSON],
        &crd.to_string(),
    )
    .await;
    assert_eq!(c.status, 201, "{}", String::from_utf8_lossy(&c.body));
    assert_eq!(c.json()["status"]["conditions"][1]["type"], "Established");
    let agg = call(
        &sb,
        "GET",
        "/apis",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        "",
    )
    .await;
    assert!(
        agg.header("content-type")
            .unwrap()
            .contains("as=APIGroupDiscoveryList")
    );
    assert!(String::from_utf8_lossy(&agg.body).contains("\"widgets\""));
    let legacy = call(&sb, "GET", "/apis/example.com/v1", &[], "").await;
    assert_eq!(legacy.status, 200);
    assert!(
        call(&sb, "GET", "/openapi/v3", &[], "").await.json()["paths"]
            .get("apis/example.com/v1")
            .is_some()
    );
    let ws = "/apis/example.com/v1/namespaces/default/widgets";
    let w = call(&sb, "POST", ws, &[JSON], r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"size":1}}"#).await;
    assert_eq!(w.status, 201);
    let list = call(&sb, "GET", ws, &[], "").await.json();
    assert_eq!(
        list["items"][0]["kind"], "Widget",
        "CR list items keep type meta"
    );
    let smp = call(
        &sb,
        "PATCH",
        &format!("{ws}/w1"),
        &[SMP],
        r#"{"spec":{"size":2}}"#,
    )
    .await;
    assert_eq!(smp.status, 415);
    assert_eq!(
        smp.json()["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    let nf = call(&sb, "GET", &format!("{ws}/nope"), &[], "").await;
    assert_eq!(
        nf.json()["message"],
        "widgets.example.com \"nope\" not found"
    );
    let d = call(
        &sb,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        &[],
        "",
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(call(&sb, "GET", ws, &[], "").await.status, 404);
    sb.shutdown().await;
}
