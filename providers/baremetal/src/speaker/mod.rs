//! `frontdesk speaker`: one per node (a DaemonSet). Elects one node per address from what
//! every speaker sees in the API (no per-Service writes), answers ARP/NDP for the addresses this
//! node wins, announces takeovers at once, and goes silent at once on losing an address.
//!
//! - [`election`]: who announces what (pure, rendezvous hashing).
//! - [`liveness`]: one Lease per speaker, renewed every ~300 ms; expiry judged locally.
//! - [`responder`] + [`packet`]: raw-socket ARP/NDP answering and gratuitous announcements.
//! - [`run`]: the watch loop tying them together.

pub mod election;
pub mod lab;
pub mod liveness;
pub mod metrics;
pub mod packet;
pub mod responder;
mod run;
pub mod status;
pub mod view;

use std::net::SocketAddr;
use std::time::Duration;

pub use liveness::LeaseTiming;
pub use responder::InterfaceFilter;
pub use run::run;

/// Everything `frontdesk speaker` is told.
#[derive(Clone, Debug)]
pub struct SpeakerConfig {
    /// This node's name (the Node object's name; from the downward API in the chart).
    pub node: String,
    /// Namespace of the speaker Leases (the speaker's own).
    pub namespace: String,
    pub timing: LeaseTiming,
    pub interfaces: InterfaceFilter,
    pub metrics_listen: Option<SocketAddr>,
    /// How often interfaces are re-read (link up/down, new interfaces).
    pub interface_scan: Duration,
    /// Takeover announcements: one at once, then one per `garp_interval` while within
    /// `garp_window` (MetalLB: 1100 ms and 5 s).
    pub garp_interval: Duration,
    pub garp_window: Duration,
    /// Taking an address from a node that is still alive (a label, endpoint or pool change
    /// moved it, or this speaker is joining) waits this long, so the old owner, which sees the
    /// same change at about the same time, has gone silent first: never two MACs at once.
    /// Taking over from a dead or departed speaker is immediate.
    pub handover_delay: Duration,
}

impl SpeakerConfig {
    pub fn new(node: &str, namespace: &str) -> Self {
        Self {
            node: node.to_string(),
            namespace: namespace.to_string(),
            timing: LeaseTiming::default(),
            interfaces: InterfaceFilter::default(),
            metrics_listen: None,
            interface_scan: Duration::from_secs(1),
            garp_interval: Duration::from_millis(1100),
            garp_window: Duration::from_secs(5),
            handover_delay: Duration::from_millis(200),
        }
    }

    /// Bad settings, named with the fix.
    pub fn validate(&self) -> Result<(), SpeakerError> {
        let bad = |field: &'static str, problem: String| SpeakerError::Config { field, problem };
        if self.node.is_empty() {
            return Err(bad(
                "--node-name",
                "is empty; pass the Node's name (spec.nodeName via the downward API)".into(),
            ));
        }
        if self.timing.renew.is_zero() {
            return Err(bad("--lease-renew-ms", "must be above zero".into()));
        }
        if self.timing.expiry < self.timing.renew * 2 {
            return Err(bad(
                "--lease-expiry-ms",
                format!(
                    "{:?} is less than twice the renew period {:?}; one late renewal would look like a dead node",
                    self.timing.expiry, self.timing.renew
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("{field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Responder(#[from] responder::ResponderError),
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the {0} watch stopped before its first list completed")]
    Watch(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let ok = SpeakerConfig::new("node-1", "default");
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.node.clear();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--node-name")
        );
        let mut c = ok.clone();
        c.timing.expiry = Duration::from_millis(400);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--lease-expiry-ms")
        );
        let mut c = ok;
        c.timing.renew = Duration::ZERO;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--lease-renew-ms")
        );
    }
}
