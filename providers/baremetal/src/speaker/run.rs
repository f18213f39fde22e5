//! The speaker's loop: reflectors on Services, Nodes, EndpointSlices, Leases, pools and
//! L2Advertisements; every change (and every Lease expiry deadline) re-runs the election; the
//! result is handed to the responder, with a takeover announcement for each newly won address.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_fn};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::election::{self, ClusterView};
use super::liveness::{self, Observed, SPEAKER_LEASE_LABEL, Tracker};
use super::metrics::{self, SpeakerMetrics};
use super::responder::{OwnedMap, Responder};
use super::status::{self, Announcer};
use super::view;
use super::{SpeakerConfig, SpeakerError};
use crate::crd::{IPAddressPool, L2Advertisement};

/// How long a written condition is trusted to show up in our own cache before writing again.
const STATUS_SETTLE: Duration = Duration::from_secs(5);

/// Drive one reflector; every event wakes the election.
fn spawn_reflector<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<K>,
    wake: Arc<Notify>,
    what: &'static str,
) where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    tokio::spawn(async move {
        let mut s = std::pin::pin!(stream.default_backoff().reflect(writer));
        while let Some(ev) = s.next().await {
            if let Err(e) = ev {
                warn!(resource = what, error = %e, "watch failed; retrying");
            }
            wake.notify_one();
        }
    });
}

fn reflect_all<K>(
    api: Api<K>,
    cfg: watcher::Config,
    wake: Arc<Notify>,
    what: &'static str,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, writer) = reflector::store();
    spawn_reflector(watch_fn(api, cfg), writer, wake, what);
    store
}

struct Stores {
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    pools: Store<IPAddressPool>,
    ads: Store<L2Advertisement>,
    leases: Store<Lease>,
}

impl Stores {
    async fn ready(&self) -> Result<(), SpeakerError> {
        let w = |what| move |_| SpeakerError::Watch(what);
        self.services
            .wait_until_ready()
            .await
            .map_err(w("Service"))?;
        self.nodes.wait_until_ready().await.map_err(w("Node"))?;
        self.slices
            .wait_until_ready()
            .await
            .map_err(w("EndpointSlice"))?;
        self.pools
            .wait_until_ready()
            .await
            .map_err(w("IPAddressPool"))?;
        self.ads
            .wait_until_ready()
            .await
            .map_err(w("L2Advertisement"))?;
        self.leases.wait_until_ready().await.map_err(w("Lease"))?;
        Ok(())
    }
}

