//! Test support: a moto server on loopback, a logging/fault-injecting proxy in front of it (so
//! the conformance kit sees every call the provider's SDK clients really send), seeding of a
//! VPC + subnets + instances, and a `CloudInspector` over all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use frontdesk_core::conformance::{CallEntry, CloudInspector};
use frontdesk_core::naming::TAG_CLUSTER;
use frontdesk_core::provider::{BackendNode, ProviderContext, ProvisioningRecord};
use frontdesk_provider_aws::{AwsConfig, AwsProvider};

/// The moto executable: `$MOTO_SERVER`, else the venv scripts/test makes. Missing = panic.
fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let mut cands = Vec::new();
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        cands.push(PathBuf::from(t).join("helm-venv/bin/moto_server"));
    }
    if let Ok(py) = std::env::var("FRONTDESK_PYTHON") {
        cands.push(PathBuf::from(py).with_file_name("moto_server"));
    }
    if let Ok(home) = std::env::var("HOME") {
        cands.push(PathBuf::from(home).join(".cache/frontdesk/target/helm-venv/bin/moto_server"));
    }
    cands.into_iter().find(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "moto_server not found: run scripts/test (installs moto[server]) or set MOTO_SERVER \
             to its path"
        )
    })
}

pub struct Moto {
    child: tokio::process::Child,
    pub url: String,
}

impl Moto {
    pub async fn start() -> Moto {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting moto_server");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Moto { child, url };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("moto_server did not listen on {url} within 10 s");
    }
}

#[derive(Default)]
struct ProxyState {
    calls: Vec<CallEntry>,
    fail: HashMap<String, usize>,
}

/// Forwards every request to moto, logging `Action` and the decoded form body; answers a 500
/// with an AWS error body instead when a failure is armed for that action.
pub struct Proxy {
    state: Arc<Mutex<ProxyState>>,
    pub url: String,
}

fn decode(body: &[u8]) -> Vec<(String, String)> {
    url_decode_pairs(&String::from_utf8_lossy(body))
}

fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct(k), pct(v))
        })
        .collect()
}

fn pct(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let http = reqwest::Client::new();
        let st = state.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            let http = http.clone();
            let upstream = upstream.clone();
            async move {
                let pairs = decode(&body);
                let action = pairs
                    .iter()
                    .find(|(k, _)| k == "Action")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let detail = pairs
                    .iter()
                    .filter(|(k, _)| k != "Action" && k != "Version")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let fail = {
                    let mut s = st.lock().unwrap();
                    s.calls.push(CallEntry {
                        mutating: !(action.starts_with("Describe") || action.starts_with("Get")),
                        operation: action.clone(),
                        detail,
                    });
                    match s.fail.get_mut(&action) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            true
                        }
                        _ => false,
                    }
                };
                if fail {
                    let xml = "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>\
                               <Message>injected by the test proxy</Message></Error>\
                               <RequestId>injected</RequestId></ErrorResponse>";
                    return (StatusCode::INTERNAL_SERVER_ERROR, xml.to_string()).into_response();
                }
                let mut req = http.post(format!("{upstream}/")).body(body);
                for (k, v) in headers.iter() {
                    if k != "host" && k != "content-length" {
                        req = req.header(k, v);
                    }
                }
                match req.send().await {
                    Ok(r) => {
                        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                        let ct = r.headers().get("content-type").cloned();
                        let bytes = r.bytes().await.unwrap_or_default();
                        let mut resp: Response = (status, bytes).into_response();
                        if let Some(ct) = ct {
                            resp.headers_mut().insert("content-type", ct);
                        }
                        resp
                    }
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { state, url }
    }
}

pub fn test_config(url: &str) -> AwsConfig {
    AwsConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.into()),
        static_credentials: Some(("AKIDMOCK".into(), "SECRETMOCK".into())),
        call_timeout: Duration::from_secs(10),
        vpc_id: None,
        provisioning_poll: Duration::from_millis(100),
    }
}

pub async fn provider(url: &str) -> AwsProvider {
    AwsProvider::new(test_config(url), ProviderContext::for_tests()).expect("provider")
}

fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "AKIDMOCK",
                    "SECRETMOCK",
                    None,
                    None,
                    "test",
                ),
            ),
        )
        .build()
}

/// A moto world: VPC, two role-tagged subnets, `n` instances; plus direct (unproxied) clients.
pub struct World {
    pub moto: Moto,
    pub proxy: Proxy,
    pub elb: elb::Client,
    pub ec2: ec2::Client,
    pub vpc: String,
    pub subnets: Vec<String>,
    pub nodes: Vec<BackendNode>,
}

