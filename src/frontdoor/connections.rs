//! Bounds on client connections: how many the process holds (in all, and per client address),
//! and how long one may stay silent or idle. One [`Connections`] is shared by every listener and
//! serving thread of a node, so the limits hold for the process, whichever socket the kernel
//! handed a connection to.
//!
//! The timeouts are kept here, not in hyper, on purpose. hyper's `header_read_timeout` (hyper
//! 1.12) runs from the moment its HTTP/1 dispatcher starts waiting for a request head until the
//! head is complete. It never runs while hyper-util's `auto` builder is still telling HTTP/1.1 from
//! HTTP/2 (that reads the first bytes without a timer: a connection that sends nothing after the
//! TLS handshake stays open for ever), it does nothing for HTTP/2, and whether it covers the idle
//! wait between keep-alive requests has changed between hyper releases. One watchdog per
//! connection ([`Activity::watch`]) covers all of these the same way for both protocols.

use crate::config::runtime::ConnectionLimits;
use ipnet::IpNet;
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// At most one `connection_refused` log line this often (the next one tells how many were not
/// logged in between): a flood of refusals must not become a flood of log lines.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How many open connections one admission looks at when it must displace an idle one.
const DISPLACE_SCAN: usize = 64;

/// How long connections may stay silent or idle, and HTTP/2 keep-alive.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the TLS handshake, and again from its end to the first byte of a request.
    pub first_byte: Duration,
    /// With no request in flight.
    pub idle: Duration,
    pub http2_keep_alive_interval: Option<Duration>,
    pub http2_keep_alive_timeout: Duration,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Global,
    PerAddress,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Global => "global",
            Limit::PerAddress => "per_address",
        }
    }
}

/// Why the server closed a connection it had admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The TLS handshake did not finish within the first-byte timeout.
    HandshakeTimeout,
    /// No byte of a request within the first-byte timeout after the handshake.
    FirstByteTimeout,
    /// No request in flight for the idle timeout.
    IdleTimeout,
    /// Closed, while idle, to make room for a newcomer at the global limit.
    Displaced,
}

impl Closed {
    const ALL: [Closed; 4] = [
        Closed::HandshakeTimeout,
        Closed::FirstByteTimeout,
        Closed::IdleTimeout,
        Closed::Displaced,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::FirstByteTimeout => "first_byte_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Displaced => "displaced",
        }
    }
}

