//! A throw-away layer-2 lab in Linux network namespaces, for the speaker's tests and the
//! failover bench (needs root or CAP_NET_ADMIN, and `iproute2`).
//!
//! ```text
//!   root ns: <id>h 10.213.X.1 ──veth── lan ns: bridge br0 ─┬─ node ns 1..N: eth0 .11, .12, ...
//!   (the sandbox API listens here)                          └─ client ns: eth0 .100
//! ```
//! The bridge lives in its own namespace, so the host's firewall (br_netfilter) never sees
//! the frames. Everything is removed on drop, processes started with [`Lab::spawn`] first.
//! Addresses `.200-.239` (and `fd00:213:X::200-23f`) are left for the pool.

use std::io::BufRead;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("running `{cmd}`: {source} (is iproute2 installed and are we root?)")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tool}` is missing: install the Debian package `{package}` (scripts/test does)")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("no free lab slot (every 10.213.X.0/24 bridge name is taken)")]
    NoSlot,
}

/// One node namespace.
#[derive(Clone, Debug)]
pub struct LabNode {
    pub ns: String,
    pub mac: String,
    pub ip4: Ipv4Addr,
    pub ip6: Ipv6Addr,
}

pub struct Lab {
    pub slot: u8,
    pub lan: String,
    pub client: LabNode,
    pub nodes: Vec<LabNode>,
    host_if: String,
    children: Mutex<Vec<std::process::Child>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn cmd_string(args: &[&str]) -> String {
    args.join(" ")
}

/// Run a command; error with its stderr unless it succeeds.
pub fn sh(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: cmd_string(args),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: cmd_string(args),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn in_ns(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full)
}

impl Lab {
    /// Build a lab with `nodes` node namespaces and a client.
    pub fn create(nodes: usize) -> Result<Lab, LabError> {
        // Claim a slot by creating its host-side veth: creation fails if another lab (in this
        // or another process) holds the name, which makes it a lock.
        let start = (std::process::id() + COUNTER.fetch_add(1, Ordering::SeqCst) * 7) % 200;
        for k in 0..200u32 {
            let slot = ((start + k) % 200 + 20) as u8;
            let lan = format!("fdl{slot}-lan");
            let host_if = format!("fdl{slot}h");
            let peer = format!("fdl{slot}p");
            if sh(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
            ])
            .is_err()
            {
                continue;
            }
            let mut lab = Lab {
                slot,
                lan: lan.clone(),
                client: node_def(slot, "client", 100),
                nodes: (0..nodes)
                    .map(|i| node_def(slot, &format!("node{}", i + 1), 11 + i as u8))
                    .collect(),
                host_if,
                children: Mutex::new(Vec::new()),
            };
            lab.build(&peer)?;
            return Ok(lab);
        }
        Err(LabError::NoSlot)
    }

    fn build(&mut self, peer: &str) -> Result<(), LabError> {
        let s = self.slot;
        sh(&["ip", "netns", "add", &self.lan])?;
        in_ns(&self.lan, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&self.lan, &["ip", "link", "set", "br0", "up"])?;
        in_ns(&self.lan, &["ip", "link", "set", "lo", "up"])?;
        sh(&["ip", "link", "set", peer, "netns", &self.lan])?;
        in_ns(
            &self.lan,
            &["ip", "link", "set", peer, "master", "br0", "up"],
        )?;
        let host_ip = format!("{}/24", self.host_ip());
        sh(&["ip", "addr", "add", &host_ip, "dev", &self.host_if])?;
        sh(&["ip", "link", "set", &self.host_if, "up"])?;
        let members: Vec<LabNode> = self
            .nodes
            .iter()
            .cloned()
            .chain([self.client.clone()])
            .collect();
        for (i, n) in members.iter().enumerate() {
            sh(&["ip", "netns", "add", &n.ns])?;
            // No duplicate address detection: addresses usable at once.
            for key in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                // Answer ARP only for addresses on the receiving interface, so a test's
                // `local` route for the VIP (to accept TCP) never makes the kernel answer.
                "net.ipv4.conf.all.arp_ignore=1",
            ] {
                in_ns(&n.ns, &["sysctl", "-qw", key])?;
            }
            let outside = format!("fdl{s}v{i}");
            sh(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns",
                &n.ns,
            ])?;
            sh(&["ip", "link", "set", &outside, "netns", &self.lan])?;
            in_ns(
                &self.lan,
                &["ip", "link", "set", &outside, "master", "br0", "up"],
            )?;
            in_ns(&n.ns, &["ip", "link", "set", "lo", "up"])?;
            in_ns(&n.ns, &["ip", "link", "set", "eth0", "address", &n.mac])?;
            in_ns(&n.ns, &["ip", "link", "set", "eth0", "up"])?;
            in_ns(
                &n.ns,
                &["ip", "addr", "add", &format!("{}/24", n.ip4), "dev", "eth0"],
            )?;
            in_ns(
                &n.ns,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{}/64", n.ip6),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            )?;
        }
        Ok(())
    }

    /// The root namespace's address on the lab LAN (where the sandbox API should listen).
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, 1)
    }

    /// The root namespace's interface on the lab LAN (a speaker running in this process can
    /// answer on it).
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// IPv4 pool range for the lab (`10.213.X.200-10.213.X.239`).
    pub fn pool_v4(&self) -> String {
        format!("10.213.{0}.200-10.213.{0}.239", self.slot)
    }

    /// IPv6 pool range (`fd00:213:X::200-fd00:213:X::23f`).
    pub fn pool_v6(&self) -> String {
        format!("fd00:213:{0:x}::200-fd00:213:{0:x}::23f", self.slot)
    }

    /// Pull (or plug back) node `i`'s cable: its bridge-side veth goes down, so the node
    /// sees its carrier go.
    pub fn set_carrier(&self, i: usize, up: bool) -> Result<(), LabError> {
        let port = format!("fdl{}v{i}", self.slot);
        in_ns(
            &self.lan,
            &["ip", "link", "set", &port, if up { "up" } else { "down" }],
        )?;
        Ok(())
    }

    /// The node namespace whose MAC is `mac`.
    pub fn node_by_mac(&self, mac: &str) -> Option<&LabNode> {
        self.nodes.iter().find(|n| n.mac.eq_ignore_ascii_case(mac))
    }

    /// `ip netns exec <ns> <args>`, output if it succeeds.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<String, LabError> {
        in_ns(ns, args)
    }

    /// Start a long-running process in `ns`; it is killed when the lab is dropped (or by
    /// [`Lab::signal`]). Returns its pid.
    pub fn spawn(
        &self,
        ns: &str,
        args: &[&str],
        log: Option<std::fs::File>,
    ) -> Result<u32, LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null());
        match log {
            Some(f) => {
                let f2 = f.try_clone().map_err(|source| LabError::Spawn {
                    cmd: cmd_string(args),
                    source,
                })?;
                cmd.stdout(f).stderr(f2);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd_string(args),
            source,
        })?;
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        Ok(pid)
    }

    /// Send `signal` (`KILL`, `TERM`) to a process started with [`Lab::spawn`] (`ip netns
    /// exec` execs the command, so the pid is the command's own).
    pub fn signal(&self, pid: u32, signal: &str) -> Result<(), LabError> {
        sh(&["kill", &format!("-{signal}"), &pid.to_string()])?;
        Ok(())
    }

    /// Wait for a spawned process to exit (reaps it).
    pub fn wait(&self, pid: u32) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = children.iter_mut().find(|c| c.id() == pid) {
            let _ = c.wait();
        }
    }
}

