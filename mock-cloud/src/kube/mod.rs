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
pub mod builtin;
pub mod crd;
pub mod selectors;
pub mod store;
pub mod sandbox;
pub mod server;
pub mod watch;
