//! The data plane: one AF_PACKET socket per usable interface (through `pnet_datalink`, so this
//! crate has no `unsafe`), answering ARP requests and neighbour solicitations for the
//! addresses this node owns, and sending the takeover announcements.
//!
//! Ownership is one shared map read by every receive thread for every packet, so losing an
//! address silences all interfaces at the next packet. Receive threads are plain threads
//! (the socket reads block) that poll a stop flag every `READ_TIMEOUT`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use tracing::{debug, info, warn};

use super::metrics::{IpLabel, SpeakerMetrics};
use super::packet::{self, Mac, Query};

/// Address → interfaces it may be announced on (`None`: every usable one).
pub type OwnedMap = BTreeMap<IpAddr, Option<BTreeSet<String>>>;

const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// MetalLB's default exclusions (as prefixes; `lo` exactly): virtual and container interfaces
/// nobody wants ARP answered on.
const EXCLUDED_PREFIXES: [&str; 13] = [
    "docker",
    "cbr",
    "dummy",
    "virbr",
    "lxcbr",
    "veth",
    "cali",
    "tunl",
    "flannel",
    "kube-ipvs",
    "cni",
    "nodelocaldns",
    "lxc",
];

const IFF_NOARP: u32 = 0x80;

/// Which interfaces the speaker may use.
#[derive(Clone, Debug, Default)]
pub struct InterfaceFilter {
    /// `--interfaces`: exactly these; empty = every interface but the default exclusions.
    pub only: Vec<String>,
}

/// The link facts that decide whether an interface is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub up: bool,
    /// Carrier (`IFF_RUNNING`): a cable unplugged or a veth peer down clears it.
    pub running: bool,
    pub loopback: bool,
    pub noarp: bool,
    pub has_mac: bool,
}

impl InterfaceFilter {
    pub fn usable(&self, l: &Link) -> bool {
        let selected = if self.only.is_empty() {
            l.name != "lo" && !EXCLUDED_PREFIXES.iter().any(|p| l.name.starts_with(p))
        } else {
            self.only.contains(&l.name)
        };
        selected && l.up && l.running && !l.loopback && !l.noarp && l.has_mac
    }
}

fn link_of(i: &NetworkInterface) -> Link {
    Link {
        name: i.name.clone(),
        up: i.is_up(),
        running: i.is_running(),
        loopback: i.is_loopback(),
        noarp: u64::from(i.flags) & u64::from(IFF_NOARP) != 0,
        has_mac: i.mac.is_some_and(|m| !m.is_zero()),
    }
}

/// May `ip` be announced on `iface`?
pub fn allowed(owned: &OwnedMap, ip: IpAddr, iface: &str) -> bool {
    match owned.get(&ip) {
        Some(None) => true,
        Some(Some(set)) => set.contains(iface),
        None => false,
    }
}

type Sender = Arc<Mutex<Box<dyn DataLinkSender>>>;

struct Iface {
    index: u32,
    mac: Mac,
    tx: Sender,
    stop: Arc<AtomicBool>,
    /// Joins solicited-node groups so NS multicast reaches us without promiscuous mode.
    mcast: Option<UdpSocket>,
    joined: BTreeSet<Ipv6Addr>,
}

struct Shared {
    owned: RwLock<OwnedMap>,
    metrics: Arc<SpeakerMetrics>,
}

pub struct Responder {
    filter: InterfaceFilter,
    shared: Arc<Shared>,
    ifaces: Mutex<BTreeMap<String, Iface>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    #[error(
        "opening a raw packet socket on {iface}: {source} (the speaker needs CAP_NET_RAW and hostNetwork)"
    )]
    Open {
        iface: String,
        #[source]
        source: std::io::Error,
    },
}

fn send(tx: &Sender, frame: &[u8]) -> bool {
    let mut tx = tx.lock().unwrap_or_else(|e| e.into_inner());
    matches!(tx.send_to(frame, None), Some(Ok(())))
}

impl Responder {
    pub fn new(filter: InterfaceFilter, metrics: Arc<SpeakerMetrics>) -> Self {
        Self {
            filter,
            shared: Arc::new(Shared {
                owned: RwLock::new(OwnedMap::new()),
                metrics,
            }),
            ifaces: Mutex::new(BTreeMap::new()),
        }
    }