/// The connection limits and counters of one node.
pub struct Connections {
    pub timeouts: Timeouts,
    max_total: usize,
    max_per_address: usize,
    /// Peers not held to the per-address limit (`server.trusted_proxies`): every user behind a
    /// proxy shares its address.
    exempt: Vec<IpNet>,
    table: Mutex<Table>,
    refused: [AtomicU64; 2],
    closed: [AtomicU64; 4],
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("timeouts", &self.timeouts)
            .field("max_total", &self.max_total)
            .field("max_per_address", &self.max_per_address)
            .field("open", &self.open())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Table {
    open: usize,
    /// Connections told to close for a newcomer that have not closed yet.
    displacing: usize,
    per_address: HashMap<IpAddr, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Where the next search for a connection to displace starts (a clock hand over `slots`).
    hand: usize,
    warned_at: Option<Instant>,
    unlogged: u64,
}

struct Slot {
    address: IpAddr,
    activity: Arc<Activity>,
    displaced: bool,
}

impl Connections {
    pub fn new(limits: &ConnectionLimits, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            timeouts: Timeouts {
                first_byte: limits.first_byte_timeout,
                idle: limits.idle_timeout,
                http2_keep_alive_interval: limits.http2_keep_alive_interval,
                http2_keep_alive_timeout: limits.http2_keep_alive_timeout,
            },
            max_total: limits.max_connections.max(1),
            max_per_address: limits.max_connections_per_address.max(1),
            exempt: trusted_proxies,
            table: Mutex::new(Table::default()),
            refused: Default::default(),
            closed: Default::default(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the counts half-updated in a way that
        // matters more than refusing service would.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open now (admitted and not yet closed), all listeners together.
    pub fn open(&self) -> usize {
        self.table().open
    }

    /// Admits a connection just accepted from `peer`, or says which limit refuses it. Called
    /// before the TLS handshake, so a refusal costs one accept and one close.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<Permit, Refused> {
        let address = address_key(peer);
        let exempt = self
            .exempt
            .iter()
            .any(|n| n.contains(&peer) || n.contains(&address));
        let mut t = self.table();
        let held = t.per_address.get(&address).copied().unwrap_or(0);
        if !exempt && held >= self.max_per_address {
            return Err(self.refuse(&mut t, Limit::PerAddress, now));
        }
        if t.open.saturating_sub(t.displacing) >= self.max_total {
            // Newcomers displacing idle connections may overshoot the limit only by connections
            // already told to close; this bounds the overshoot if those are slow to go.
            let hard_cap = self.max_total.saturating_add((self.max_total / 8).max(1));
            let victim = if t.open < hard_cap {
                t.displace(held, now)
            } else {
                None
            };
            match victim {
                Some(victim) => victim.displace(),
                None => return Err(self.refuse(&mut t, Limit::Global, now)),
            }
        }
        let activity = Arc::new(Activity::new(now));
        let slot = Slot {
            address,
            activity: activity.clone(),
            displaced: false,
        };
        let index = match t.free.pop() {
            Some(i) => {
                if let Some(s) = t.slots.get_mut(i) {
                    *s = Some(slot);
                }
                i
            }
            None => {
                t.slots.push(Some(slot));
                t.slots.len() - 1
            }
        };
        t.open += 1;
        *t.per_address.entry(address).or_insert(0) += 1;
        Ok(Permit {
            connections: self.clone(),
            slot: index,
            activity,
        })
    }

    fn refuse(&self, t: &mut Table, limit: Limit, now: Instant) -> Refused {
        if let Some(c) = self.refused.get(limit as usize) {
            c.fetch_add(1, Relaxed);
        }
        let log = match t.warned_at {
            Some(at) if now.saturating_duration_since(at) < WARN_EVERY => {
                t.unlogged += 1;
                None
            }
            _ => {
                t.warned_at = Some(now);
                Some(std::mem::take(&mut t.unlogged))
            }
        };
        Refused {
            limit,
            open: t.open,
            log,
        }
    }

    fn release(&self, index: usize) {
        let mut t = self.table();
        let Some(slot) = t.slots.get_mut(index).and_then(Option::take) else {
            return;
        };
        t.open = t.open.saturating_sub(1);
        if slot.displaced {
            t.displacing = t.displacing.saturating_sub(1);
        }
        if let Some(n) = t.per_address.get_mut(&slot.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.per_address.remove(&slot.address);
            }
        }
        t.free.push(index);
    }

