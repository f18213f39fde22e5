//! Service registry semantics: ClusterIP and NodePort allocation, defaulting, validation.
//!
//! The write path mirrors kube-apiserver's: defaulting, then (on update) carrying over
//! allocated values, then allocation, then type-dependent field clearing, then validation.
//! Allocation runs before validation, as upstream, so allocation errors win over field
//! errors; a failed validation gives back whatever the allocation took.

// `ApiError` is the error type of the `Strategy` contract and is built only on the cold
// failure path, so its size does not matter here.

mod alloc;
mod bitmap;
mod defaults;
mod ips;
mod model;
mod ports;
mod validate;
mod validate_ips;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use self::alloc::{Allocators, Txn};
use self::model::{LOAD_BALANCER, Spec};
use super::errors::{ApiError, Cause};
use super::strategy::{Strategy, WriteCtx};

pub use self::ips::IpError;
pub use self::ports::PortError;

/// Flags of the sandbox apiserver that shape Service allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `--service-cluster-ip-range` (one family).
    pub cluster_ip_range: ipnet::IpNet,
    /// `--service-node-port-range`, both ends inclusive.
    pub node_port_range: (u16, u16),
    /// Seed for the random scan start; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            cluster_ip_range: ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                std::net::Ipv4Addr::new(10, 96, 0, 0),
                16,
            )),
            node_port_range: (30000, 32767),
            seed: None,
        }
    }
}

/// The `Strategy` for `v1` Services.
#[derive(Debug)]
pub struct ServiceStrategy {
    state: Mutex<Allocators>,
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn annotations(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/annotations")
        .and_then(Value::as_object)
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("Service", "", name, validate::dedup(causes))
}

/// Sets `status.loadBalancer` to `{}` (what upstream's zero value serialises to).
fn clear_lb_status(obj: &mut Value) {
    if let Some(root) = obj.as_object_mut() {
        let status = root.entry("status").or_insert_with(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            s.insert("loadBalancer".to_string(), json!({}));
        } else {
            *status = json!({"loadBalancer": {}});
        }
    }
}

impl ServiceStrategy {
    pub fn new(cfg: ServiceConfig) -> Self {
        let rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let (first, last) = cfg.node_port_range;
        Self {
            state: Mutex::new(Allocators {
                ports: ports::PortAllocator::new(first, last),
                ips: ips::IpAllocator::new(cfg.cluster_ip_range),
                rng,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Allocators> {
        // A panic while holding the lock leaves consistent bitmaps (each step is atomic),
        // so keep serving rather than poisoning every later write.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Node ports currently held (service ports and health-check ports).
    pub fn allocated_node_ports(&self) -> usize {
        self.lock().ports.used()
    }

    /// ClusterIPs currently held.
    pub fn allocated_ips(&self) -> usize {
        self.lock().ips.used()
    }

    fn update_status(&self, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        let spec = Spec::parse(old)?;
        if spec.type_ == LOAD_BALANCER {
            defaults::default_ingress_ip_mode(new);
        }
        let causes = validate_ips::validate_lb_status(new, &spec);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(invalid(&name_of(new), causes))
        }
    }
}

impl Strategy for ServiceStrategy {
    fn create(&self, obj: &mut Value, ctx: &WriteCtx) -> Result<(), ApiError> {
        let name = name_of(obj);
        let mut spec = Spec::parse(obj)?;
        defaults::set_defaults(&mut spec);
        defaults::normalize_cluster_ips(&mut spec, None);

        let mut guard = self.lock();
        let mut txn = Txn::new(&mut guard, ctx.dry_run);
        alloc::allocate_create(&mut txn, &mut spec, &name)?;
        let causes = validate::validate_service(&spec, annotations(obj));
        if !causes.is_empty() {
            return Err(invalid(&name, causes));
        }
        spec.write(obj);
        // Status is never taken from a create request.
        if let Some(root) = obj.as_object_mut() {
            root.insert("status".to_string(), json!({"loadBalancer": {}}));
        }
        txn.commit();
        Ok(())
    }

    fn update(&self, old: &Value, new: &mut Value, ctx: &WriteCtx) -> Result<(), ApiError> {
        if ctx.status_only {
            return self.update_status(old, new);
        }
        let name = name_of(new);
        let old_spec = Spec::parse(old)?;
        let mut spec = Spec::parse(new)?;
        defaults::set_defaults(&mut spec);
        defaults::patch_allocated_values(&mut spec, &old_spec);
        defaults::normalize_cluster_ips(&mut spec, Some(&old_spec));

        let mut guard = self.lock();
        let mut txn = Txn::new(&mut guard, ctx.dry_run);
        alloc::allocate_update(&mut txn, &mut spec, &old_spec, &name)?;
        let wipe_lb_status = defaults::drop_type_dependent_fields(&mut spec, &old_spec);
        let causes = validate::validate_service_update(&spec, &old_spec, annotations(new));
        if !causes.is_empty() {
            return Err(invalid(&name, causes));
        }
        // Upstream stored it before learning better and hides it on read (defaultOnRead);
        // storing the read view gives clients the same answer.
        if spec.type_ == model::EXTERNAL_NAME {
            spec.internal_traffic_policy = None;
        }
        spec.write(new);
        // The main resource never writes status: keep the stored one.
        if let Some(root) = new.as_object_mut() {
            match old.get("status") {
                Some(s) => root.insert("status".to_string(), s.clone()),
                None => root.shift_remove("status"),
            };
        }
        if wipe_lb_status {
            clear_lb_status(new);
        }
        txn.commit();
        Ok(())
    }

    fn delete(&self, old: &Value, ctx: &WriteCtx) {
        if ctx.dry_run {
            return;
        }
        // A stored object always parses; if it somehow does not, there is nothing to free.
        if let Ok(spec) = Spec::parse(old) {
            alloc::release_all(&mut self.lock(), &spec);
        }
    }
}