/// Run the speaker until `shutdown` resolves; then go silent, release the Lease, return.
pub async fn run(
    client: Client,
    config: SpeakerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SpeakerError> {
    config.validate()?;
    let m = Arc::new(SpeakerMetrics::new());
    if let Some(addr) = config.metrics_listen {
        let bound = metrics::serve(addr, m.clone())
            .await
            .map_err(|source| SpeakerError::Metrics { addr, source })?;
        info!(addr = %bound, "speaker metrics listening");
    }
    let responder = Arc::new(Responder::new(config.interfaces.clone(), m.clone()));
    let (opened, mut errors) = responder.scan();
    if opened.is_empty() && !errors.is_empty() {
        return Err(errors.remove(0).into());
    }
    if responder.interfaces().is_empty() {
        warn!("no usable interface yet (down, excluded or not in --interfaces); not announcing");
    }

    let wake = Arc::new(Notify::new());
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let all = watcher::Config::default;
    let stores = Stores {
        services: reflect_all(Api::all(client.clone()), all(), wake.clone(), "Service"),
        nodes: reflect_all(Api::all(client.clone()), all(), wake.clone(), "Node"),
        slices: reflect_all(
            Api::all(client.clone()),
            all(),
            wake.clone(),
            "EndpointSlice",
        ),
        pools: reflect_all(
            Api::all(client.clone()),
            all(),
            wake.clone(),
            "IPAddressPool",
        ),
        ads: reflect_all(
            Api::all(client.clone()),
            all(),
            wake.clone(),
            "L2Advertisement",
        ),
        leases: {
            let api: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
            let (store, writer) = reflector::store();
            let t = tracker.clone();
            let (lease_wake, expiry) = (wake.clone(), config.timing.expiry);
            // The tracker needs each Lease event as it arrives (the time it was seen).
            let stream = watch_fn(api, all().labels(&format!("{SPEAKER_LEASE_LABEL}=true"))).map(
                move |ev| {
                    if let Ok(ev) = &ev {
                        // Only membership changes re-elect; expiries come from deadlines.
                        if observe(&t, ev, expiry) {
                            lease_wake.notify_one();
                        }
                    }
                    ev
                },
            );
            spawn_reflector(stream, writer, Arc::new(Notify::new()), "Lease");
            store
        },
    };

    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let (last_ok_tx, mut last_ok) = watch::channel(None::<Instant>);
    let (link_tx, link_rx) = watch::channel(responder.interfaces());
    let renew_stop = CancellationToken::new();
    let renewer = tokio::spawn(liveness::renew_loop(
        leases.clone(),
        config.node.clone(),
        config.timing,
        last_ok_tx,
        link_rx,
        renew_stop.clone(),
    ));

    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        r = stores.ready() => r?,
        _ = &mut shutdown => {
            renewer.abort();
            liveness::release(&leases, &config.node).await;
            return Ok(());
        }
    }
    info!(node = %config.node, "caches synced; electing");
    m.ready.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut state = Loop {
        config: &config,
        stores: &stores,
        tracker: &tracker,
        responder: responder.clone(),
        announcer: Arc::new(Announcer::new(client.clone(), &config.node)),
        metrics: m,
        owned: OwnedMap::new(),
        written: Arc::new(Mutex::new(HashMap::new())),
        self_ok: false,
        streak: None,
        prev_winners: BTreeMap::new(),
        pending: BTreeMap::new(),
        stop_bursts: CancellationToken::new(),
    };
    let mut scan = tokio::time::interval(config.interface_scan);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut deadline = Instant::now() + config.timing.expiry;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            r = last_ok.changed() => {
                // A routine renewal changes nothing unless we were fenced.
                if r.is_ok() && state.self_ok { continue; }
            }
            _ = scan.tick() => {
                let (opened, _) = responder.scan();
                link_tx.send_if_modified(|links| {
                    let now = responder.interfaces();
                    std::mem::replace(links, now.clone()) != now
                });
                if !opened.is_empty() {
                    // A new or returning link: announce what we own there too.
                    for ip in state.owned.keys() {
                        state.burst(*ip);
                    }
                }
            }
            _ = &mut shutdown => break,
        }
        let last = *last_ok.borrow();
        deadline = state.elect(last);
    }

    // Graceful hand-over: silent first (so two MACs never answer), then the Lease goes, so the
    // next speaker takes over on the delete event instead of waiting for expiry.
    state.stop_bursts.cancel();
    responder.shutdown();
    renewer.abort();
    renew_stop.cancel();
    liveness::release(&leases, &config.node).await;
    Ok(())
}

fn observe(tracker: &Mutex<Tracker>, ev: &Event<Lease>, expiry: Duration) -> bool {
    let now = Instant::now();
    let wall = Timestamp::now();
    let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
    match ev {
        Event::Apply(l) | Event::InitApply(l) => {
            t.observe(&l.name_any(), &Observed::from_lease(l, wall), now, expiry)
        }
        Event::Delete(l) => t.forget(&l.name_any()),
        Event::Init | Event::InitDone => false,
    }
}

