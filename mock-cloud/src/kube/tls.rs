//! HTTPS for the sandbox API when it enforces RBAC. client-go (kubectl) applies a kubeconfig's
//! credentials only when the transport is TLS, so tokens over plain HTTP would never arrive.
//!
//! The certificate is a fixed sandbox-only pair in `tls/`: a CA (whose key was discarded after
//! signing) and a server certificate for `127.0.0.1`, `::1` and `localhost`. The server key is
//! public by design; it protects nothing but loopback test traffic.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

const CA_PEM: &str = include_str!("tls/ca.crt");
const CERT_PEM: &str = include_str!("tls/server.crt");
const KEY_PEM: &str = include_str!("tls/server.key");
/// How long shutdown waits for open connections before cutting them.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("parsing the built-in sandbox certificate")]
    Pem(#[source] rustls::pki_types::pem::Error),
    #[error("building the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// The CA certificate, base64 for a kubeconfig's `certificate-authority-data`.
pub fn ca_data() -> String {
    base64::engine::general_purpose::STANDARD.encode(CA_PEM)
}

pub fn acceptor() -> Result<TlsAcceptor, TlsError> {
    let certs = CertificateDer::pem_slice_iter(CERT_PEM.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).map_err(TlsError::Pem)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    // HTTP/1.1 only, like the plain server (watches are chunked HTTP/1.1 streams).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS until `stop` is cancelled, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox API accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        conns.spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "sandbox API connection ended");
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
    // Watches end on the shared shutdown token; give the rest a moment, then cut them.
    let drained = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} });
    if drained.await.is_err() {
        conns.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_certificate_loads() {
        acceptor().unwrap();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_data())
            .unwrap();
        assert!(
            String::from_utf8(pem)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }
}