/// Fail unless the probing tools are installed (never skip a test for that).
pub fn require_tools() -> Result<(), LabError> {
    for (tool, package) in [
        ("ip", "iproute2"),
        ("arping", "arping"),
        ("ndisc6", "ndisc6"),
        ("stdbuf", "coreutils"),
        ("python3", "python3"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(LabError::MissingTool { tool, package });
        }
    }
    Ok(())
}

impl Lab {
    /// `arping` (Thomas Habets' 2.x) from the client: `count` requests `interval` apart;
    /// the MAC of every reply, in order (several MACs = several answerers).
    pub fn arping(
        &self,
        ip: Ipv4Addr,
        count: u32,
        interval: Duration,
    ) -> Result<Vec<String>, LabError> {
        let out = self.client_cmd(&[
            "arping",
            "-i",
            "eth0",
            "-r",
            "-c",
            &count.to_string(),
            "-W",
            &format!("{:.3}", interval.as_secs_f64()),
            "-w",
            &format!("{:.3}", (interval * count).as_secs_f64() + 0.5),
            &ip.to_string(),
        ])?;
        Ok(macs(&out))
    }

    /// `ndisc6` from the client: every neighbour advertisement's link-layer address.
    pub fn ndisc(&self, ip: Ipv6Addr) -> Result<Vec<String>, LabError> {
        let out = self.client_cmd(&[
            "ndisc6",
            "-m",
            "-q",
            "-r",
            "2",
            "-w",
            "400",
            &ip.to_string(),
            "eth0",
        ])?;
        Ok(macs(&out))
    }

