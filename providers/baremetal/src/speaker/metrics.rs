//! The speaker's Prometheus metrics (MetalLB's layer-2 names with our prefix, so dashboards
//! port over by a rename) and the small HTTP server exposing them.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpLabel {
    pub ip: String,
}

impl IpLabel {
    pub fn of(ip: IpAddr) -> IpLabel {
        IpLabel { ip: ip.to_string() }
    }
}

pub struct SpeakerMetrics {
    registry: Mutex<Registry>,
    /// ARP requests / neighbour solicitations received for an address this node owns.
    pub requests_received: Family<IpLabel, Counter>,
    /// Replies (ARP replies, solicited NAs) sent.
    pub responses_sent: Family<IpLabel, Counter>,
    /// Gratuitous ARPs and unsolicited NAs sent on takeover.
    pub gratuitous_sent: Family<IpLabel, Counter>,
    /// Addresses this node announces now.
    pub addresses_owned: Gauge,
    /// Speakers seen alive (including this one).
    pub speakers_alive: Gauge,
    /// Caches synced and electing (`/readyz`).
    pub ready: AtomicBool,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SpeakerMetrics {
    pub fn new() -> Self {
        let m = SpeakerMetrics {
            registry: Mutex::new(Registry::default()),
            requests_received: Family::default(),
            responses_sent: Family::default(),
            gratuitous_sent: Family::default(),
            addresses_owned: Gauge::default(),
            speakers_alive: Gauge::default(),
            ready: AtomicBool::new(false),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "frontdesk_layer2_requests_received",
                "ARP requests and neighbour solicitations received for an owned address",
                m.requests_received.clone(),
            );
            r.register(
                "frontdesk_layer2_responses_sent",
                "ARP replies and solicited neighbour advertisements sent",
                m.responses_sent.clone(),
            );
            r.register(
                "frontdesk_layer2_gratuitous_sent",
                "Gratuitous ARPs and unsolicited neighbour advertisements sent",
                m.gratuitous_sent.clone(),
            );
            r.register(
                "frontdesk_speaker_addresses_owned",
                "Addresses this node announces",
                m.addresses_owned.clone(),
            );
            r.register(
                "frontdesk_speaker_speakers_alive",
                "Speakers whose Lease this node sees renewed",
                m.speakers_alive.clone(),
            );
        }
        m
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.clear();
        }
        out
    }
}

async fn metrics(State(m): State<Arc<SpeakerMetrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Arc<SpeakerMetrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, m: Arc<SpeakerMetrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(m);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "speaker metrics server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_exposed() {
        let m = SpeakerMetrics::new();
        let ip: IpAddr = [192, 0, 2, 1].into();
        m.requests_received.get_or_create(&IpLabel::of(ip)).inc();
        m.addresses_owned.set(1);
        let text = m.encode();
        assert!(text.contains("frontdesk_layer2_requests_received_total{ip=\"192.0.2.1\"} 1"));
        assert!(text.contains("frontdesk_speaker_addresses_owned 1"));
        assert!(text.contains("# EOF"));
    }
}
