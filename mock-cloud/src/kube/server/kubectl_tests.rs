//! The real `kubectl` against the sandbox (skipped when kubectl is not installed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::kube::sandbox::{Sandbox, SandboxConfig};

const KUBECTL: &str = "/usr/bin/kubectl";

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(sb: &Sandbox) -> Env {
        let dir = std::env::temp_dir().join(format!("fd-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), sb.kubeconfig_yaml()).unwrap();
        Env { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(self.dir.join("config"))
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::time::timeout(Duration::from_secs(30), self.cmd(args).output())
            .await
            .unwrap()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {text}");
        text
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SVC: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_end_to_end() {
    if !Path::new(KUBECTL).exists() {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let env = Env::new(&sb);
    let ns = env.ok(&["get", "ns"]).await;
    assert!(ns.contains("default") && ns.contains("kube-system"), "{ns}");
    let f = env.file("svc.yaml", SVC);
    let out = env.ok(&["apply", "-f", &f]).await;
    assert!(out.contains("service/web created"), "{out}");
    let out = env.ok(&["apply", "-f", &f]).await;
    assert!(out.contains("service/web unchanged"), "{out}");
    let f2 = env.file("svc2.yaml", &SVC.replace("8080", "9090"));
    let out = env.ok(&["apply", "-f", &f2]).await;
    assert!(out.contains("service/web configured"), "{out}");
    let out = env
        .ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}",
        ])
        .await;
    assert_eq!(out, "9090");
    let out = env.ok(&["get", "svc"]).await;
    assert!(out.contains("NAME") && out.contains("web"), "{out}");
    let out = env.ok(&["label", "svc", "web", "tier=front"]).await;
    assert!(out.contains("service/web labeled"), "{out}");
    let (ok, out) = env.run(&["get", "svc", "nope"]).await;
    assert!(
        !ok && out.contains("Error from server (NotFound): services \"nope\" not found"),
        "{out}"
    );

    // get -w prints the existing row, then a change.
    let mut watch = env
        .cmd(&["get", "svc", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f3 = env.file("svc3.yaml", &SVC.replace("name: web", "name: web2"));
    env.ok(&["apply", "-f", &f3]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watch.start_kill();
    let mut printed = String::new();
    if let Some(mut so) = watch.stdout.take() {
        let _ = so.read_to_string(&mut printed).await;
    }
    assert!(printed.contains("service/web2"), "{printed}");

    let out = env.ok(&["delete", "svc", "web"]).await;
    assert!(out.contains("service \"web\" deleted"), "{out}");
    let out = env.ok(&["apply", "--server-side", "-f", &f]).await;
    assert!(out.contains("service/web serverside-applied"), "{out}");
    sb.shutdown().await;
}
