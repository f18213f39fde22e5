//! The sandbox Kubernetes API server.

pub mod discovery;
pub mod errors;
pub mod nodes;
pub mod openapi;
pub mod patch;
pub mod resources;
pub mod services;
pub mod strategy;
pub mod table;
pub mod validation;
pub mod workload;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod builtin;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod crd;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod selectors;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod store;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod sandbox;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod server;
pub mod sim;
#[allow(clippy::result_large_err)] // ApiError is a whole Status; errors are rare, not hot
pub mod watch;
