//! The sandbox Kubernetes API server.

pub mod errors;
pub mod patch;
pub mod resources;
pub mod services;
pub mod strategy;
