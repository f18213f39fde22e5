//! The allocator (pure, no I/O): which address a Service gets.
//!
//! The API server is the authority (one claim object per address); this is the controller's
//! index of those claims, so choosing is cheap: a hash lookup per candidate and a next-fit
//! cursor per pool and family. Next-fit (continue after the last address handed out instead of
//! restarting at the lowest) is also a hold-down: a just-released address is the last one to be
//! reused, so a stale DNS record or ARP cache does not send one Service's clients to another.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use frontdesk_core::provider::{IpFamily, Protocol};

use crate::crd::{IPAddressPool, ServiceAllocation};
use crate::ranges::{AddrRange, RangeError, family_of, from_u128, is_buggy};
use crate::request::{FamilyPolicy, ServiceRequest, selector_matches};
use crate::sharing::holders;
pub use crate::sharing::share_check;

/// One pool as the allocator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolDef {
    pub name: String,
    pub ranges: Vec<AddrRange>,
    pub auto_assign: bool,
    pub avoid_buggy: bool,
    pub allocation: Option<ServiceAllocation>,
    /// Being deleted: existing claims stay, nothing new is handed out.
    pub deleting: bool,
}

impl PoolDef {
    /// The pool's usable definition and the addresses that did not parse (reported as the
    /// pool's `Valid` condition; the good ranges are still used).
    pub fn from_crd(pool: &IPAddressPool) -> (PoolDef, Vec<RangeError>) {
        let mut ranges = Vec::new();
        let mut errors = Vec::new();
        for a in &pool.spec.addresses {
            match AddrRange::parse(a) {
                Ok(r) => ranges.push(r),
                Err(e) => errors.push(e),
            }
        }
        let def = PoolDef {
            name: pool.metadata.name.clone().unwrap_or_default(),
            ranges,
            auto_assign: pool.spec.auto_assign,
            avoid_buggy: pool.spec.avoid_buggy_ips,
            allocation: pool.spec.service_allocation.clone(),
            deleting: pool.metadata.deletion_timestamp.is_some(),
        };
        (def, errors)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    pub fn offers(&self, family: IpFamily) -> bool {
        self.ranges.iter().any(|r| r.family == family)
    }

    /// Usable addresses of a family (minus `.0`/`.255` with `avoidBuggyIPs`).
    pub fn capacity(&self, family: IpFamily) -> u128 {
        self.ranges
            .iter()
            .filter(|r| r.family == family)
            .map(|r| {
                let buggy = if self.avoid_buggy { r.buggy_count() } else { 0 };
                r.size() - buggy
            })
            .fold(0u128, u128::saturating_add)
    }

    /// Does `serviceAllocation` let this Service use the pool?
    pub fn allows(&self, req: &ServiceRequest) -> bool {
        let Some(a) = &self.allocation else {
            return true;
        };
        (a.namespaces.is_empty() || a.namespaces.contains(&req.namespace))
            && (a.namespace_selectors.is_empty()
                || a.namespace_selectors
                    .iter()
                    .any(|s| selector_matches(s, &req.namespace_labels)))
            && (a.service_selectors.is_empty()
                || a.service_selectors
                    .iter()
                    .any(|s| selector_matches(s, &req.labels)))
    }

    fn usable(&self, ip: IpAddr) -> bool {
        !(self.avoid_buggy && is_buggy(ip))
    }
}

/// One Service using an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub ports: Vec<(Protocol, u16)>,
    pub backend_key: String,
}

impl User {
    pub fn of(req: &ServiceRequest) -> User {
        User {
            uid: req.uid.clone(),
            namespace: req.namespace.clone(),
            name: req.name.clone(),
            ports: req.ports.clone(),
            backend_key: req.backend_key.clone(),
        }
    }
}

/// An address in use (one claim object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub pool: String,
    pub sharing_key: Option<String>,
    /// Empty when the holder is unknown (someone else's claim seen only as AlreadyExists).
    pub users: Vec<User>,
}

