//! The sandbox cluster: a store with the built-in kinds, the `default/kubernetes` Service, the
//! HTTP API server on a local port, and a kubeconfig that points kubectl / kube-rs at it.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::errors::ApiError;
use super::server::{self, App, ServerConfig};
use super::services::{ServiceConfig, ServiceStrategy};
use super::store::{Store, StoreConfig};

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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: StoreConfig::default(),
            server: ServerConfig::default(),
            services: ServiceConfig::default(),
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
}

/// A running sandbox API server.
pub struct Sandbox {
    addr: SocketAddr,
    store: Store,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
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
        let app = Arc::new(App {
            store: store.clone(),
            config: config.server.clone(),
            shutdown: shutdown.clone(),
        });
        let router = server::router(app);
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox API server stopped");
            }
        });
        tracing::info!(%addr, "sandbox API server listening");
        Ok(Sandbox {
            addr,
            store,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// A kubeconfig for this server: plain HTTP, a user without credentials.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    /// Stops accepting, ends open watches and waits for in-flight requests.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "sandbox API server task failed");
        }
    }
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
    }
}