    /// Re-read the interfaces: open sockets on new usable ones, close those gone, down or
    /// without carrier. Returns the newly opened ones (they need a takeover announcement) and
    /// the open errors (permission problems are fatal to the caller at start).
    pub fn scan(&self) -> (Vec<String>, Vec<ResponderError>) {
        let all = pnet_datalink::interfaces();
        let usable: BTreeMap<String, &NetworkInterface> = all
            .iter()
            .filter(|i| self.filter.usable(&link_of(i)))
            .map(|i| (i.name.clone(), i))
            .collect();
        let mut ifaces = self.ifaces.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = ifaces
            .keys()
            .filter(|n| !usable.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(i) = ifaces.remove(&name) {
                i.stop.store(true, Ordering::SeqCst);
                info!(interface = %name, "interface down or gone; not answering on it");
            }
        }
        let mut opened = Vec::new();
        let mut errors = Vec::new();
        for (name, ni) in usable {
            if ifaces.contains_key(&name) {
                continue;
            }
            match self.open(ni) {
                Ok(iface) => {
                    info!(interface = %name, "answering ARP/NDP on interface");
                    ifaces.insert(name.clone(), iface);
                    opened.push(name);
                }
                Err(e) => errors.push(e),
            }
        }
        drop(ifaces);
        if !opened.is_empty() {
            self.sync_groups();
        }
        (opened, errors)
    }

    fn open(&self, ni: &NetworkInterface) -> Result<Iface, ResponderError> {
        let config = pnet_datalink::Config {
            read_timeout: Some(READ_TIMEOUT),
            promiscuous: false,
            ..Default::default()
        };
        let open_err = |source| ResponderError::Open {
            iface: ni.name.clone(),
            source,
        };
        let (tx, rx) = match pnet_datalink::channel(ni, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => {
                return Err(open_err(std::io::Error::other("not an Ethernet channel")));
            }
            Err(e) => return Err(open_err(e)),
        };
        let mac = ni.mac.map(|m| m.octets()).unwrap_or_default();
        let tx: Sender = Arc::new(Mutex::new(tx));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            name: ni.name.clone(),
            mac,
            tx: tx.clone(),
            shared: self.shared.clone(),
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name(format!("arp-{}", ni.name))
            .spawn(move || worker.run(rx))
            .map_err(open_err)?;
        let mcast = UdpSocket::bind("[::]:0").ok();
        Ok(Iface {
            index: ni.index,
            mac,
            tx,
            stop,
            mcast,
            joined: BTreeSet::new(),
        })
    }

    /// Interfaces with an open socket.
    pub fn interfaces(&self) -> Vec<String> {
        let ifaces = self.ifaces.lock().unwrap_or_else(|e| e.into_inner());
        ifaces.keys().cloned().collect()
    }

    /// Replace the owned set (takes effect for the next packet on every interface).
    pub fn set_owned(&self, owned: OwnedMap) {
        self.shared.metrics.addresses_owned.set(owned.len() as i64);
        *self.shared.owned.write().unwrap_or_else(|e| e.into_inner()) = owned;
        self.sync_groups();
    }

    pub fn owns(&self, ip: IpAddr) -> bool {
        let owned = self.shared.owned.read().unwrap_or_else(|e| e.into_inner());
        owned.contains_key(&ip)
    }

    /// Join / leave solicited-node groups to match the owned IPv6 addresses.
    fn sync_groups(&self) {
        let owned = self
            .shared
            .owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut ifaces = self.ifaces.lock().unwrap_or_else(|e| e.into_inner());
        for (name, iface) in ifaces.iter_mut() {
            let Some(sock) = iface.mcast.as_ref() else {
                continue;
            };
            let want: BTreeSet<Ipv6Addr> = owned
                .keys()
                .filter(|ip| allowed(&owned, **ip, name))
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(packet::solicited_node(*v6)),
                    IpAddr::V4(_) => None,
                })
                .collect();
            for g in want.difference(&iface.joined) {
                if let Err(e) = sock.join_multicast_v6(g, iface.index) {
                    debug!(interface = %name, group = %g, error = %e, "joining group failed");
                }
            }
            for g in iface.joined.difference(&want) {
                let _ = sock.leave_multicast_v6(g, iface.index);
            }
            iface.joined = want;
        }
    }

    /// One takeover announcement for `ip` on every interface it may use: gratuitous ARP
    /// (request + reply) or an unsolicited NA with Override. Returns frames sent.
    pub fn announce(&self, ip: IpAddr) -> usize {
        let owned = self
            .shared
            .owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ifaces = self.ifaces.lock().unwrap_or_else(|e| e.into_inner());
        let mut sent = 0;
        for (name, iface) in ifaces.iter() {
            if !allowed(&owned, ip, name) {
                continue;
            }
            let frames: Vec<Vec<u8>> = match ip {
                IpAddr::V4(v4) => packet::gratuitous_arp(iface.mac, v4).to_vec(),
                IpAddr::V6(v6) => vec![packet::unsolicited_advert(iface.mac, v6)],
            };
            for f in frames {
                if send(&iface.tx, &f) {
                    sent += 1;
                    self.shared
                        .metrics
                        .gratuitous_sent
                        .get_or_create(&IpLabel::of(ip))
                        .inc();
                }
            }
        }
        sent
    }

    /// Stop answering at once and close every socket.
    pub fn shutdown(&self) {
        self.set_owned(OwnedMap::new());
        let mut ifaces = self.ifaces.lock().unwrap_or_else(|e| e.into_inner());
        for (_, i) in std::mem::take(&mut *ifaces) {
            i.stop.store(true, Ordering::SeqCst);
        }
    }
}

