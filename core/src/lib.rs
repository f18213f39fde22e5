//! frontdesk-core: everything cloud-neutral. The provider contract, pure spec building,
//! the controller, rate limiting and metrics. Never depends on a cloud SDK.

pub mod annotations;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod controller;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod naming;
pub mod nodes;
pub mod provider;
pub mod ratelimit;
pub mod spec;
