//! The Helm chart: linted and rendered by Helm's own engine (the `helm-python-sdk` package,
//! which carries Helm's Go library; `scripts/test` installs it and exports `FRONTDESK_PYTHON`),
//! applied with kubectl to the sandbox, and its RBAC proven enough and not more by running the
//! controller as the chart's ServiceAccount with RBAC enforced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use frontdesk_core::config::ControllerConfig;
use frontdesk_core::metrics::Metrics;
use frontdesk_mock_cloud::MockCloudConfig;
use frontdesk_mock_cloud::kube::auth::AuditEntry;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

use crate::support::{
    World, client_for, eventually, example_path, mock_provider, start_controller_with, test_config,
};

pub(crate) const WAIT: Duration = Duration::from_secs(20);
pub(crate) const SA_USER: &str = "system:serviceaccount:frontdesk:frontdesk-controller";
const EXAMPLES: [&str; 5] = ["mock", "aws", "gcp", "azure", "baremetal"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/frontdesk")
}

pub(crate) fn example_values(name: &str) -> PathBuf {
    root().join(format!("examples/values-{name}.yaml"))
}

/// The venv python with `helm_python`; missing → the test fails, naming the fix.
fn python() -> String {
    let py = std::env::var("FRONTDESK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "FRONTDESK_PYTHON is not set: run ./scripts/test, which creates the venv with \
             helm-python-sdk and exports it"
        )
    });
    let ok = Command::new(&py)
        .args(["-c", "import helm_python, yaml"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{py} cannot import helm_python and yaml: pip install helm-python-sdk pyyaml into it \
         (./scripts/test does)"
    );
    py
}

/// Runs tests/helm/helm_tool.py; (success, stdout, stderr).
fn helm_tool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(python())
        .arg(root().join("tests/helm/helm_tool.py"))
        .args(args)
        .output()
        .expect("run helm_tool.py");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lint(values: &Path) -> Value {
    let chart = chart_dir();
    let (ok, out, err) = helm_tool(&["lint", chart.to_str().unwrap(), values.to_str().unwrap()]);
    assert!(ok, "helm lint crashed: {err}");
    serde_json::from_str(&out).unwrap()
}

/// Renders the chart (CRDs first) as one YAML stream, or Helm's error text.
pub(crate) fn render(values: &Path, release: &str, namespace: &str) -> Result<String, String> {
    let chart = chart_dir();
    let (ok, out, err) = helm_tool(&[
        "render",
        chart.to_str().unwrap(),
        values.to_str().unwrap(),
        release,
        namespace,
    ]);
    if ok { Ok(out) } else { Err(err) }
}

