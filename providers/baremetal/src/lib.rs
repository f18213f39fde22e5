//! frontdesk-provider-baremetal: bare-metal mode. Services get addresses from IP pools
//! (`IPAddressPool` CRDs), uniquely and durably: each address in use is one cluster-scoped
//! `IPAddressClaim` object, created before the address is published, so the API server (not
//! the controller's memory) decides who holds it.

pub mod alloc;
mod claiming;
pub mod claims;
pub mod crd;
mod ops;
pub mod pools;
pub mod provider;
pub mod ranges;
pub mod request;
mod sharing;
pub mod speaker;

pub use crd::{crds, crds_yaml};
pub use pools::install;
pub use provider::BareMetalProvider;
