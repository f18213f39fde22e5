//! The sandbox cluster: a store with the built-in kinds, the `default/kubernetes` Service, the
//! HTTP API server on a local port, and a kubeconfig that points kubectl / kube-rs at it.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::{AuditEntry, Authenticator};
use super::errors::ApiError;
use super::server::{self, App, ServerConfig};
use super::services::{ServiceConfig, ServiceStrategy};
use super::store::{Store, StoreConfig};
use super::tls;

/// Name of the cluster, user and context in the generated kubeconfig.
pub const CONTEXT_NAME: &str = "frontdesk-sandbox";

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub server: ServerConfig,
    /// ClusterIP / NodePort ranges of the Service allocator.
    pub services: ServiceConfig,
    /// Require bearer tokens and enforce RBAC (off by default: everyone may do everything).
    pub enforce_rbac: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreConfig::default(),
            server: ServerConfig::default(),
            services: ServiceConfig::default(),
            enforce_rbac: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("binding the sandbox API server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the bound address")]
    LocalAddr(#[source] std::io::Error),
    #[error("seeding the sandbox cluster")]
    Seed(#[source] ApiError),
    #[error("setting up TLS for the sandbox API")]
    Tls(#[source] tls::TlsError),
}

/// A running sandbox API server.
pub struct Sandbox {
    addr: SocketAddr,
    store: Store,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    auth: Option<Arc<Authenticator>>,
}

/// Registers the per-kind strategies that live in other modules.
fn register_strategies(store: &Store, config: &SandboxConfig) {
    let services = ServiceStrategy::new(config.services.clone());
    store.register_strategy("", "services", Arc::new(services));
}

/// The `default/kubernetes` Service every cluster has.
fn kubernetes_service() -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.1",
            "clusterIPs": ["10.96.0.1"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    })
}

impl Sandbox {
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let store = Store::new(config.store.clone());
        register_strategies(&store, &config);
        store
            .create("", "services", kubernetes_service())
            .map_err(SandboxError::Seed)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SandboxError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(SandboxError::LocalAddr)?;
        let shutdown = CancellationToken::new();
        let auth = config.enforce_rbac.then(|| Arc::new(Authenticator::new()));
        let app = Arc::new(App {
            store: store.clone(),
            config: config.server.clone(),
            shutdown: shutdown.clone(),
            auth: auth.clone(),
        });
        let router = server::router(app);
        let stop = shutdown.clone();
        let task = if auth.is_some() {
            let acceptor = tls::acceptor().map_err(SandboxError::Tls)?;
            tokio::spawn(tls::serve(listener, acceptor, router, stop))
        } else {
            tokio::spawn(async move {
                let serve = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "sandbox API server stopped");
                }
            })
        };
        tracing::info!(%addr, "sandbox API server listening");
        Ok(Sandbox {
            addr,
            store,
            shutdown,
            task,
            auth,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://…`, or `https://…` when RBAC is enforced (see [`tls`]).
    pub fn url(&self) -> String {
        let scheme = if self.auth.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// A kubeconfig for this server: plain HTTP, a user without credentials (with RBAC
    /// enforced: the admin token, which RBAC does not restrict).
    pub fn kubeconfig_yaml(&self) -> String {
        match &self.auth {
            Some(a) => kubeconfig_yaml_with_token(&self.url(), Some(a.admin_token())),
            None => kubeconfig_yaml(&self.url()),
        }
    }

    /// Whether requests need tokens and pass RBAC.
    pub fn enforces_rbac(&self) -> bool {
        self.auth.is_some()
    }

    /// RBAC decisions on resource requests of every non-admin user, oldest first (empty when
    /// RBAC is not enforced).
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.auth.as_ref().map(|a| a.audit()).unwrap_or_default()
    }

    /// A bearer token for the ServiceAccount `namespace/name` (which must exist), as a
    /// TokenRequest would give. `None` when RBAC is not enforced (tokens mean nothing then).
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Result<String, ApiError>> {
        let auth = self.auth.as_ref()?;
        Some(auth.issue(&self.store, namespace, name))
    }

    /// Stops accepting, ends open watches and waits for in-flight requests.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "sandbox API server task failed");
        }
    }
}

/// The kubeconfig text for the HTTPS sandbox (RBAC enforced), trusting its built-in CA and
/// authenticating with a bearer token (`None`: no credentials).
pub fn kubeconfig_yaml_with_token(server: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("  user:\n    token: {t}\n"),
        None => "  user: {}\n".to_string(),
    };
    kubeconfig_yaml(server)
        .replace("  user: {}\n", &user)
        .replace(
            &format!("    server: {server}\n"),
            &format!(
                "    server: {server}\n    certificate-authority-data: {}\n",
                tls::ca_data()
            ),
        )
}

/// The kubeconfig text for a server URL.
pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT_NAME}
  cluster:
    server: {server}
users:
- name: {CONTEXT_NAME}
  user: {{}}
contexts:
- name: {CONTEXT_NAME}
  context:
    cluster: {CONTEXT_NAME}
    user: {CONTEXT_NAME}
    namespace: default
current-context: {CONTEXT_NAME}
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses() {
        let text = kubeconfig_yaml("http://127.0.0.1:1234");
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["current-context"], CONTEXT_NAME);
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
        assert!(v["users"][0]["user"].is_object());
        let text = kubeconfig_yaml_with_token("https://127.0.0.1:1234", Some("t0k"));
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "t0k");
        assert!(v["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    }
}
