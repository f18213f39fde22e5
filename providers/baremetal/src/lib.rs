//! frontdesk-provider-baremetal: bare-metal mode. Services get addresses from IP pools
//! (`IPAddressPool` CRDs), uniquely and durably: each address in use is one cluster-scoped
//! `IPAddressClaim` object, created before the address is published, so the API server (not
//! the controller's memory) decides who holds it.

pub mod alloc;
pub mod crd;
pub mod ranges;
pub mod request;