    /// Run in the client namespace; a non-zero exit (no reply) is not an error.
    fn client_cmd(&self, args: &[&str]) -> Result<String, LabError> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client.ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| LabError::Spawn {
                cmd: cmd_string(args),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// A continuous `arping` from the client (one request per `interval`), recording when
    /// each reply arrived and from which MAC. Stops when dropped.
    pub fn probe(&self, ip: Ipv4Addr, interval: Duration) -> Result<Prober, LabError> {
        let args = [
            "ip",
            "netns",
            "exec",
            &self.client.ns,
            "stdbuf",
            "-oL",
            "arping",
            "-i",
            "eth0",
            "-r",
            "-W",
            &format!("{:.3}", interval.as_secs_f64()),
            &ip.to_string(),
        ];
        let mut child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| LabError::Spawn {
                cmd: cmd_string(&args),
                source,
            })?;
        let replies = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let r = replies.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    for mac in macs(&line) {
                        r.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), mac));
                    }
                }
            });
        }
        Ok(Prober { child, replies })
    }
}

fn macs(out: &str) -> Vec<String> {
    out.split_whitespace()
        .filter(|w| w.len() == 17 && w.matches(':').count() == 5)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A running `arping`; the replies seen so far.
pub struct Prober {
    child: Child,
    replies: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Prober {
    pub fn replies(&self) -> Vec<(Instant, String)> {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A change of answering MAC in a reply sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    pub from: String,
    pub to: String,
    /// Last reply from `from` to first reply from `to`.
    pub gap: Duration,
    /// Replies from `from` seen after the first from `to` (two answerers at once).
    pub overlap: usize,
}

/// The first change away from `old` after `since` (pure).
pub fn failover(replies: &[(Instant, String)], old: &str, since: Instant) -> Option<Failover> {
    failover_between(replies, old, since, None)
}

/// Like [`failover`], looking only at replies before `until` (when a later, legitimate move
/// back to `old` must not count as overlap).
pub fn failover_between(
    replies: &[(Instant, String)],
    old: &str,
    since: Instant,
    until: Option<Instant>,
) -> Option<Failover> {
    let window: Vec<&(Instant, String)> = replies
        .iter()
        .filter(|(t, _)| until.is_none_or(|u| *t < u))
        .collect();
    let after: Vec<&&(Instant, String)> = window.iter().filter(|(t, _)| *t >= since).collect();
    let first_new = after.iter().position(|(_, m)| m != old)?;
    let (t_new, to) = (*after[first_new]).clone();
    let last_old = window
        .iter()
        .filter(|(t, m)| m == old && *t <= t_new)
        .map(|(t, _)| *t)
        .max()?;
    let overlap = after[first_new..].iter().filter(|(_, m)| m == old).count();
    Some(Failover {
        from: old.to_string(),
        to,
        gap: t_new.saturating_duration_since(last_old),
        overlap,
    })
}

fn node_def(slot: u8, role: &str, host: u8) -> LabNode {
    LabNode {
        ns: format!("fdl{slot}-{role}"),
        mac: format!("02:fd:00:{slot:02x}:00:{host:02x}"),
        ip4: Ipv4Addr::new(10, 213, slot, host),
        ip6: format!("fd00:213:{slot:x}::{host:x}")
            .parse()
            .unwrap_or(Ipv6Addr::UNSPECIFIED),
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace removes its interfaces (and the veth peers outside).
        for n in self.nodes.iter().chain([&self.client]) {
            let _ = sh(&["ip", "netns", "del", &n.ns]);
        }
        let _ = sh(&["ip", "netns", "del", &self.lan]);
        let _ = sh(&["ip", "link", "del", &self.host_if]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_picked_from_arping_and_ndisc6_output() {
        assert_eq!(macs("02:FD:00:14:00:0B\n"), ["02:fd:00:14:00:0b"]);
        assert_eq!(
            macs("60 bytes from 02:fd:00:14:00:0b (10.213.20.200): index=0\n"),
            ["02:fd:00:14:00:0b"]
        );
        assert!(macs("Timeout\n").is_empty());
    }

    #[test]
    fn failover_measures_the_gap_and_counts_overlap() {
        let t0 = Instant::now();
        let at = |ms: u64, m: &str| (t0 + Duration::from_millis(ms), m.to_string());
        let clean = vec![at(0, "a"), at(100, "a"), at(900, "b"), at(1000, "b")];
        let f = failover(&clean, "a", t0).unwrap();
        assert_eq!(
            (f.to.as_str(), f.gap, f.overlap),
            ("b", Duration::from_millis(800), 0)
        );
        let messy = vec![at(0, "a"), at(100, "b"), at(150, "a"), at(200, "b")];
        let f = failover(&messy, "a", t0).unwrap();
        assert_eq!((f.gap, f.overlap), (Duration::from_millis(100), 1));
        assert_eq!(failover(&[at(0, "a")], "a", t0), None);
        let back = vec![at(0, "a"), at(100, "b"), at(500, "a")];
        let f = failover_between(&back, "a", t0, Some(t0 + Duration::from_millis(400))).unwrap();
        assert_eq!(f.overlap, 0, "the move back is outside the window");
    }
}
