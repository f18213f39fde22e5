//! MetalLB's rules for two Services on one address (pure): the same sharing key, no port and
//! protocol in common, and for `externalTrafficPolicy: Local` the same pods.

use crate::alloc::{Holding, User};
use crate::request::ServiceRequest;

pub(crate) fn holders(h: &Holding) -> String {
    if h.users.is_empty() {
        return "another Service".into();
    }
    let names: Vec<String> = h
        .users
        .iter()
        .map(|u| format!("{}/{}", u.namespace, u.name))
        .collect();
    format!("Service {}", names.join(", "))
}

/// MetalLB's sharing rules: same non-empty key, no (protocol, port) overlap, same backend key.
pub fn share_check(h: &Holding, req: &ServiceRequest) -> Result<(), String> {
    let others: Vec<&User> = h.users.iter().filter(|u| u.uid != req.uid).collect();
    if others.is_empty() && !h.users.is_empty() {
        return Ok(());
    }
    if h.users.is_empty() {
        return Err("claimed by an unknown holder".into());
    }
    match (&req.sharing_key, &h.sharing_key) {
        (Some(a), Some(b)) if a == b => {}
        (None, _) => return Err("this Service has no allow-shared-ip key".into()),
        (Some(_), None) => return Err("the holder does not allow sharing".into()),
        (Some(a), Some(b)) => return Err(format!("sharing keys differ: {a:?} vs {b:?}")),
    }
    for u in &others {
        if u.backend_key != req.backend_key {
            return Err(format!(
                "{}/{} has a different externalTrafficPolicy or pod selector",
                u.namespace, u.name
            ));
        }
        if let Some((p, n)) = u.ports.iter().find(|p| req.ports.contains(p)) {
            return Err(format!(
                "port {}/{n} is already used by {}/{}",
                p.as_str(),
                u.namespace,
                u.name
            ));
        }
    }
    Ok(())
}