pub(crate) fn docs(stream: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The controller config file from the rendered ConfigMap, parsed by the real parser.
pub(crate) fn rendered_config(docs: &[Value]) -> ControllerConfig {
    let cm = find(docs, "ConfigMap", "frontdesk-controller").expect("controller ConfigMap");
    let text = cm["data"]["config.yaml"].as_str().unwrap();
    let config = ControllerConfig::from_yaml(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
    config
}

fn check_hardening(docs: &[Value], provider: &str) {
    let deploy = find(docs, "Deployment", "frontdesk-controller").expect("Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "frontdesk-controller");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["securityContext"]["capabilities"]["add"].is_null());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&format!("--provider={provider}").as_str()),
        "{args:?}"
    );
    assert!(args.contains(&"--config=/etc/frontdesk/config.yaml"));
    let pdb = find(docs, "PodDisruptionBudget", "frontdesk-controller").expect("PDB");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(find(docs, "Service", "frontdesk-controller-metrics").is_some());
    let config = rendered_config(docs);
    assert!(config.leader_election.enabled);
    assert_eq!(config.leader_election.lease_namespace, "frontdesk");
    assert_eq!(config.metrics_addr.port(), 8080);

    let ds = find(docs, "DaemonSet", "frontdesk-speaker");
    if provider == "baremetal" {
        let pod = &ds.expect("speaker DaemonSet")["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        let sc = &pod["containers"][0]["securityContext"];
        assert_eq!(sc["capabilities"]["add"], serde_json::json!(["NET_RAW"]));
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert!(find(docs, "ServiceAccount", "frontdesk-speaker").is_some());
        let crds = of_kind(docs, "CustomResourceDefinition");
        assert_eq!(crds.len(), 3, "the bare-metal CRDs");
    } else {
        assert!(ds.is_none(), "speaker only for baremetal");
        assert!(find(docs, "ServiceAccount", "frontdesk-speaker").is_none());
    }
}

fn sa_annotation<'a>(docs: &'a [Value], key: &str) -> Option<&'a str> {
    find(docs, "ServiceAccount", "frontdesk-controller")?["metadata"]["annotations"][key].as_str()
}

#[test]
fn chart_lints_and_renders_every_example() {
    for name in EXAMPLES {
        let values = example_values(name);
        let report = lint(&values);
        assert_eq!(report["total_charts_linted"], 1, "{name}: {report}");
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
            .collect();
        assert!(problems.is_empty(), "{name}: strict lint: {problems:?}");
        assert!(
            report["errors"].as_array().is_none_or(|e| e.is_empty()),
            "{name}: {report}"
        );
        let stream = render(&values, "frontdesk", "frontdesk")
            .unwrap_or_else(|e| panic!("{name}: render failed: {e}"));
        let docs = docs(&stream);
        check_hardening(&docs, name);
        match name {
            "aws" => {
                assert_eq!(
                    sa_annotation(&docs, "eks.amazonaws.com/role-arn"),
                    Some("arn:aws:iam::123456789012:role/frontdesk-controller")
                );
                let sm = find(&docs, "ServiceMonitor", "frontdesk-controller").unwrap();
                assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
                let config = rendered_config(&docs);
                assert_eq!(
                    config.load_balancer_class.as_deref(),
                    Some("frontdesk.dev/nlb")
                );
                assert!(!config.claim_unclassed);
            }
            "gcp" => assert_eq!(
                sa_annotation(&docs, "iam.gke.io/gcp-service-account"),
                Some("frontdesk@my-project.iam.gserviceaccount.com")
            ),
            "azure" => {
                assert_eq!(
                    sa_annotation(&docs, "azure.workload.identity/client-id"),
                    Some("11111111-1111-1111-1111-111111111111")
                );
                let deploy = find(&docs, "Deployment", "frontdesk-controller").unwrap();
                assert_eq!(
                    deploy["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
                    "true"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn invalid_values_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "provider: nope",
            "at '/provider': value must be one of 'aws', 'gcp', 'azure', 'baremetal', 'mock'",
        ),
        ("clusterName: x", "at '/provider'"),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\ncontroler: {replicas: 3}",
            "additional properties 'controler' not allowed",
        ),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\ncontroller: {replicas: two}",
            "at '/controller/replicas': got string, want integer",
        ),
        ("provider: mock", "at '/mock/cloudUrl'"),
        ("provider: aws", "at '/aws/region': minLength"),
        (
            "provider: aws\naws: {region: eu-west-1, roleArn: my-role}",
            "at '/aws/roleArn': 'my-role' does not match pattern",
        ),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\nclusterName: Prod_EU",
            "at '/clusterName'",
        ),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\nconfig: {concurency: 3}",
            "at '/config': additional properties 'concurency' not allowed",
        ),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\ncontroller: {leaderElection: {renewIntervalSeconds: 10}}",
            "renewIntervalSeconds (10) must be at most half of leaseDurationSeconds (15)",
        ),
        (
            "provider: azure\nazure: {subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, location: westeurope}",
            "provider azure needs credentials",
        ),
        (
            "provider: mock\nmock: {cloudUrl: http://x}\ncontroller: {leaderElection: {enabled: false}}",
            "replicas would fight over every Service",
        ),
    ];
    for (i, (values, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&path, values).unwrap();
        let err = render(&path, "frontdesk", "frontdesk")
            .err()
            .unwrap_or_else(|| panic!("values were accepted:\n{values}"));
        assert!(err.contains(want), "values:\n{values}\nerror:\n{err}");
    }
}

