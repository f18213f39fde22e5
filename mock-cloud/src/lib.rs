//! frontdesk-mock-cloud: an offline cloud account plus a sandbox Kubernetes API server.
//!
//! It plays the cloud and the cluster and knows nothing of frontdesk: everything in here is
//! reached over HTTP only, the way the real cloud and a real API server are.

pub mod aws;
pub mod faults;
pub mod generic;
pub mod kube;
pub mod launch;
pub mod state;

pub use launch::{MockCloud, MockCloudConfig};
