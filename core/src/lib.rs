//! frontdesk-core: everything cloud-neutral. The provider contract, pure spec building,
//! the controller, rate limiting and metrics. Never depends on a cloud SDK.

pub mod metrics;
pub mod provider;
pub mod ratelimit;