/// Applies a rendered stream the way a user without Helm would: CRDs first, then the rest.
pub(crate) async fn apply(w: &World, stream: &str) {
    let all = docs(stream);
    let (crds, rest): (Vec<&Value>, Vec<&Value>) = all
        .iter()
        .partition(|d| d["kind"] == "CustomResourceDefinition");
    for batch in [crds, rest] {
        if batch.is_empty() {
            continue;
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": batch});
        let text = serde_json::to_string(&list).unwrap();
        let (ok, out, err) = w.kubectl_stdin(&["apply", "-f", "-"], &text).await;
        assert!(ok, "kubectl apply failed:\n{out}\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_are_accepted_by_the_sandbox() {
    let w = World::start(2).await;
    // The ServiceMonitor kind belongs to the Prometheus operator; install a minimal CRD so the
    // aws example's ServiceMonitor has somewhere to go, as on a cluster running the operator.
    w.kubectl_stdin(&["apply", "-f", "-"], SERVICE_MONITOR_CRD)
        .await;
    for name in EXAMPLES {
        let release = format!("fd-{name}");
        let ns = format!("fd-{name}");
        w.kubectl_ok(&["create", "namespace", &ns]).await;
        let stream = render(&example_values(name), &release, &ns).unwrap();
        apply(&w, &stream).await;
        let full = format!("{release}-frontdesk-controller");
        let out = w
            .kubectl_ok(&[
                "-n",
                &ns,
                "get",
                "deploy,pdb,sa,cm,svc,role,rolebinding",
                "-o",
                "name",
            ])
            .await;
        for want in [
            format!("deployment.apps/{full}"),
            format!("poddisruptionbudget.policy/{full}"),
            format!("serviceaccount/{full}"),
            format!("configmap/{full}"),
            format!("service/{full}-metrics"),
            format!("role.rbac.authorization.k8s.io/{full}-leader-election"),
        ] {
            assert!(out.contains(&want), "{name}: {want} missing from\n{out}");
        }
        w.kubectl_ok(&["get", "clusterrole", &full]).await;
        w.kubectl_ok(&["get", "clusterrolebinding", &full]).await;
        let (has_ds, _, _) = w
            .kubectl(&[
                "-n",
                &ns,
                "get",
                "ds",
                &format!("{release}-frontdesk-speaker"),
            ])
            .await;
        assert_eq!(has_ds, name == "baremetal", "{name}: speaker DaemonSet");
    }
    let crds = w.kubectl_ok(&["get", "crd", "-o", "name"]).await;
    for plural in ["ipaddresspools", "l2advertisements", "ipaddressclaims"] {
        assert!(crds.contains(&format!("{plural}.frontdesk.dev")), "{crds}");
    }
    // Applying the same render again changes nothing.
    let stream = render(&example_values("mock"), "fd-mock", "fd-mock").unwrap();
    apply(&w, &stream).await;
    w.shutdown().await;
}

const SERVICE_MONITOR_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

/// A kubeconfig for the sandbox that authenticates with `token`.
pub(crate) fn kubeconfig_with_token(w: &World, token: &str, file: &str) -> PathBuf {
    let path = w.dir.path().join(file);
    let text = frontdesk_mock_cloud::kube::sandbox::kubeconfig_yaml_with_token(
        &w.cloud.kube_url(),
        Some(token),
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) async fn external_ip(api: &Api<Service>, name: &str) -> Option<String> {
    let svc = api.get_opt(name).await.ok()??;
    let ingress = svc.status?.load_balancer?.ingress?;
    ingress.first()?.ip.clone()
}

pub(crate) fn sa_decisions(w: &World) -> Vec<AuditEntry> {
    w.cloud
        .sandbox
        .audit()
        .into_iter()
        .filter(|e| e.user == SA_USER)
        .collect()
}

/// Every (group, resource, verb) the chart's rules grant the controller (mock provider).
pub(crate) fn granted(docs: &[Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for role in of_kind(docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(docs, "Role"))
        .filter(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("frontdesk-controller")
        })
    {
        for rule in role["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        out.push((
                            g.as_str().unwrap().to_string(),
                            r.as_str().unwrap().to_string(),
                            v.as_str().unwrap().to_string(),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The committed CRDs are the ones the bare-metal provider's Rust types generate. Regenerate
/// with `FRONTDESK_BLESS=1 cargo test --test it chart::crds`.
#[test]
fn crds_match_the_provider_types() {
    let path = chart_dir().join("crds/frontdesk.dev.yaml");
    let generated = format!(
        "# Generated from providers/baremetal/src/crd.rs (crds_yaml); do not edit.\n{}",
        frontdesk_provider_baremetal::crd::crds_yaml().unwrap()
    );
    if std::env::var_os("FRONTDESK_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        docs(&committed),
        docs(&generated),
        "charts/frontdesk/crds/frontdesk.dev.yaml is stale: FRONTDESK_BLESS=1 cargo test --test it chart::crds"
    );
}

mod rbac;
