//! Service + eligible nodes -> [`LoadBalancerSpec`], pure and without I/O; plus the claim rule
//! (which Services are ours), the cleanup rule and the change fingerprint.

mod build;
mod claim;
mod fingerprint;
#[cfg(test)]
pub(crate) mod fixtures;

use k8s_openapi::api::core::v1::Service;

use crate::annotations::AnnotationError;
use crate::provider::BackendNode;

pub use build::{DEFAULT_AFFINITY_TIMEOUT, HEALTH_CHECK_PATH, MAX_AFFINITY_TIMEOUT, build_spec};
pub use claim::{ClaimPolicy, has_finalizer, is_load_balancer, needs_cleanup, wants_load_balancer};
pub use fingerprint::lb_fingerprint;

/// Everything [`build_spec`] needs.
#[derive(Clone, Copy, Debug)]
pub struct SpecInput<'a> {
    /// The controller's `--cluster-name`.
    pub cluster: &'a str,
    pub service: &'a Service,
    /// The eligible backends (`nodes::eligible_nodes`); sorted again by name, so any order is
    /// fine.
    pub nodes: &'a [BackendNode],
    /// `Capabilities::needs_node_ports` of the provider: a port without a NodePort is then an
    /// impossible spec instead of a load balancer that silently drops traffic.
    pub needs_node_ports: bool,
}

/// One problem with the Service, found before any cloud call: the field in Kubernetes' path
/// notation (`spec.ports[1].nodePort`, `metadata.annotations[frontdesk.dev/internal]`) and a
/// message that says what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<AnnotationError> for SpecError {
    fn from(e: AnnotationError) -> Self {
        SpecError {
            field: e.field(),
            message: format!("{:?} is not valid; {}", e.value, e.expected),
        }
    }
}

/// All errors as one line each, for an Event or a condition message.
pub fn describe_errors(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
