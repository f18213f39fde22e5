//! Allocation of ClusterIPs, nodePorts and `healthCheckNodePort` for one write, as a
//! transaction: everything taken is given back if the write fails (`Drop` reverts), and
//! releases are deferred until `commit`, so a failed update never loses what the old object
//! held. A dry-run transaction reads the allocators but never changes them.

use rand::rngs::StdRng;

use super::ips::{IpAllocator, IpError};
use super::model::{
    EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT, NONE, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK,
    SINGLE_STACK, Spec,
};
use super::ports::{PortAllocator, PortError};
use super::validate_ips::validate_cluster_ips_related;
use crate::kube::errors::{ApiError, Cause};
use crate::kube::validation::{go_quote, go_string_slice};

/// Everything allocation state lives in, behind the strategy's one mutex.
#[derive(Debug)]
pub struct Allocators {
    pub ports: PortAllocator,
    pub ips: IpAllocator,
    pub rng: StdRng,
}

pub struct Txn<'a> {
    al: &'a mut Allocators,
    dry_run: bool,
    taken_ports: Vec<i64>,
    taken_ips: Vec<String>,
    release_ports: Vec<i64>,
    release_ips: Vec<String>,
    done: bool,
}

impl<'a> Txn<'a> {
    pub fn new(al: &'a mut Allocators, dry_run: bool) -> Self {
        Self {
            al,
            dry_run,
            taken_ports: Vec::new(),
            taken_ips: Vec::new(),
            release_ports: Vec::new(),
            release_ips: Vec::new(),
            done: false,
        }
    }

    fn allocate_port(&mut self, port: i64) -> Result<(), PortError> {
        if self.dry_run {
            self.al.ports.check(port)?;
            if self.taken_ports.contains(&port) {
                return Err(PortError::Allocated);
            }
        } else {
            self.al.ports.allocate(port)?;
        }
        self.taken_ports.push(port);
        Ok(())
    }

    fn allocate_next_port(&mut self) -> Result<i64, PortError> {
        let port = if self.dry_run {
            // Upstream's dry-run answers a dummy just above the highest port this operation
            // took (or 32769), without looking at the range; clients see the same numbers.
            self.taken_ports.iter().copied().max().unwrap_or(32768) + 1
        } else {
            self.al.ports.allocate_next(&mut self.al.rng)?
        };
        self.taken_ports.push(port);
        Ok(port)
    }

    fn allocate_ip(&mut self, ip: &str) -> Result<(), IpError> {
        if self.dry_run {
            self.al.ips.check(ip)?;
        } else {
            self.al.ips.allocate(ip)?;
            self.taken_ips.push(ip.to_string());
        }
        Ok(())
    }

    fn allocate_next_ip(&mut self) -> Result<String, IpError> {
        if self.dry_run {
            return Ok(self.al.ips.dry_run_placeholder().to_string());
        }
        let ip = self.al.ips.allocate_next(&mut self.al.rng)?.to_string();
        self.taken_ips.push(ip.clone());
        Ok(ip)
    }

    fn release_port_deferred(&mut self, port: i64) {
        self.release_ports.push(port);
    }

    fn release_ip_deferred(&mut self, ip: &str) {
        self.release_ips.push(ip.to_string());
    }

    /// The write is going to happen: perform the deferred releases.
    pub fn commit(mut self) {
        self.done = true;
        if self.dry_run {
            return;
        }
        for p in std::mem::take(&mut self.release_ports) {
            self.al.ports.release(p);
        }
        for ip in std::mem::take(&mut self.release_ips) {
            self.al.ips.release(&ip);
        }
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.done || self.dry_run {
            return;
        }
        for p in std::mem::take(&mut self.taken_ports) {
            self.al.ports.release(p);
        }
        for ip in std::mem::take(&mut self.taken_ips) {
            self.al.ips.release(&ip);
        }
    }
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("Service", "", name, causes)
}

fn family_of(ip: &str) -> &'static str {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "IPv4",
        Ok(std::net::IpAddr::V6(_)) => "IPv6",
        Err(_) => "unknown",
    }
}