/// What [`Allocator::choose`] picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub ip: IpAddr,
    pub pool: String,
    /// The address is already claimed by compatible Services: join the claim, do not create.
    pub shared: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    #[error(
        "requested address {ip} is not in any IPAddressPool; request an address from a pool \
         (kubectl get ipaddresspools) or add it to a pool's spec.addresses"
    )]
    NotInAnyPool { ip: IpAddr },
    #[error(
        "requested address {ip} is in pool(s) {pools} that this Service may not use (the pool's \
         spec.serviceAllocation, the pool being deleted, or the requested pool annotation); \
         request an address from a pool this Service may use"
    )]
    NotAllowed { ip: IpAddr, pools: String },
    #[error(
        "requested address {ip} is in use by {by}{why}; request another address, or give both \
         Services the same metallb.io/allow-shared-ip key with distinct ports and the same \
         externalTrafficPolicy"
    )]
    Taken { ip: IpAddr, by: String, why: String },
    #[error(
        "pool {pool:?} (from the address-pool annotation) does not exist, is being deleted, or \
         may not be used by this Service; name an existing pool (kubectl get ipaddresspools)"
    )]
    NoSuchPool { pool: String },
    #[error(
        "no IPAddressPool with autoAssign offers {family:?} addresses to this Service; create one, \
         or name a pool with the frontdesk.dev/address-pool annotation"
    )]
    NoPool { family: IpFamily },
    #[error(
        "no free {family:?} address left in pool(s) {pools}; add addresses to a pool, create \
         another pool, or delete Services that no longer need theirs"
    )]
    Exhausted { family: IpFamily, pools: String },
    #[error(
        "ipFamilyPolicy RequireDualStack needs one requested address per family, got {got}; \
         request an IPv4 and an IPv6 address, or none"
    )]
    DualStackRequest { got: String },
}

#[derive(Clone, Debug)]
struct PoolState {
    def: PoolDef,
    /// Next-fit cursor per family: the next address to try.
    cursor: HashMap<IpFamily, u128>,
    assigned: HashMap<IpFamily, u128>,
}

/// Counters for a pool's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    pub assigned_v4: u128,
    pub assigned_v6: u128,
    pub available_v4: u128,
    pub available_v6: u128,
}

#[derive(Clone, Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<String, PoolState>,
    used: HashMap<IpAddr, Holding>,
    by_key: HashMap<String, BTreeSet<IpAddr>>,
    by_uid: HashMap<String, BTreeSet<IpAddr>>,
    /// Addresses chosen by a reconcile whose claim create is still in flight: taken for
    /// choosing, but nobody's holding (a failed create must not leave a Service "holding" an
    /// address that no claim backs, which is how one address once reached two Services).
    pending: HashSet<IpAddr>,
}

impl Allocator {
    /// Replace the pool set; unchanged pools keep their cursors and counters.
    pub fn set_pools(&mut self, defs: Vec<PoolDef>) {
        let mut next = BTreeMap::new();
        for def in defs {
            let state = match self.pools.remove(&def.name) {
                Some(old) if old.def == def => old,
                old => {
                    let mut assigned = HashMap::new();
                    for ip in self.used.keys().filter(|ip| def.contains(**ip)) {
                        *assigned.entry(family_of(*ip)).or_insert(0) += 1;
                    }
                    PoolState {
                        cursor: old.map(|o| o.cursor).unwrap_or_default(),
                        assigned,
                        def,
                    }
                }
            };
            next.insert(state.def.name.clone(), state);
        }
        self.pools = next;
    }

    pub fn pools(&self) -> impl Iterator<Item = &PoolDef> {
        self.pools.values().map(|p| &p.def)
    }

    pub fn holding(&self, ip: IpAddr) -> Option<&Holding> {
        self.used.get(&ip)
    }