struct Worker {
    name: String,
    mac: Mac,
    tx: Sender,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(self, mut rx: Box<dyn DataLinkReceiver>) {
        let mut errors = 0u32;
        while !self.stop.load(Ordering::SeqCst) {
            match rx.next() {
                Ok(frame) => {
                    errors = 0;
                    if let Some(q) = packet::parse(frame, self.mac) {
                        self.answer(q);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => {
                    errors += 1;
                    if errors == 1 {
                        warn!(interface = %self.name, error = %e, "packet socket read failed");
                    }
                    // The interface vanished; the next scan reopens it if it returns.
                    if errors > 20 {
                        break;
                    }
                    std::thread::sleep(READ_TIMEOUT);
                }
            }
        }
        debug!(interface = %self.name, "receive thread stopped");
    }

    fn answer(&self, q: Query) {
        let target: IpAddr = match &q {
            Query::Arp { target, .. } => (*target).into(),
            Query::Ndp { target, .. } => (*target).into(),
        };
        {
            let owned = self.shared.owned.read().unwrap_or_else(|e| e.into_inner());
            if !allowed(&owned, target, &self.name) {
                return;
            }
        }
        let label = IpLabel::of(target);
        self.shared
            .metrics
            .requests_received
            .get_or_create(&label)
            .inc();
        let reply = match q {
            Query::Arp {
                sender_mac,
                sender_ip,
                target,
            } => packet::arp_reply(self.mac, target, sender_mac, sender_ip),
            Query::Ndp {
                eth_src,
                source,
                source_ll,
                target,
            } => packet::answer_solicitation(self.mac, target, eth_src, source, source_ll),
        };
        if send(&self.tx, &reply) {
            self.shared
                .metrics
                .responses_sent
                .get_or_create(&label)
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> Link {
        Link {
            name: name.to_string(),
            up: true,
            running: true,
            loopback: false,
            noarp: false,
            has_mac: true,
        }
    }

    #[test]
    fn interface_selection_table() {
        let default = InterfaceFilter::default();
        let only = InterfaceFilter {
            only: vec!["veth7".into(), "eth1".into()],
        };
        let cases: Vec<(&str, &InterfaceFilter, Link, bool)> = vec![
            ("plain eth0", &default, link("eth0"), true),
            ("bond", &default, link("bond0"), true),
            ("lo", &default, link("lo"), false),
            ("docker bridge", &default, link("docker0"), false),
            ("veth by default", &default, link("veth1234"), false),
            ("calico", &default, link("cali12ab"), false),
            ("kube-ipvs0", &default, link("kube-ipvs0"), false),
            ("listed veth", &only, link("veth7"), true),
            ("not listed", &only, link("eth0"), false),
            (
                "down",
                &default,
                Link {
                    up: false,
                    ..link("eth0")
                },
                false,
            ),
            (
                "no carrier",
                &default,
                Link {
                    running: false,
                    ..link("eth0")
                },
                false,
            ),
            (
                "NOARP",
                &default,
                Link {
                    noarp: true,
                    ..link("eth0")
                },
                false,
            ),
            (
                "no MAC",
                &default,
                Link {
                    has_mac: false,
                    ..link("wg0")
                },
                false,
            ),
            (
                "listed but down",
                &only,
                Link {
                    running: false,
                    ..link("eth1")
                },
                false,
            ),
        ];
        for (name, filter, l, want) in cases {
            assert_eq!(filter.usable(&l), want, "{name}");
        }
    }

    #[test]
    fn allowed_honours_interface_lists() {
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let mut owned = OwnedMap::new();
        owned.insert(a, None);
        owned.insert(b, Some(["eth1".to_string()].into()));
        assert!(allowed(&owned, a, "eth0"));
        assert!(!allowed(&owned, b, "eth0"));
        assert!(allowed(&owned, b, "eth1"));
        assert!(!allowed(&owned, [192, 0, 2, 3].into(), "eth0"));
    }
}