fn other_family(f: &str) -> &'static str {
    if f == "IPv4" { "IPv6" } else { "IPv4" }
}

fn policy_quote(spec: &Spec) -> String {
    go_quote(spec.ip_family_policy.as_deref().unwrap_or("null"))
}

/// A PreferDualStack service whose IP fields did not change is left alone, so that a
/// cluster turning single- or dual-stack never silently re-shapes it.
fn matching_prefer_dual_stack(new: &Spec, old: Option<&Spec>) -> bool {
    let Some(old) = old else { return false };
    let Some(policy) = new.ip_family_policy.as_deref() else {
        return false;
    };
    old.type_ == new.type_
        && new.needs_cluster_ip()
        && policy == PREFER_DUAL_STACK
        && old
            .ip_family_policy
            .as_deref()
            .is_none_or(|p| p == PREFER_DUAL_STACK)
        && old.cluster_ips == new.cluster_ips
        && old.ip_families == new.ip_families
}

/// `initIPFamilyFields` for a cluster with one configured family.
fn init_ip_family_fields(
    al: &Allocators,
    new: &mut Spec,
    old: Option<&Spec>,
    name: &str,
) -> Result<(), ApiError> {
    if new.type_ == EXTERNAL_NAME || matching_prefer_dual_stack(new, old) {
        return Ok(());
    }
    let configured = al.ips.family();
    if new.ip_family_policy.is_none() {
        new.ip_family_policy = Some(match old.and_then(|o| o.ip_family_policy.clone()) {
            Some(p) => p,
            None if new.cluster_ip == NONE
                && new.selector.as_ref().is_none_or(|s| s.is_empty()) =>
            {
                REQUIRE_DUAL_STACK.to_string()
            }
            None => SINGLE_STACK.to_string(),
        });
    }
    let causes = validate_cluster_ips_related(new);
    if !causes.is_empty() {
        return Err(invalid(name, causes));
    }
    let mut el = Vec::new();
    let single = new.ip_family_policy.as_deref() == Some(SINGLE_STACK);
    if let Some(old) = old {
        if single {
            if old.cluster_ips == new.cluster_ips && new.cluster_ips.len() > 1 {
                new.cluster_ips.truncate(1);
            }
            if old.ip_families == new.ip_families && new.ip_families.len() > 1 {
                new.ip_families.truncate(1);
            }
        } else {
            if !new.cluster_ips.is_empty() && new.cluster_ips.len() < old.cluster_ips.len() {
                el.push(Cause::invalid(
                    "spec.ipFamilyPolicy",
                    policy_quote(new),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !new.ip_families.is_empty() && new.ip_families.len() < old.ip_families.len() {
                el.push(Cause::invalid(
                    "spec.ipFamilyPolicy",
                    policy_quote(new),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if single {
        if new.cluster_ips.len() == 2 {
            el.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                policy_quote(new),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if new.ip_families.len() == 2 {
            el.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                policy_quote(new),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    for i in 0..new.cluster_ips.len() {
        if new.cluster_ips[i] == NONE {
            break;
        }
        let fam = family_of(&new.cluster_ips[i]);
        if i >= new.ip_families.len() {
            if fam == configured {
                new.ip_families.push(fam.to_string());
            } else {
                el.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    go_string_slice(&new.cluster_ips),
                    &format!("{fam} is not configured on this cluster"),
                ));
            }
        }
    }
    if !el.is_empty() {
        return Err(invalid(name, el));
    }
    if new.cluster_ip == NONE && new.selector.as_ref().is_none_or(|s| s.is_empty()) {
        // Headless and selectorless may claim families the cluster does not serve.
        if new.ip_families.is_empty() {
            new.ip_families = vec![configured.to_string()];
        }
        if new.ip_families.len() < 2 && !single {
            let other = other_family(&new.ip_families[0]);
            new.ip_families.push(other.to_string());
        }
        return Ok(());
    }
    if new.ip_family_policy.as_deref() == Some(REQUIRE_DUAL_STACK) {
        el.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            policy_quote(new),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, fam) in new.ip_families.iter().enumerate() {
        if fam != configured {
            el.push(Cause::invalid(
                format!("spec.ipFamilies[{i}]"),
                go_quote(fam),
                "not configured on this cluster",
            ));
        }
    }
    if !el.is_empty() {
        return Err(invalid(name, el));
    }
    if new.ip_families.is_empty() {
        new.ip_families = vec![configured.to_string()];
    }
    Ok(())
}

/// `allocClusterIPs`: one address per (configured) family, explicit or dynamic.
fn alloc_cluster_ips(txn: &mut Txn<'_>, spec: &mut Spec, name: &str) -> Result<(), ApiError> {
    if spec.type_ == EXTERNAL_NAME || spec.cluster_ips.first().is_some_and(|ip| ip == NONE) {
        return Ok(());
    }
    for i in 0..spec.ip_families.len() {
        if spec.cluster_ips.len() <= i {
            spec.cluster_ips.push(String::new());
        }
        let requested = spec.cluster_ips[i].clone();
        let ip = if requested.is_empty() {
            txn.allocate_next_ip()
                .map_err(|e| ApiError::internal(format!("failed to allocate a serviceIP: {e}")))?
        } else {
            txn.allocate_ip(&requested).map_err(|e| {
                invalid(
                    name,
                    vec![Cause::invalid(
                        "spec.clusterIPs",
                        go_string_slice(&spec.cluster_ips),
                        &format!("failed to allocate IP {requested}: {e}"),
                    )],
                )
            })?;
            requested
        };
        if i == 0 {
            spec.cluster_ip = ip.clone();
        }
        spec.cluster_ips[i] = ip;
    }
    Ok(())
}

fn port_invalid(name: &str, i: usize, value: i64, e: &PortError) -> ApiError {
    invalid(
        name,
        vec![Cause::invalid(
            format!("spec.ports[{i}].nodePort"),
            value,
            &e.to_string(),
        )],
    )
}

fn next_port_error(e: &PortError) -> ApiError {
    ApiError::internal(format!("failed to allocate a nodePort: {e}"))
}

/// `initNodePorts`: entries with the same service `port` share one nodePort (TCP+UDP 53).
fn init_node_ports(txn: &mut Txn<'_>, spec: &mut Spec, name: &str) -> Result<(), ApiError> {
    let allocate_all = spec.should_allocate_node_ports();
    let mut by_port: Vec<(i64, i64)> = Vec::new();
    for i in 0..spec.ports.len() {
        let (port, node_port) = (spec.ports[i].port, spec.ports[i].node_port);
        if node_port == 0 && !allocate_all {
            continue;
        }
        match by_port.iter().find(|(p, _)| *p == port).map(|(_, n)| *n) {
            None => {
                let requested = spec
                    .ports
                    .iter()
                    .find(|p| p.port == port && p.node_port != 0)
                    .map_or(0, |p| p.node_port);
                let np = if requested != 0 {
                    txn.allocate_port(requested)
                        .map_err(|e| port_invalid(name, i, requested, &e))?;
                    requested
                } else {
                    txn.allocate_next_port().map_err(|e| next_port_error(&e))?
                };
                spec.ports[i].node_port = np;
                by_port.push((port, np));
            }
            Some(shared) if node_port != shared => {
                if node_port == 0 {
                    spec.ports[i].node_port = shared;
                } else {
                    txn.allocate_port(node_port)
                        .map_err(|e| port_invalid(name, i, node_port, &e))?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `allocHealthCheckNodePort`; its failures are 500s upstream, not 422s.
fn alloc_hc_node_port(txn: &mut Txn<'_>, spec: &mut Spec) -> Result<(), ApiError> {
    let hc = spec.health_check_node_port;
    if hc != 0 {
        txn.allocate_port(hc).map_err(|e| {
            ApiError::internal(format!(
                "failed to allocate requested HealthCheck NodePort {hc}: {e}"
            ))
        })?;
    } else {
        // The `0` is upstream's: the variable printed is shadowed.
        let np = txn.allocate_next_port().map_err(|e| {
            ApiError::internal(format!("failed to allocate a HealthCheck NodePort 0: {e}"))
        })?;
        spec.health_check_node_port = np;
    }
    Ok(())
}

/// `allocateCreate`.
pub fn allocate_create(txn: &mut Txn<'_>, spec: &mut Spec, name: &str) -> Result<(), ApiError> {
    init_ip_family_fields(txn.al, spec, None, name)?;
    alloc_cluster_ips(txn, spec, name)?;
    if spec.needs_node_port() {
        init_node_ports(txn, spec, name)?;
    }
    if spec.needs_hc_node_port() {
        alloc_hc_node_port(txn, spec)?;
    }
    Ok(())
}

/// `updateNodePorts`: no same-port sharing here, unlike create (upstream behaves so too).
fn update_node_ports(
    txn: &mut Txn<'_>,
    new: &mut Spec,
    old: &Spec,
    name: &str,
) -> Result<(), ApiError> {
    let old_numbers = old.node_ports();
    let allocate_all = new.should_allocate_node_ports();
    let mut taken_here: Vec<i64> = Vec::new();
    let mut seen: Vec<(String, i64)> = Vec::new();
    for i in 0..new.ports.len() {
        let np = new.ports[i].node_port;
        if np == 0 && !allocate_all {
            continue;
        }
        let np = if np != 0 {
            if !old_numbers.contains(&np) && !taken_here.contains(&np) {
                txn.allocate_port(np)
                    .map_err(|e| port_invalid(name, i, np, &e))?;
                taken_here.push(np);
            }
            np
        } else {
            let n = txn.allocate_next_port().map_err(|e| next_port_error(&e))?;
            new.ports[i].node_port = n;
            n
        };
        let key = (new.ports[i].protocol.clone(), np);
        if seen.contains(&key) {
            return Err(ApiError::internal(format!(
                "duplicate nodePort: {{{} {}}}",
                key.0, key.1
            )));
        }
        seen.push(key);
    }
    let new_numbers = new.node_ports();
    for n in old_numbers {
        if !new_numbers.contains(&n) {
            txn.release_port_deferred(n);
        }
    }
    Ok(())
}

/// `allocateUpdate`: type transitions allocate or (deferred) release.
pub fn allocate_update(
    txn: &mut Txn<'_>,
    new: &mut Spec,
    old: &Spec,
    name: &str,
) -> Result<(), ApiError> {
    init_ip_family_fields(txn.al, new, Some(old), name)?;

    // ClusterIPs (single-stack sandbox: no upgrade/downgrade of a secondary family).
    if !matching_prefer_dual_stack(new, Some(old)) {
        if old.type_ == EXTERNAL_NAME && new.type_ != EXTERNAL_NAME {
            alloc_cluster_ips(txn, new, name)?;
        } else if !old.is_headless() && old.type_ != EXTERNAL_NAME && new.type_ == EXTERNAL_NAME {
            for ip in &old.cluster_ips {
                txn.release_ip_deferred(ip);
            }
        }
    }

    let old_np = old.type_ == NODE_PORT || old.type_ == LOAD_BALANCER;
    if old_np && !new.needs_node_port() {
        for n in old.node_ports() {
            txn.release_port_deferred(n);
        }
    }
    if new.needs_node_port() {
        update_node_ports(txn, new, old, name)?;
    }
    match (old.needs_hc_node_port(), new.needs_hc_node_port()) {
        (false, true) => alloc_hc_node_port(txn, new)?,
        (true, false) => txn.release_port_deferred(old.health_check_node_port),
        _ => {}
    }
    Ok(())
}

/// `releaseAllocatedResources` on delete.
pub fn release_all(al: &mut Allocators, spec: &Spec) {
    if spec.type_ != EXTERNAL_NAME && spec.cluster_ips.first().is_none_or(|ip| ip != NONE) {
        for ip in &spec.cluster_ips {
            al.ips.release(ip);
        }
    }
    for n in spec.node_ports() {
        al.ports.release(n);
    }
    if spec.needs_hc_node_port() && spec.health_check_node_port > 0 {
        al.ports.release(spec.health_check_node_port);
    }
}