    /// Addresses held for this Service uid.
    pub fn held_by(&self, uid: &str) -> Vec<IpAddr> {
        self.by_uid
            .get(uid)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn used_count(&self) -> usize {
        self.used.len()
    }

    /// Mark `ip` as being claimed right now (see `pending`); false when it already was.
    pub fn reserve(&mut self, ip: IpAddr) -> bool {
        self.pending.insert(ip)
    }

    /// The create for `ip` finished (either way).
    pub fn unreserve(&mut self, ip: IpAddr) {
        self.pending.remove(&ip);
    }

    /// Record (or replace) a claim.
    pub fn hold(&mut self, ip: IpAddr, holding: Holding) {
        self.release(ip);
        for p in self.pools.values_mut().filter(|p| p.def.contains(ip)) {
            *p.assigned.entry(family_of(ip)).or_insert(0) += 1;
        }
        if let Some(k) = &holding.sharing_key {
            self.by_key.entry(k.clone()).or_default().insert(ip);
        }
        for u in &holding.users {
            self.by_uid.entry(u.uid.clone()).or_default().insert(ip);
        }
        self.used.insert(ip, holding);
    }

    /// Forget a claim (deleted).
    pub fn release(&mut self, ip: IpAddr) {
        let Some(old) = self.used.remove(&ip) else {
            return;
        };
        for p in self.pools.values_mut().filter(|p| p.def.contains(ip)) {
            if let Some(n) = p.assigned.get_mut(&family_of(ip)) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(k) = &old.sharing_key
            && let Some(set) = self.by_key.get_mut(k)
        {
            set.remove(&ip);
            if set.is_empty() {
                self.by_key.remove(k);
            }
        }
        for u in &old.users {
            if let Some(set) = self.by_uid.get_mut(&u.uid) {
                set.remove(&ip);
                if set.is_empty() {
                    self.by_uid.remove(&u.uid);
                }
            }
        }
    }

    pub fn counts(&self, pool: &str) -> PoolCounts {
        let Some(p) = self.pools.get(pool) else {
            return PoolCounts::default();
        };
        let a4 = p.assigned.get(&IpFamily::IPv4).copied().unwrap_or(0);
        let a6 = p.assigned.get(&IpFamily::IPv6).copied().unwrap_or(0);
        PoolCounts {
            assigned_v4: a4,
            assigned_v6: a6,
            available_v4: p.def.capacity(IpFamily::IPv4).saturating_sub(a4),
            available_v6: p.def.capacity(IpFamily::IPv6).saturating_sub(a6),
        }
    }

    /// The families to allocate, each with its requested address if any.
    pub fn plan(req: &ServiceRequest) -> Result<Vec<(IpFamily, Option<IpAddr>)>, AllocError> {
        if req.requested_ips.is_empty() {
            return Ok(req
                .wanted_families()
                .into_iter()
                .map(|f| (f, None))
                .collect());
        }
        if req.policy == FamilyPolicy::RequireDualStack && req.requested_ips.len() < 2 {
            let got: Vec<String> = req.requested_ips.iter().map(|i| i.to_string()).collect();
            return Err(AllocError::DualStackRequest { got: got.join(",") });
        }
        let mut out: Vec<(IpFamily, Option<IpAddr>)> = req
            .requested_ips
            .iter()
            .map(|ip| (family_of(*ip), Some(*ip)))
            .collect();
        // Primary family first, as the Service lists them.
        out.sort_by_key(|(f, _)| req.families.iter().position(|x| x == f).unwrap_or(9));
        Ok(out)
    }

    /// May the Service keep an address it already holds? (Sticky: only a change of request,
    /// family or sharing compatibility moves it; pool edits and restarts never do.)
    pub fn keeps(&self, req: &ServiceRequest, ip: IpAddr) -> bool {
        let Some(h) = self.used.get(&ip) else {
            return false;
        };
        let family_ok = match Self::plan(req) {
            Ok(plan) => plan
                .iter()
                .any(|(f, want)| *f == family_of(ip) && want.is_none_or(|w| w == ip)),
            Err(_) => false,
        };
        let pool_ok = req.pool.as_ref().is_none_or(|p| *p == h.pool);
        let others = h.users.iter().any(|u| u.uid != req.uid);
        family_ok && pool_ok && (!others || share_check(h, req).is_ok())
    }

    fn candidates(
        &self,
        req: &ServiceRequest,
        family: IpFamily,
    ) -> Result<Vec<&PoolDef>, AllocError> {
        if let Some(name) = &req.pool {
            return match self.pools.get(name) {
                Some(p) if !p.def.deleting && p.def.allows(req) && p.def.offers(family) => {
                    Ok(vec![&p.def])
                }
                _ => Err(AllocError::NoSuchPool { pool: name.clone() }),
            };
        }
        let mut with_alloc: Vec<&PoolDef> = Vec::new();
        let mut without: Vec<&PoolDef> = Vec::new();
        for p in self.pools.values().map(|p| &p.def) {
            if p.deleting || !p.auto_assign || !p.offers(family) || !p.allows(req) {
                continue;
            }
            if p.allocation.is_some() {
                with_alloc.push(p);
            } else {
                without.push(p);
            }
        }
        // Lower priority first; 0/unset after every set priority; ties by name (deterministic,
        // where MetalLB's order is a Go map's).
        with_alloc.sort_by_key(|p| {
            let prio = p.allocation.as_ref().and_then(|a| a.priority).unwrap_or(0);
            (if prio > 0 { prio } else { i32::MAX }, p.name.clone())
        });
        with_alloc.extend(without);
        if with_alloc.is_empty() {
            return Err(AllocError::NoPool { family });
        }
        Ok(with_alloc)
    }

    /// Pick an address of `family` (or check the requested one). `skip`: addresses found
    /// taken by someone this index does not know about. `prefer_pool`: for the second family
    /// of a dual-stack Service, the pool of the first.
    pub fn choose(
        &mut self,
        req: &ServiceRequest,
        family: IpFamily,
        requested: Option<IpAddr>,
        prefer_pool: Option<&str>,
        skip: &HashSet<IpAddr>,
    ) -> Result<Choice, AllocError> {
        if let Some(ip) = requested {
            return self.check_requested(req, ip, skip);
        }
        let mut pools: Vec<String> = self
            .candidates(req, family)?
            .into_iter()
            .map(|p| p.name.clone())
            .collect();
        if let Some(pp) = prefer_pool
            && let Some(i) = pools.iter().position(|p| p == pp)
        {
            let p = pools.remove(i);
            pools.insert(0, p);
        }
        for name in &pools {
            if let Some(c) = self.shareable_in(req, name, family) {
                return Ok(c);
            }
            if let Some(ip) = self.next_free(name, family, skip) {
                return Ok(Choice {
                    ip,
                    pool: name.clone(),
                    shared: false,
                });
            }
        }
        Err(AllocError::Exhausted {
            family,
            pools: pools.join(", "),
        })
    }

    fn check_requested(
        &self,
        req: &ServiceRequest,
        ip: IpAddr,
        skip: &HashSet<IpAddr>,
    ) -> Result<Choice, AllocError> {
        let containing: Vec<&PoolDef> = self
            .pools
            .values()
            .map(|p| &p.def)
            .filter(|p| p.contains(ip))
            .collect();
        if containing.is_empty() {
            return Err(AllocError::NotInAnyPool { ip });
        }
        let Some(pool) = containing.iter().find(|p| {
            !p.deleting && p.allows(req) && req.pool.as_ref().is_none_or(|n| *n == p.name)
        }) else {
            let names: Vec<&str> = containing.iter().map(|p| p.name.as_str()).collect();
            return Err(AllocError::NotAllowed {
                ip,
                pools: names.join(", "),
            });
        };
        match self.used.get(&ip) {
            None if skip.contains(&ip) => Err(AllocError::Taken {
                ip,
                by: "another controller's claim".into(),
                why: String::new(),
            }),
            None if self.pending.contains(&ip) => Err(AllocError::Taken {
                ip,
                by: "an allocation in progress".into(),
                why: String::new(),
            }),
            None => Ok(Choice {
                ip,
                pool: pool.name.clone(),
                shared: false,
            }),
            Some(h) if h.users.iter().any(|u| u.uid == req.uid) => Ok(Choice {
                ip,
                pool: h.pool.clone(),
                shared: true,
            }),
            Some(h) => match share_check(h, req) {
                Ok(()) => Ok(Choice {
                    ip,
                    pool: h.pool.clone(),
                    shared: true,
                }),
                Err(why) => Err(AllocError::Taken {
                    ip,
                    by: holders(h),
                    why: format!(" ({why})"),
                }),
            },
        }
    }

    /// An address in this pool already used under the Service's sharing key, if compatible.
    fn shareable_in(&self, req: &ServiceRequest, pool: &str, family: IpFamily) -> Option<Choice> {
        let key = req.sharing_key.as_ref()?;
        let def = &self.pools.get(pool)?.def;
        self.by_key.get(key)?.iter().find_map(|ip| {
            let h = self.used.get(ip)?;
            (family_of(*ip) == family && def.contains(*ip) && share_check(h, req).is_ok()).then(
                || Choice {
                    ip: *ip,
                    pool: h.pool.clone(),
                    shared: true,
                },
            )
        })
    }

    /// Next-fit: from the pool's cursor, the first usable address nobody holds.
    fn next_free(
        &mut self,
        pool: &str,
        family: IpFamily,
        skip: &HashSet<IpAddr>,
    ) -> Option<IpAddr> {
        let state = self.pools.get(pool)?;
        let assigned = state.assigned.get(&family).copied().unwrap_or(0);
        if state.def.capacity(family) <= assigned {
            return None;
        }
        let ranges: Vec<AddrRange> = state
            .def
            .ranges
            .iter()
            .filter(|r| r.family == family)
            .copied()
            .collect();
        let start = state.cursor.get(&family).copied();
        // Position of the cursor: the range holding it, or the first range.
        let (mut ri, mut n) = start
            .and_then(|c| {
                ranges
                    .iter()
                    .position(|r| (r.first..=r.last).contains(&c))
                    .map(|i| (i, c))
            })
            .unwrap_or((0, ranges.first()?.first));
        let total: u128 = ranges
            .iter()
            .map(AddrRange::size)
            .fold(0, u128::saturating_add);
        let mut found = None;
        let mut steps: u128 = 0;
        while steps < total {
            let ip = from_u128(family, n);
            if !self.used.contains_key(&ip)
                && !self.pending.contains(&ip)
                && !skip.contains(&ip)
                && state.def.usable(ip)
            {
                found = Some(ip);
            }
            // Advance (wrapping to the next range, then the first).
            if n >= ranges[ri].last {
                ri = (ri + 1) % ranges.len();
                n = ranges[ri].first;
            } else {
                n += 1;
            }
            steps += 1;
            if found.is_some() {
                break;
            }
        }
        if let Some(s) = self.pools.get_mut(pool) {
            s.cursor.insert(family, n);
        }
        found
    }
}

#[cfg(test)]
#[path = "alloc_tests.rs"]
mod tests;
