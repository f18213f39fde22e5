//! The generic cloud's in-memory state and its operations (no HTTP here).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::addresses::{self, Pool};
use super::model::{
    ApiError, BackendsRequest, CreateRequest, HealthCheck, LbState, ListResponse, Listener,
    LoadBalancer, Scheme, SessionAffinity, UpdateRequest, validate_config, validate_name,
    validate_tags,
};
use crate::faults::Faults;
use crate::state::Instances;

/// Default and largest page of `GET /v1/loadbalancers`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 500;

#[derive(Debug)]
struct Stored {
    id: String,
    name: String,
    scheme: Scheme,
    address: Ipv4Addr,
    tags: BTreeMap<String, String>,
    listeners: Vec<Listener>,
    health_check: HealthCheck,
    source_ranges: Vec<String>,
    session_affinity: SessionAffinity,
    backends: BTreeSet<String>,
    ready_at: Instant,
    created_at: String,
}

impl Stored {
    fn view(&self, now: Instant) -> LoadBalancer {
        LoadBalancer {
            id: self.id.clone(),
            name: self.name.clone(),
            scheme: self.scheme,
            address: IpAddr::V4(self.address),
            tags: self.tags.clone(),
            listeners: self.listeners.clone(),
            health_check: self.health_check.clone(),
            source_ranges: self.source_ranges.clone(),
            session_affinity: self.session_affinity,
            backends: self.backends.iter().cloned().collect(),
            state: if now >= self.ready_at {
                LbState::Active
            } else {
                LbState::Provisioning
            },
            created_at: self.created_at.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// By name: names are unique and the API addresses load balancers by name.
    lbs: BTreeMap<String, Stored>,
    next_id: u64,
    external: Pool,
    internal: Pool,
}

impl Inner {
    fn pool(&mut self, scheme: Scheme) -> &mut Pool {
        match scheme {
            Scheme::External => &mut self.external,
            Scheme::Internal => &mut self.internal,
        }
    }
}

/// The generic cloud: load balancers over the shared instance registry, plus its fault state.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct GenericCloud {
    inner: Arc<Mutex<Inner>>,
    instances: Instances,
    faults: Faults,
}

impl GenericCloud {
    pub fn new(instances: Instances, faults: Faults) -> Self {
        Self::with_pools(
            instances,
            faults,
            addresses::default_external(),
            addresses::default_internal(),
        )
    }

    pub fn with_pools(
        instances: Instances,
        faults: Faults,
        external: Vec<ipnet::Ipv4Net>,
        internal: Vec<ipnet::Ipv4Net>,
    ) -> Self {
        let inner = Inner {
            lbs: BTreeMap::new(),
            next_id: 1,
            external: Pool::new(external),
            internal: Pool::new(internal),
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            instances,
            faults,
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn instances(&self) -> &Instances {
        &self.instances
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create(&self, req: CreateRequest) -> Result<LoadBalancer, ApiError> {
        validate_name(&req.name)?;
        validate_tags(&req.tags)?;
        validate_config(&req.listeners, &req.health_check, &req.source_ranges)?;
        let requested = match req.address.as_deref() {
            None | Some("") => None,
            Some(s) => match s.parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    return Err(ApiError::invalid(
                        "address",
                        format!("{s:?} is not an IPv4 address"),
                    ));
                }
            },
        };
        // Sampled before taking the state lock: the fault state has its own lock.
        let provisioning = self.faults.sample_provisioning();
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(existing) = inner.lbs.get(&req.name) {
            let mut err = ApiError::new(
                409,
                "AlreadyExists",
                format!("load balancer {:?} already exists", req.name),
            );
            err.existing_id = Some(existing.id.clone());
            return Err(err);
        }
        let address = match requested {
            Some(addr) => {
                let pool = inner.pool(req.scheme);
                if !pool.contains(addr) {
                    return Err(ApiError::invalid(
                        "address",
                        format!("{addr} is not in the {:?} address pool", req.scheme),
                    ));
                }
                if !pool.claim(addr) {
                    return Err(ApiError::new(
                        409,
                        "AddressInUse",
                        format!("address {addr} is in use"),
                    ));
                }
                addr
            }
            None => inner.pool(req.scheme).allocate().ok_or_else(|| {
                ApiError::new(403, "QuotaExceeded", "no free address in the pool")
            })?,
        };
        let id = format!("lb-{:012x}", inner.next_id);
        inner.next_id += 1;
        let stored = Stored {
            id,
            name: req.name.clone(),
            scheme: req.scheme,
            address,
            tags: req.tags,
            listeners: req.listeners,
            health_check: req.health_check,
            source_ranges: req.source_ranges,
            session_affinity: req.session_affinity,
            backends: BTreeSet::new(),
            ready_at: now + provisioning,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let view = stored.view(now);
        inner.lbs.insert(req.name, stored);
        Ok(view)
    }

    pub fn get(&self, name: &str) -> Result<LoadBalancer, ApiError> {
        let inner = self.lock();
        inner
            .lbs
            .get(name)
            .map(|lb| lb.view(Instant::now()))
            .ok_or_else(|| ApiError::not_found(name))
    }

    /// Load balancers carrying every `(key, value)` tag, by name, one page at a time. The page
    /// token is the last name of the previous page.
    pub fn list(
        &self,
        tags: &[(String, String)],
        page_size: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<ListResponse, ApiError> {
        let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::invalid(
                "page_size",
                format!("must be 1-{MAX_PAGE_SIZE}"),
            ));
        }
        let now = Instant::now();
        let inner = self.lock();
        let start = match page_token {
            Some(t) if !t.is_empty() => std::ops::Bound::Excluded(t.to_string()),
            _ => std::ops::Bound::Unbounded,
        };
        let mut matching = inner
            .lbs
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, lb)| lb)
            .filter(|lb| tags.iter().all(|(k, v)| lb.tags.get(k) == Some(v)));
        let page: Vec<LoadBalancer> = matching
            .by_ref()
            .take(size)
            .map(|lb| lb.view(now))
            .collect();
        let more = matching.next().is_some();
        let next_page_token = if more {
            page.last().map(|lb| lb.name.clone())
        } else {
            None
        };
        Ok(ListResponse {
            loadbalancers: page,
            next_page_token,
        })
    }

