//! The `frontdesk` binary as users run it: separate processes, signals, exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{client_for, eventually, kubectl};

const BIN: &str = env!("CARGO_BIN_EXE_frontdesk");

pub(crate) fn frontdesk(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("FRONTDESK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Read stdout lines until one contains `needle`; returns them all.
pub(crate) async fn read_until(child: &mut Child, needle: &str) -> Vec<String> {
    let stdout = child.stdout.as_mut().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never printed {needle:?}: {seen:?}"
    );
    seen
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

async fn exit_code(mut child: Child) -> i32 {
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    status.code().unwrap_or(-1)
}

async fn lb_count(cloud_url: &str) -> usize {
    let state: serde_json::Value = reqwest::get(format!("{cloud_url}/_admin/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["loadbalancers"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cloud_and_run_as_separate_processes_survive_a_controller_kill() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut fakes = frontdesk(&[
        "mock-cloud",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--nodes",
        "2",
    ])
    .spawn()
    .unwrap();
    let lines = read_until(&mut fakes, "Stop with Ctrl-C").await;
    let cloud_url = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("mock cloud API:")
                .map(|u| u.trim().to_string())
        })
        .expect("cloud URL printed");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("frontdesk run --provider mock")),
        "{lines:?}"
    );

    let run_args = [
        "run",
        "--provider",
        "mock",
        "--cloud-url",
        &cloud_url,
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--cluster-name",
        "cli",
        "--metrics-addr",
        "127.0.0.1:0",
        "--leader-elect",
        "false",
    ];
    let controller = frontdesk(&run_args).spawn().unwrap();
    let (ok, out, err) = kubectl(
        &kc,
        dir.path(),
        &["apply", "-f", &crate::support::example_path()],
        None,
    )
    .await;
    assert!(ok, "{out}{err}");
    let client = client_for(&kc).await;
    let api: Api<Service> = Api::namespaced(client, "default");
    wait_ip(&api, "my-app-service").await;
    assert_eq!(lb_count(&cloud_url).await, 1);

    // Crash the controller; the cloud keeps its state; a new controller carries on.
    signal(&controller, "-KILL");
    let _ = exit_code(controller).await;
    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "second"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 8080}]}}))
    .unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap();
    let controller = frontdesk(&run_args).spawn().unwrap();
    wait_ip(&api, "second").await;
    assert_eq!(
        lb_count(&cloud_url).await,
        2,
        "one LB per Service, none duplicated by the restart"
    );

    signal(&controller, "-TERM");
    assert_eq!(
        exit_code(controller).await,
        0,
        "controller exits cleanly on SIGTERM"
    );
    signal(&fakes, "-INT");
    assert_eq!(
        exit_code(fakes).await,
        0,
        "mock-cloud exits cleanly on SIGINT"
    );
}

async fn wait_ip(api: &Api<Service>, name: &str) -> String {
    eventually(Duration::from_secs(20), name, || async {
        let s = api.get_opt(name).await.ok()??;
        s.status?.load_balancer?.ingress?.first()?.ip.clone()
    })
    .await
}

async fn run_fails_with(args: &[&str], needle: &str, dir: &Path) {
    let out = frontdesk(args).current_dir(dir).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_config_exit_nonzero_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "clusterName: Not_Valid\n").unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "concurency: 3\n").unwrap();
    let kc = dir.path().join("none");
    let kc = kc.to_str().unwrap();
    run_fails_with(
        &[
            "run",
            "--provider",
            "mock",
            "--config",
            bad.to_str().unwrap(),
            "--kubeconfig",
            kc,
        ],
        "clusterName",
        dir.path(),
    )
    .await;
    run_fails_with(
        &[
            "run",
            "--provider",
            "mock",
            "--config",
            typo.to_str().unwrap(),
            "--kubeconfig",
            kc,
        ],
        "unknown field `concurency`",
        dir.path(),
    )
    .await;
    run_fails_with(
        &["run", "--provider", "nimbus", "--kubeconfig", kc],
        "--provider \"nimbus\" is not known",
        dir.path(),
    )
    .await;
    run_fails_with(
        &[
            "run",
            "--provider",
            "mock",
            "--concurrency",
            "0",
            "--kubeconfig",
            kc,
        ],
        "concurrency",
        dir.path(),
    )
    .await;
    run_fails_with(
        &["run", "--provider", "mock", "--kubeconfig", kc],
        "reading kubeconfig",
        dir.path(),
    )
    .await;
    run_fails_with(&["sandbox", "--nodes", "lots"], "--nodes", dir.path()).await;

    // AWS without a region: the message names the flag and the environment variables.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
         users:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let args = [
        "run",
        "--provider",
        "aws",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    let out = frontdesk(&args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains("--aws-region"), "{stderr}");
}