struct Loop<'a> {
    config: &'a SpeakerConfig,
    stores: &'a Stores,
    tracker: &'a Mutex<Tracker>,
    responder: Arc<Responder>,
    announcer: Arc<Announcer>,
    metrics: Arc<SpeakerMetrics>,
    owned: OwnedMap,
    /// Service key → what we last wrote (`announce` or the withdrawal reason), and when.
    written: Arc<Mutex<HashMap<String, (&'static str, Instant)>>>,
    self_ok: bool,
    /// Start of the current run of successful renewals.
    streak: Option<Instant>,
    /// Who won each address in the previous election.
    prev_winners: BTreeMap<IpAddr, String>,
    /// Addresses won from a live node, held back until the instant given (hand-over).
    pending: BTreeMap<IpAddr, Instant>,
    stop_bursts: CancellationToken,
}

impl Loop<'_> {
    /// Re-run the election; returns when to run it again at the latest (the next Lease
    /// expiry, ours included).
    fn elect(&mut self, last_ok: Option<Instant>) -> Instant {
        let now = Instant::now();
        let expiry = self.config.timing.expiry;
        let me = self.config.node.as_str();
        // Fenced: our own renewals are too old (the others already think us dead) or we
        // have no link to answer on.
        let renewed = last_ok.is_some_and(|t| now.saturating_duration_since(t) < expiry);
        if !renewed {
            self.streak = None;
        } else if self.streak.is_none() {
            self.streak = last_ok;
        }
        // Joining (start or recovery): count ourselves alive a hand-over delay after our
        // first renewal, by when the others have seen our Lease and yielded what we win.
        // Else a returning node and the current owner would both answer for a moment.
        let joined_at = self.streak.map(|t| t + self.config.handover_delay);
        let joined = joined_at.is_some_and(|t| t <= now);
        let self_ok = renewed && joined && !self.responder.interfaces().is_empty();
        // The join delay already was the hand-over for whatever we win on joining.
        let just_joined = self_ok && !self.self_ok;
        if self_ok != self.self_ok {
            if self_ok {
                info!(node = %me, "speaker Lease renewed; announcing");
            } else {
                warn!(node = %me, "not announcing: Lease not renewed within the expiry or no usable interface");
            }
            self.self_ok = self_ok;
        }
        let (mut alive, next, mut interfaces) = {
            let t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
            (
                t.alive(now, expiry),
                t.next_expiry(now, expiry),
                t.interfaces(),
            )
        };
        // Our own interfaces as we know them now, not as our Lease said a moment ago.
        interfaces.insert(
            me.to_string(),
            self.responder.interfaces().into_iter().collect(),
        );
        if self_ok {
            alive.insert(me.to_string());
        } else {
            alive.remove(me);
        }
        self.metrics.speakers_alive.set(alive.len() as i64);
        let cluster = ClusterView {
            nodes: self
                .stores
                .nodes
                .state()
                .iter()
                .map(|n| (n.name_any(), view::node_view(n)))
                .collect(),
            pools: self
                .stores
                .pools
                .state()
                .iter()
                .map(|p| view::pool_view(p))
                .collect(),
            ads: self
                .stores
                .ads
                .state()
                .iter()
                .map(|a| view::ad_view(a))
                .collect(),
            alive,
            interfaces,
        };
        let services = self.stores.services.state();
        let views = view::service_views(&services, &self.stores.slices.state());
        let won = if self_ok {
            election::owned_by(&cluster, &views, me)
        } else {
            BTreeMap::new()
        };
        let winners = election::winners(&cluster, &views);
        let mut held_until = None::<Instant>;
        let mut new = OwnedMap::new();
        for (ip, o) in &won {
            if !self.owned.contains_key(ip) {
                let from_live = !just_joined
                    && self
                        .prev_winners
                        .get(ip)
                        .is_some_and(|p| p != me && cluster.alive.contains(p));
                if from_live || self.pending.contains_key(ip) {
                    let until = *self
                        .pending
                        .entry(*ip)
                        .or_insert(now + self.config.handover_delay);
                    if now < until {
                        held_until = Some(held_until.map_or(until, |h| h.min(until)));
                        continue;
                    }
                }
            }
            new.insert(*ip, o.interfaces.clone());
        }
        self.pending
            .retain(|ip, _| won.contains_key(ip) && !new.contains_key(ip));
        self.prev_winners = winners;
        let won: BTreeMap<IpAddr, election::Owned> = won
            .into_iter()
            .filter(|(ip, _)| new.contains_key(ip))
            .collect();
        if new != self.owned {
            let gained: Vec<IpAddr> = new
                .keys()
                .filter(|ip| !self.owned.contains_key(ip))
                .copied()
                .collect();
            for ip in self.owned.keys().filter(|ip| !new.contains_key(ip)) {
                info!(address = %ip, "no longer announcing");
            }
            self.responder.set_owned(new.clone());
            self.owned = new;
            for ip in gained {
                info!(address = %ip, "taking over address");
                self.burst(ip);
            }
        }
        // Services whose every address is unannounced, with the first reason.
        let unannounced: BTreeMap<String, election::Reason> = views
            .iter()
            .filter_map(|v| {
                let mut reason = None;
                for ip in &v.ips {
                    match election::decide(&cluster, v, *ip) {
                        election::Decision::Announce { .. } => return None,
                        election::Decision::NotAnnounced(r) => {
                            reason.get_or_insert(r);
                        }
                    }
                }
                Some((v.key.clone(), reason?))
            })
            .collect();
        self.record_status(&services, &won, &unannounced);
        let own_deadline = last_ok.map(|t| t + expiry).filter(|t| *t > now);
        let join_deadline = joined_at.filter(|t| *t > now);
        [next, own_deadline, join_deadline, held_until]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + expiry)
    }

    /// Gratuitous ARP / unsolicited NA: one now, then every `garp_interval` within
    /// `garp_window`, stopping as soon as the address is no longer ours.
    fn burst(&self, ip: IpAddr) {
        let responder = self.responder.clone();
        let stop = self.stop_bursts.clone();
        let (interval, window) = (self.config.garp_interval, self.config.garp_window);
        tokio::spawn(async move {
            let end = Instant::now() + window;
            loop {
                if stop.is_cancelled() || !responder.owns(ip) {
                    return;
                }
                responder.announce(ip);
                if Instant::now() + interval > end {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// Condition + Event on each Service we announce whose status names another node.
    fn record_status(
        &self,
        services: &[Arc<Service>],
        won: &BTreeMap<IpAddr, election::Owned>,
        unannounced: &BTreeMap<String, election::Reason>,
    ) {
        let keys: std::collections::BTreeSet<&String> =
            won.values().flat_map(|o| o.services.iter()).collect();
        let me = &self.config.node;
        for svc in services {
            let key = view::service_key(svc);
            let says_me = status::says(svc, me);
            // Announcing and the Service names another node (or none): say it is us. Named
            // by the Service but nobody announces it any more: say why.
            let withdraw = says_me.then(|| unannounced.get(&key)).flatten().copied();
            let announce = keys.contains(&key) && !says_me;
            if !announce && withdraw.is_none() {
                continue;
            }
            let what = withdraw.map_or("announce", |r| r.as_str());
            {
                // The same write again only once our cache had time to show the last one.
                let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
                if w.get(&key)
                    .is_some_and(|(did, t)| *did == what && t.elapsed() < STATUS_SETTLE)
                {
                    continue;
                }
                w.insert(key.clone(), (what, Instant::now()));
            }
            let (announcer, svc, written) =
                (self.announcer.clone(), svc.clone(), self.written.clone());
            tokio::spawn(async move {
                let result = match withdraw {
                    Some(reason) => announcer.withdraw(&svc, reason.as_str()).await,
                    None => announcer.record(&svc).await.map(|_| ()),
                };
                if let Err(e) = result {
                    warn!(service = %key, error = %e, "could not write the announcement condition");
                    // Retry at the next election instead of after the settle time.
                    written
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
            });
        }
    }
}