    pub fn update(&self, name: &str, req: UpdateRequest) -> Result<LoadBalancer, ApiError> {
        validate_config(&req.listeners, &req.health_check, &req.source_ranges)?;
        if let Some(tags) = &req.tags {
            validate_tags(tags)?;
        }
        let mut inner = self.lock();
        let lb = inner
            .lbs
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found(name))?;
        lb.listeners = req.listeners;
        lb.health_check = req.health_check;
        lb.source_ranges = req.source_ranges;
        lb.session_affinity = req.session_affinity;
        if let Some(tags) = req.tags {
            lb.tags = tags;
        }
        Ok(lb.view(Instant::now()))
    }

    /// Apply a backend delta. Adding a present id or removing an absent one is a no-op; adding
    /// an id that is not a running instance is `400 InvalidTarget` and changes nothing.
    pub fn backends(&self, name: &str, req: &BackendsRequest) -> Result<LoadBalancer, ApiError> {
        let missing: Vec<&str> = req
            .add
            .iter()
            .filter(|id| self.instances.get(id).is_none())
            .map(String::as_str)
            .collect();
        let mut inner = self.lock();
        let lb = inner
            .lbs
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found(name))?;
        if !missing.is_empty() {
            let mut err = ApiError::new(
                400,
                "InvalidTarget",
                format!("unknown instances: {}", missing.join(",")),
            );
            err.field = Some("add".to_string());
            return Err(err);
        }
        for id in &req.remove {
            lb.backends.remove(id);
        }
        lb.backends.extend(req.add.iter().cloned());
        Ok(lb.view(Instant::now()))
    }

    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut inner = self.lock();
        let lb = inner
            .lbs
            .remove(name)
            .ok_or_else(|| ApiError::not_found(name))?;
        inner.pool(lb.scheme).release(lb.address);
        Ok(())
    }

    /// Every load balancer (admin / tests).
    pub fn all(&self) -> Vec<LoadBalancer> {
        let now = Instant::now();
        self.lock().lbs.values().map(|lb| lb.view(now)).collect()
    }

    /// How many load balancers carry tag `key=value` (admin / tests).
    pub fn count_tagged(&self, key: &str, value: &str) -> usize {
        self.lock()
            .lbs
            .values()
            .filter(|lb| lb.tags.get(key).map(String::as_str) == Some(value))
            .count()
    }

    /// Drop one listener behind the controller's back, for drift tests. False when there was
    /// no such load balancer or listener.
    pub fn remove_listener(&self, name: &str, port: u16) -> bool {
        let mut inner = self.lock();
        let Some(lb) = inner.lbs.get_mut(name) else {
            return false;
        };
        let before = lb.listeners.len();
        lb.listeners.retain(|l| l.port != port);
        lb.listeners.len() != before
    }

    /// How long until `name` is active (zero when it is or does not exist).
    pub fn time_to_active(&self, name: &str) -> Duration {
        let inner = self.lock();
        inner.lbs.get(name).map_or(Duration::ZERO, |lb| {
            lb.ready_at.saturating_duration_since(Instant::now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Latency, Profile};

    fn req(name: &str) -> CreateRequest {
        CreateRequest {
            name: name.to_string(),
            scheme: Scheme::External,
            address: None,
            tags: BTreeMap::from([("cluster".to_string(), "c1".to_string())]),
            listeners: vec![Listener {
                port: 80,
                protocol: "TCP".into(),
                backend_port: 30080,
            }],
            health_check: HealthCheck {
                protocol: "TCP".into(),
                port: 30080,
                path: None,
            },
            source_ranges: vec![],
            session_affinity: SessionAffinity::None,
        }
    }

    fn cloud() -> GenericCloud {
        GenericCloud::new(
            Instances::with_count(3, "mock"),
            Faults::new(Profile::None, 1),
        )
    }

    #[test]
    fn create_is_unique_by_name_and_address() {
        let cloud = cloud();
        let a = cloud.create(req("a")).unwrap();
        assert_eq!(a.address.to_string(), "203.0.113.1");
        assert_eq!(a.state, LbState::Active);
        let dup = cloud.create(req("a")).unwrap_err();
        assert_eq!((dup.status, dup.existing_id), (409, Some(a.id.clone())));
        let mut taken = req("b");
        taken.address = Some("203.0.113.1".into());
        assert_eq!(cloud.create(taken).unwrap_err().status, 409);
        let mut outside = req("b");
        outside.address = Some("8.8.8.8".into());
        assert_eq!(
            cloud.create(outside).unwrap_err().field.as_deref(),
            Some("address")
        );
        let mut internal = req("c");
        internal.scheme = Scheme::Internal;
        assert_eq!(
            cloud.create(internal).unwrap().address.to_string(),
            "10.200.0.1"
        );
        cloud.delete("a").unwrap();
        assert_eq!(cloud.delete("a").unwrap_err().status, 404);
        let mut again = req("a2");
        again.address = Some("203.0.113.1".into());
        assert!(
            cloud.create(again).is_ok(),
            "released address can be requested"
        );
    }

    #[test]
    fn backends_are_deltas_over_known_instances() {
        let cloud = cloud();
        cloud.create(req("a")).unwrap();
        let ids: Vec<String> = cloud.instances().list().into_iter().map(|i| i.id).collect();
        let add = BackendsRequest {
            add: ids[..2].to_vec(),
            remove: vec![],
        };
        assert_eq!(
            cloud.backends("a", &add).unwrap().backends,
            ids[..2].to_vec()
        );
        let swap = BackendsRequest {
            add: vec![ids[2].clone()],
            remove: vec![ids[0].clone(), "i-gone".into()],
        };
        assert_eq!(
            cloud.backends("a", &swap).unwrap().backends,
            ids[1..].to_vec()
        );
        let bad = BackendsRequest {
            add: vec!["i-nope".into()],
            remove: vec![ids[1].clone()],
        };
        assert_eq!(cloud.backends("a", &bad).unwrap_err().code, "InvalidTarget");
        assert_eq!(
            cloud.get("a").unwrap().backends,
            ids[1..].to_vec(),
            "failed call changed nothing"
        );
    }

    #[test]
    fn list_filters_by_tag_and_paginates() {
        let cloud = cloud();
        for i in 0..5 {
            cloud.create(req(&format!("lb-{i}"))).unwrap();
        }
        let mut other = req("zz");
        other.tags.insert("cluster".into(), "c2".into());
        cloud.create(other).unwrap();
        let tag = [("cluster".to_string(), "c1".to_string())];
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = cloud.list(&tag, Some(2), token.as_deref()).unwrap();
            assert!(page.loadbalancers.len() <= 2);
            names.extend(page.loadbalancers.into_iter().map(|lb| lb.name));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(names, ["lb-0", "lb-1", "lb-2", "lb-3", "lb-4"]);
        assert_eq!(cloud.list(&[], None, None).unwrap().loadbalancers.len(), 6);
        assert!(cloud.list(&[], Some(0), None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn provisioning_delay() {
        let cloud = cloud();
        cloud
            .faults()
            .set_provisioning(Latency::Fixed { ms: 2000 })
            .unwrap();
        assert_eq!(cloud.create(req("a")).unwrap().state, LbState::Provisioning);
        assert_eq!(cloud.time_to_active("a"), Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(cloud.get("a").unwrap().state, LbState::Active);
    }
}