impl World {
    pub async fn start(n: usize) -> World {
        let moto = Moto::start().await;
        let proxy = Proxy::start(moto.url.clone()).await;
        let conf = sdk_config(&moto.url);
        let elb = elb::Client::new(&conf);
        let ec2 = ec2::Client::new(&conf);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc()
            .unwrap()
            .vpc_id()
            .unwrap()
            .to_string();
        let mut subnets = Vec::new();
        for (i, az) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
            let id = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.0.{}.0/24", i + 1))
                .availability_zone(*az)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string();
            ec2.create_tags()
                .resources(&id)
                .tags(
                    ec2::types::Tag::builder()
                        .key("kubernetes.io/role/elb")
                        .value("1")
                        .build(),
                )
                .tags(
                    ec2::types::Tag::builder()
                        .key("kubernetes.io/role/internal-elb")
                        .value("1")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            subnets.push(id);
        }
        let run = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(n as i32)
            .max_count(n as i32)
            .instance_type(ec2::types::InstanceType::T3Micro)
            .subnet_id(&subnets[0])
            .send()
            .await
            .unwrap();
        let nodes = run
            .instances()
            .iter()
            .enumerate()
            .map(|(i, inst)| BackendNode {
                name: format!("node-{i}"),
                provider_id: Some(format!("aws:///us-east-1a/{}", inst.instance_id().unwrap())),
                addresses: inst
                    .private_ip_address()
                    .and_then(|a| a.parse().ok())
                    .into_iter()
                    .collect(),
                zone: Some("us-east-1a".into()),
            })
            .collect();
        World {
            moto,
            proxy,
            elb,
            ec2,
            vpc,
            subnets,
            nodes,
        }
    }

    /// Tags of every LB moto has.
    pub async fn lb_tags(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        let lbs = self.elb.describe_load_balancers().send().await.unwrap();
        let mut out = Vec::new();
        for lb in lbs.load_balancers() {
            let arn = lb.load_balancer_arn().unwrap().to_string();
            let tags = self
                .elb
                .describe_tags()
                .resource_arns(&arn)
                .send()
                .await
                .unwrap();
            let map = tags
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            out.push((lb.load_balancer_name().unwrap().to_string(), arn, map));
        }
        out
    }

    pub async fn target_group_names(&self) -> Vec<String> {
        let tgs = self.elb.describe_target_groups().send().await.unwrap();
        let mut names: Vec<String> = tgs
            .target_groups()
            .iter()
            .filter_map(|g| g.target_group_name().map(String::from))
            .collect();
        names.sort();
        names
    }

    /// Security groups (name, ingress rule count) in the test VPC other than `default`.
    pub async fn security_groups(&self) -> Vec<(String, usize)> {
        let sgs = self
            .ec2
            .describe_security_groups()
            .filters(
                ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&self.vpc)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        sgs.security_groups()
            .iter()
            .filter(|g| g.group_name() != Some("default"))
            .map(|g| {
                let n = g
                    .ip_permissions()
                    .iter()
                    .map(|p| p.ip_ranges().len() + p.ipv6_ranges().len())
                    .sum();
                (g.group_name().unwrap_or_default().to_string(), n)
            })
            .collect()
    }
}

#[async_trait]
impl CloudInspector for World {
    async fn calls(&self) -> Vec<CallEntry> {
        self.proxy.state.lock().unwrap().calls.clone()
    }

    async fn clear_calls(&self) {
        self.proxy.state.lock().unwrap().calls.clear();
    }

    async fn delete_out_of_band(&self, record: &ProvisioningRecord) {
        for r in &record.resources {
            if r.kind == "loadbalancer"
                && let Ok(out) = self.elb.describe_load_balancers().names(&r.id).send().await
            {
                for lb in out.load_balancers() {
                    self.elb
                        .delete_load_balancer()
                        .load_balancer_arn(lb.load_balancer_arn().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        for r in &record.resources {
            if r.kind == "targetgroup"
                && let Ok(out) = self.elb.describe_target_groups().names(&r.id).send().await
            {
                for g in out.target_groups() {
                    self.elb
                        .delete_target_group()
                        .target_group_arn(g.target_group_arn().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    }

    async fn fail_next(&self, operation: &str, count: usize) {
        self.proxy
            .state
            .lock()
            .unwrap()
            .fail
            .insert(operation.to_string(), count);
    }

    async fn resource_count(&self, cluster: &str) -> usize {
        self.lb_tags()
            .await
            .iter()
            .filter(|(_, _, t)| t.get(TAG_CLUSTER).map(String::as_str) == Some(cluster))
            .count()
    }
}
