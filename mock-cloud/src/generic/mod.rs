//! The generic cloud: a small JSON API of its own, used by the `mock` provider.
//!
//! Load balancers are addressed by their unique name and point at instances of the shared
//! [`Instances`] registry (the sandbox's Nodes). The API is shaped so one ensure of a new
//! Service costs 1 read + 2 writes (GET 404, create with listeners and health check, add
//! backends), a converged ensure 1 read, and a node change exactly 1 backends call per LB:
//!
//! | method and path                                 | operation            | class  |
//! |-------------------------------------------------|----------------------|--------|
//! | `POST /v1/loadbalancers`                        | `CreateLoadBalancer` | mutate |
//! | `GET /v1/loadbalancers/{name}`                  | `GetLoadBalancer`    | read   |
//! | `GET /v1/loadbalancers?tag=k=v&page_size=&page_token=` | `ListLoadBalancers` | read |
//! | `PUT /v1/loadbalancers/{name}`                  | `UpdateLoadBalancer` | mutate |
//! | `POST /v1/loadbalancers/{name}/backends` `{add, remove}` | `UpdateBackends` | mutate |
//! | `DELETE .../backends`, `POST .../backends/remove` `{remove}` | `UpdateBackends` | mutate |
//! | `DELETE /v1/loadbalancers/{name}`               | `DeleteLoadBalancer` | mutate |
//!
//! Admin (not throttled, not logged): `GET|DELETE /_admin/calls[?since=seq]`,
//! `GET|POST /_admin/faults`, `GET /_admin/state`, `DELETE /_admin/loadbalancers/{name}`,
//! `DELETE /_admin/loadbalancers/{name}/listeners/{port}` (out-of-band changes for drift tests).

mod addresses;
mod api;
pub mod model;
mod store;

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{OP_BACKENDS, OP_CREATE, OP_DELETE, OP_GET, OP_LIST, OP_UPDATE, router};
pub use store::{DEFAULT_PAGE_SIZE, GenericCloud, MAX_PAGE_SIZE};

use crate::faults::Faults;
use crate::state::Instances;

#[derive(Debug, thiserror::Error)]
pub enum GenericError {
    #[error("binding the generic cloud API to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the bound address of the generic cloud API")]
    LocalAddr(#[source] std::io::Error),
}

/// A running generic cloud server. Dropping the handle stops the server.
#[derive(Debug)]
pub struct GenericHandle {
    addr: SocketAddr,
    cloud: GenericCloud,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl GenericHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, what the `mock` provider takes as endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The in-process state, for tests and for the sandbox (same data the API serves).
    pub fn cloud(&self) -> &GenericCloud {
        &self.cloud
    }

    pub fn faults(&self) -> &Faults {
        self.cloud.faults()
    }

    /// Stop accepting, let in-flight requests finish, and wait for the server task.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // A panicked server task has nothing left to clean up.
            let _ = task.await;
        }
    }
}

impl Drop for GenericHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Bind `listen` (port 0 picks a free one) and serve the generic API in a background task.
pub async fn serve(
    listen: SocketAddr,
    instances: Instances,
    faults: Faults,
) -> Result<GenericHandle, GenericError> {
    let cloud = GenericCloud::new(instances, faults);
    serve_cloud(listen, cloud).await
}

/// Like [`serve`], for a cloud built by the caller (custom address pools).
pub async fn serve_cloud(
    listen: SocketAddr,
    cloud: GenericCloud,
) -> Result<GenericHandle, GenericError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| GenericError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(GenericError::LocalAddr)?;
    let cancel = CancellationToken::new();
    let app = router(cloud.clone());
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "generic cloud server stopped");
        }
    });
    tracing::info!(%addr, "generic cloud API listening");
    Ok(GenericHandle {
        addr,
        cloud,
        cancel,
        task: Some(task),
    })
}

#[cfg(test)]
mod tests;
