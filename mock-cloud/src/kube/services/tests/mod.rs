//! Behaviour of the Service strategy end to end on JSON objects: the checklist of
//! `nodeport-allocation.md` §9 plus upstream's exact error texts.

mod create;
mod update;

use serde_json::{Value, json};

use super::{ServiceConfig, ServiceStrategy};
use crate::kube::errors::ApiError;
use crate::kube::strategy::{Strategy, WriteCtx};

pub(super) fn strategy() -> ServiceStrategy {
    ServiceStrategy::new(ServiceConfig {
        seed: Some(42),
        ..ServiceConfig::default()
    })
}

pub(super) fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

pub(super) const WRITE: WriteCtx = WriteCtx {
    dry_run: false,
    status_only: false,
};
pub(super) const DRY: WriteCtx = WriteCtx {
    dry_run: true,
    status_only: false,
};
pub(super) const STATUS: WriteCtx = WriteCtx {
    dry_run: false,
    status_only: true,
};

pub(super) fn create(s: &ServiceStrategy, mut obj: Value) -> Result<Value, ApiError> {
    s.create(&mut obj, &WRITE).map(|()| obj)
}

pub(super) fn created(s: &ServiceStrategy, obj: Value) -> Value {
    match create(s, obj) {
        Ok(v) => v,
        Err(e) => panic!("create failed: {e}"),
    }
}

pub(super) fn update(s: &ServiceStrategy, old: &Value, mut new: Value) -> Result<Value, ApiError> {
    s.update(old, &mut new, &WRITE).map(|()| new)
}

pub(super) fn updated(s: &ServiceStrategy, old: &Value, new: Value) -> Value {
    match update(s, old, new) {
        Ok(v) => v,
        Err(e) => panic!("update failed: {e}"),
    }
}

pub(super) fn node_ports(obj: &Value) -> Vec<i64> {
    obj["spec"]["ports"].as_array().map_or(vec![], |ps| {
        ps.iter().filter_map(|p| p["nodePort"].as_i64()).collect()
    })
}

pub(super) fn node_port_svc(name: &str) -> Value {
    svc(name, json!({"type": "NodePort", "ports": [{"port": 80}]}))
}

pub(super) fn err_message(r: Result<Value, ApiError>) -> (u16, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => (e.code, e.message),
    }
}