    /// Counts a connection the server closed, for the metrics.
    pub fn record_closed(&self, why: Closed) {
        if let Some(c) = self.closed.get(why as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Connections refused at accept because of `limit`, since start.
    pub fn refused(&self, limit: Limit) -> u64 {
        self.refused
            .get(limit as usize)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Appends the connection metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let _ = write!(
            out,
            "# HELP portcullis_connections_open Client connections open now, all listeners together.\n\
             # TYPE portcullis_connections_open gauge\n\
             portcullis_connections_open {}\n\
             # HELP portcullis_connections_refused_total Connections closed right after accept because a limit was reached.\n\
             # TYPE portcullis_connections_refused_total counter\n",
            self.open()
        );
        for limit in [Limit::Global, Limit::PerAddress] {
            let _ = writeln!(
                out,
                "portcullis_connections_refused_total{{limit=\"{}\"}} {}",
                limit.as_str(),
                self.refused(limit)
            );
        }
        out.push_str(
            "# HELP portcullis_connections_closed_total Connections the server closed for silence or idleness, or to make room for a newcomer.\n\
             # TYPE portcullis_connections_closed_total counter\n",
        );
        for why in Closed::ALL {
            let n = self.closed.get(why as usize).map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(
                out,
                "portcullis_connections_closed_total{{reason=\"{}\"}} {n}",
                why.as_str()
            );
        }
    }

    /// Warns when `max_connections` leaves no room under the process's open-file limit: accept
    /// would fail with EMFILE before the limit refuses anything.
    pub fn warn_if_above_file_limit(&self) {
        let Some(limit) = open_file_limit() else {
            return;
        };
        // Listening sockets, the database pool, outbound HTTPS, log and key files.
        let reserve = 512;
        if self.max_total.saturating_add(reserve) > limit {
            tracing::warn!(
                max_connections = self.max_total,
                open_file_limit = limit,
                "connections.max_connections is too close to the open-file limit (ulimit -n): lower it or raise the limit"
            );
        }
    }
}

impl Table {
    /// Picks an idle connection to close for a newcomer whose address already holds `held`
    /// connections: one with no request in flight, from the address holding the most connections
    /// among those looked at (the longest idle among equals), and only from an address holding at
    /// least two more than the newcomer's, so that equals never take turns displacing each other.
    fn displace(&mut self, held: usize, now: Instant) -> Option<Arc<Activity>> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let mut best: Option<(usize, usize, Duration)> = None;
        for step in 0..DISPLACE_SCAN.min(len) {
            let i = (self.hand + step) % len;
            let Some(Some(slot)) = self.slots.get(i) else {
                continue;
            };
            if slot.displaced || slot.activity.in_flight.load(Relaxed) > 0 {
                continue;
            }
            let count = self.per_address.get(&slot.address).copied().unwrap_or(0);
            if count < held.saturating_add(2) {
                continue;
            }
            let idle = slot.activity.idle_for(now);
            if best.is_none_or(|(_, c, d)| (count, idle) > (c, d)) {
                best = Some((i, count, idle));
            }
        }
        self.hand = (self.hand + DISPLACE_SCAN) % len;
        let (i, _, _) = best?;
        let slot = self.slots.get_mut(i)?.as_mut()?;
        slot.displaced = true;
        let activity = slot.activity.clone();
        self.displacing += 1;
        Some(activity)
    }
}

/// The key a peer is counted under: its IPv4 address (also when it arrives IPv4-mapped on a
/// dual-stack socket), or the /64 prefix of its IPv6 address, since one subscriber usually holds
/// a whole /64.
pub fn address_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A refused connection: which limit, and whether this refusal is the one to log.
#[derive(Debug)]
pub struct Refused {
    pub limit: Limit,
    open: usize,
    /// `Some(n)`: log this refusal, `n` refusals were not logged since the last line.
    log: Option<u64>,
}

impl Refused {
    pub fn log(&self, peer: IpAddr, listener: crate::request::ListenerKind) {
        if let Some(unlogged) = self.log {
            crate::events::connection_refused(
                self.limit.as_str(),
                &peer.to_string(),
                &format!("{listener:?}"),
                self.open,
                unlogged,
            );
        }
    }
}

/// An admitted connection's place in the count, given back when dropped.
pub struct Permit {
    connections: Arc<Connections>,
    slot: usize,
    pub activity: Arc<Activity>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.connections.release(self.slot);
    }
}

/// What the watchdog of one connection needs to know, updated by the connection's byte stream
/// (first byte) and its requests (in flight, or idle since when).
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    first_byte: AtomicBool,
    in_flight: AtomicU32,
    /// Milliseconds after `born` since which no request has been in flight.
    idle_since_ms: AtomicU64,
    displaced: AtomicBool,
    wake: Notify,
}

