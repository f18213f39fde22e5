//! The sandbox Kubernetes API server.

pub mod auth;
pub mod builtin;
pub mod crd;
pub mod discovery;
pub mod errors;
pub mod nodes;
pub mod openapi;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod resources;
pub mod sandbox;
pub mod selectors;
pub mod server;
pub mod services;
pub mod sim;
pub mod store;
pub mod strategy;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;
pub mod workload;