/// Why a connection's watchdog ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    FirstByte,
    Idle,
    Displaced,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            born: now,
            first_byte: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            displaced: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn offset(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX)
    }

    fn idle_since(&self) -> Instant {
        self.born + Duration::from_millis(self.idle_since_ms.load(Relaxed))
    }

    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.idle_since())
    }

    /// The TLS handshake (if any) is done: the idle clock starts now.
    pub fn handshake_done(&self, now: Instant) {
        self.idle_since_ms.store(self.offset(now), Relaxed);
    }

    /// The first byte of a request arrived: the watchdog, asleep until the first-byte deadline,
    /// moves on to the idle deadline.
    pub fn saw_first_byte(&self) {
        self.first_byte.store(true, Relaxed);
        self.wake.notify_one();
    }

    /// A request arrived; it counts as in flight until the guard (kept with the response body)
    /// is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    fn displace(&self) {
        self.displaced.store(true, Relaxed);
        // Stores a permit when the watchdog is not waiting yet, so it cannot be missed.
        self.wake.notify_one();
    }

    /// Resolves once the connection was chosen to make room for a newcomer.
    pub async fn displaced(&self) {
        while !self.displaced.load(Relaxed) {
            self.wake.notified().await;
        }
    }

    /// Resolves when the connection has been silent or idle too long (`ready` is when its
    /// handshake finished), or was displaced. Cheap while requests come and go: it sleeps until
    /// the earliest moment the connection could have expired and looks again.
    pub async fn watch(&self, timeouts: &Timeouts, ready: Instant) -> Expired {
        loop {
            if self.displaced.load(Relaxed) {
                return Expired::Displaced;
            }
            let now = Instant::now();
            let deadline = if !self.first_byte.load(Relaxed) {
                let d = ready + timeouts.first_byte;
                if now >= d {
                    return Expired::FirstByte;
                }
                d
            } else if self.in_flight.load(Relaxed) > 0 {
                now + timeouts.idle
            } else {
                let d = self.idle_since() + timeouts.idle;
                if now >= d {
                    return Expired::Idle;
                }
                d
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// A request in flight on a connection; when the last one ends the connection is idle.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Relaxed) == 1 {
            a.idle_since_ms.store(a.offset(Instant::now()), Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(total: usize, per_address: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_address: per_address,
            ..ConnectionLimits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_peers_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[tokio::test]
    async fn the_per_address_limit_refuses_and_a_closed_connection_frees_its_place() {
        let c = Arc::new(Connections::new(&section(100, 2), Vec::new()));
        let now = Instant::now();
        let a = c.admit(ip("192.0.2.1"), now).unwrap();
        let _b = c.admit(ip("192.0.2.1"), now).unwrap();
        let refused = c.admit(ip("192.0.2.1"), now).unwrap_err();
        assert_eq!(refused.limit, Limit::PerAddress);
        assert!(c.admit(ip("192.0.2.2"), now).is_ok());
        drop(a);
        assert!(c.admit(ip("192.0.2.1"), now).is_ok());
        assert_eq!(c.refused(Limit::PerAddress), 1);
    }

    #[tokio::test]
    async fn trusted_proxies_are_held_only_to_the_global_limit() {
        let c = Arc::new(Connections::new(
            &section(4, 1),
            vec!["10.0.0.0/8".parse().unwrap()],
        ));
        let now = Instant::now();
        let held: Vec<_> = (0..4)
            .map(|_| c.admit(ip("10.1.2.3"), now).unwrap())
            .collect();
        // Busy connections: nothing to displace.
        let _busy: Vec<_> = held.iter().map(|p| p.activity.request_started()).collect();
        assert_eq!(
            c.admit(ip("10.1.2.3"), now).unwrap_err().limit,
            Limit::Global
        );
    }

    #[tokio::test]
    async fn at_the_global_limit_a_newcomer_displaces_an_idle_connection_of_a_bigger_holder() {
        let c = Arc::new(Connections::new(&section(4, 4), Vec::new()));
        let now = Instant::now();
        let hog: Vec<_> = (0..3)
            .map(|_| c.admit(ip("192.0.2.1"), now).unwrap())
            .collect();
        let other = c.admit(ip("192.0.2.2"), now).unwrap();
        // The hog's last connection is busy, so one of its idle ones goes.
        let _busy = hog[2].activity.request_started();
        let newcomer = c.admit(ip("192.0.2.3"), now).unwrap();
        let displaced: Vec<bool> = hog
            .iter()
            .map(|p| p.activity.displaced.load(Relaxed))
            .collect();
        assert_eq!(displaced.iter().filter(|d| **d).count(), 1);
        assert!(
            !displaced[2],
            "a connection with a request in flight is never displaced"
        );
        assert!(!other.activity.displaced.load(Relaxed));
        // The hog itself cannot displace the single connection of another address, nor its own.
        assert_eq!(
            c.admit(ip("192.0.2.1"), now).unwrap_err().limit,
            Limit::Global
        );
        drop(newcomer);
    }

    #[tokio::test]
    async fn refusals_are_logged_at_most_once_per_interval() {
        let c = Arc::new(Connections::new(&section(100, 1), Vec::new()));
        let now = Instant::now();
        let _a = c.admit(ip("192.0.2.1"), now).unwrap();
        let first = c.admit(ip("192.0.2.1"), now).unwrap_err();
        let second = c
            .admit(ip("192.0.2.1"), now + Duration::from_secs(1))
            .unwrap_err();
        let later = c.admit(ip("192.0.2.1"), now + WARN_EVERY).unwrap_err();
        assert_eq!((first.log, second.log, later.log), (Some(0), None, Some(1)));
    }
}
