//! The link to one node: one QUIC connection, dialled when it is needed and redialled when it
//! drops, and what is known of the node's reachability (down, failed lately, late for reads).
//!
//! Every dial runs on a task of its own, and callers wait for it (up to the connect limit). A
//! caller that gives up (a hedged read that went on without this node) therefore never cancels
//! the dial: the node is used again as soon as one succeeds, and the next batch does not dial
//! it again from the start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::{Mutex, Notify};

use crate::net::frame::NetError;
use crate::net::tls::site_name;

/// Time allowed to establish a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a node that could not be reached is not dialled again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long an unanswered call or failed connect (with no call answered since) counts as the
/// node being down, for refusing writes that could not reach their quorum before their body is
/// read. Longer than a client's usual retry back-off, so its retries are refused at once too.
const KNOWN_DOWN_FOR: Duration = Duration::from_secs(10);

/// An open connection that has sent datagrams and received none for this long is taken for
/// dead: new calls fail at once instead of waiting on it. QUIC's own idle timeout does not
/// close such a connection while requests keep it sending (its probe timeout backs off), so a
/// SIGKILLed node would otherwise hold every read a hedge delay, and every control call until
/// its own timeout. Longer than the keep-alive interval plus a round trip, so an idle, healthy
/// link (whose keep-alive pings are acknowledged) is never taken for dead.
pub(super) const SILENT_AFTER: Duration = Duration::from_secs(4);

/// How long a node whose answer a read went on without is asked last by later reads (unless
/// it answers a call meanwhile).
const LATE_FOR: Duration = Duration::from_secs(5);

/// The link to one node.
#[derive(Debug)]
pub(super) struct Link {
    endpoint: Endpoint,
    addr: SocketAddr,
    site: String,
    /// Shared with the dial running in the background.
    state: Arc<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    conn: Mutex<Option<Connection>>,
    marks: std::sync::Mutex<Marks>,
    /// A dial is running.
    dialing: AtomicBool,
    /// Told when a dial ends.
    dialed: Notify,
}

/// What is known of the node's reachability.
#[derive(Debug)]
struct Marks {
    /// After a failed connect, calls fail at once until this instant (then one retry).
    down_until: Option<Instant>,
    /// When a connect last failed or a call went unanswered, until a call is answered.
    failed_at: Option<Instant>,
    /// Until when reads ask the node's shards last: a read went on without its answer.
    late_until: Option<Instant>,
    /// What the open connection has been heard from.
    heard: Heard,
    /// The last shard write to the node failed for lack of space.
    disk_full: bool,
}

/// The open connection's datagram counters when last looked at, and when it was last seen to
/// receive one.
#[derive(Debug, Clone, Copy)]
struct Heard {
    rx: u64,
    tx_then: u64,
    at: Instant,
}

impl Heard {
    fn now() -> Self {
        Self {
            rx: 0,
            tx_then: 0,
            at: Instant::now(),
        }
    }
}

impl LinkState {
    fn marks(&self) -> MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Link {
    pub(super) fn new(endpoint: Endpoint, addr: SocketAddr, site: &str) -> Self {
        Self {
            endpoint,
            addr,
            site: site.to_owned(),
            state: Arc::new(LinkState {
                conn: Mutex::new(None),
                marks: std::sync::Mutex::new(Marks {
                    down_until: None,
                    failed_at: None,
                    late_until: None,
                    heard: Heard::now(),
                    disk_full: false,
                }),
                dialing: AtomicBool::new(false),
                dialed: Notify::new(),
            }),
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn site(&self) -> &str {
        &self.site
    }

    /// Whether the node is known to be unreachable now: a connect failed or a call went
    /// unanswered in the last [`KNOWN_DOWN_FOR`] and no call was answered since, or the open
    /// connection went silent.
    pub(super) fn known_down(&self) -> bool {
        let failed = {
            let m = self.state.marks();
            m.down_until.is_some_and(|t| Instant::now() < t)
                || m.failed_at.is_some_and(|t| t.elapsed() < KNOWN_DOWN_FOR)
        };
        // A closed connection does not count: only the next dial can tell whether the node is
        // back, and nothing would dial if writes were refused for it.
        failed
            || self.state.conn.try_lock().is_ok_and(|g| {
                g.as_ref()
                    .is_some_and(|c| c.close_reason().is_none() && self.silent(c))
            })
    }

    /// Whether reads should ask this node's shards last: a recent read went on without its
    /// answer, or the node is known to be down.
    pub(super) fn late(&self) -> bool {
        let late = self.state.marks().late_until;
        late.is_some_and(|t| Instant::now() < t) || self.known_down()
    }

    /// A read went on without this node's answer: later reads ask it last for a while,
    /// instead of waiting a hedge delay on it batch after batch.
    pub(super) fn note_late(&self) {
        self.state.marks().late_until = Some(Instant::now() + LATE_FOR);
    }

    /// A call went unanswered (a transport error, or a caller's timeout).
    pub(super) fn note_unanswered(&self) {
        self.state.marks().failed_at = Some(Instant::now());
    }

    /// The node answered a call, if only to say no.
    pub(super) fn note_answered(&self) {
        let mut m = self.state.marks();
        m.failed_at = None;
        m.late_until = None;
    }

    /// Records whether the last shard write failed for lack of space; says whether that
    /// changed.
    pub(super) fn set_disk_full(&self, full: bool) -> bool {
        let mut m = self.state.marks();
        std::mem::replace(&mut m.disk_full, full) != full
    }

    /// Whether the last shard write failed for lack of space.
    pub(super) fn disk_full(&self) -> bool {
        self.state.marks().disk_full
    }

    /// The open connection's round-trip time, packets sent and lost, and the path MTU it
    /// reached, if one is open (and not being dialled right now).
    pub(super) fn path_stats(&self) -> Option<(Duration, u64, u64, u16)> {
        let guard = self.state.conn.try_lock().ok()?;
        let c = guard.as_ref().filter(|c| c.close_reason().is_none())?;
        let s = c.stats();
        Some((
            c.rtt(),
            s.path.sent_packets,
            s.path.lost_packets,
            s.path.current_mtu,
        ))
    }

    /// A new stream to the node.
    pub(super) async fn open(&self) -> Result<(SendStream, RecvStream), NetError> {
        let conn = self.connection().await?;
        match conn.open_bi().await {
            Ok(s) => Ok(s),
            Err(_) => {
                // The connection died since we checked: one fresh attempt.
                *self.state.conn.lock().await = None;
                Ok(self.connection().await?.open_bi().await?)
            }
        }
    }

    /// Whether the open connection `c` has sent datagrams but heard none for
    /// [`SILENT_AFTER`].
    fn silent(&self, c: &Connection) -> bool {
        let stats = c.stats();
        let (rx, tx) = (stats.udp_rx.datagrams, stats.udp_tx.datagrams);
        let heard = &mut self.state.marks().heard;
        if rx != heard.rx {
            *heard = Heard {
                rx,
                tx_then: tx,
                at: Instant::now(),
            };
            return false;
        }
        tx > heard.tx_then && heard.at.elapsed() > SILENT_AFTER
    }

    fn fail(&self, reason: String) -> NetError {
        NetError::Connect {
            addr: self.addr.to_string(),
            reason,
        }
    }

    async fn connection(&self) -> Result<Connection, NetError> {
        // A node just found unreachable is not dialled again at once: writes and reads that
        // need only a quorum go on without waiting out a connect timeout each time.
        let unreachable = || self.fail("unreachable a moment ago; retrying shortly".into());
        if self
            .state
            .marks()
            .down_until
            .is_some_and(|t| Instant::now() < t)
        {
            return Err(unreachable());
        }
        let guard = self.state.conn.lock().await;
        if let Some(c) = guard.as_ref()
            && c.close_reason().is_none()
        {
            if self.silent(c) {
                // Kept open: if the node was only stalled it answers on it again; if it
                // restarted, its stateless reset closes it and the next call dials.
                self.note_unanswered();
                return Err(self.fail(format!(
                    "no datagram heard for over {} s on the open connection",
                    SILENT_AFTER.as_secs()
                )));
            }
            return Ok(c.clone());
        }
        // Registered before the dial starts (under the lock the dial needs to store its
        // connection), so its end cannot be missed.
        let dialed = self.state.dialed.notified();
        tokio::pin!(dialed);
        dialed.as_mut().enable();
        self.dial_in_background();
        drop(guard);
        if tokio::time::timeout(CONNECT_TIMEOUT, dialed).await.is_ok()
            && let Some(c) = self.state.conn.lock().await.as_ref()
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        Err(unreachable())
    }

    /// Dials the node on a task of its own, one dial at a time; the connection, or the
    /// failure, is kept for the calls that follow.
    fn dial_in_background(&self) {
        if self.state.dialing.swap(true, Ordering::SeqCst) {
            return;
        }
        let (endpoint, addr, site, state) = (
            self.endpoint.clone(),
            self.addr,
            self.site.clone(),
            self.state.clone(),
        );
        let fail = move |reason: String| NetError::Connect {
            addr: addr.to_string(),
            reason,
        };
        tokio::spawn(async move {
            let dialed = async {
                let connecting = endpoint
                    .connect(addr, &site_name(&site))
                    .map_err(|e| fail(e.to_string()))?;
                tokio::time::timeout(CONNECT_TIMEOUT, connecting)
                    .await
                    .map_err(|_| fail("timed out".into()))?
                    .map_err(|e| fail(e.to_string()))
            }
            .await;
            let now = Instant::now();
            {
                let mut m = state.marks();
                m.down_until = dialed.is_err().then_some(now + RETRY_AFTER);
                m.failed_at = dialed.is_err().then_some(now);
                if dialed.is_ok() {
                    m.heard = Heard::now();
                    m.late_until = None;
                }
            }
            match dialed {
                Ok(conn) => *state.conn.lock().await = Some(conn),
                Err(e) => tracing::debug!(site = %site, error = %e, "dial failed"),
            }
            state.dialing.store(false, Ordering::SeqCst);
            state.dialed.notify_waiters();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_idle_link_is_heard_before_it_counts_as_silent() {
        // Keep-alive pings are answered within a round trip: the silence threshold must
        // exceed the longest keep-alive interval by more than a long-haul round trip.
        for s in [
            crate::net::TransportSettings::default(),
            crate::net::TransportSettings::loopback(),
        ] {
            assert!(SILENT_AFTER >= s.keep_alive + Duration::from_millis(900));
        }
    }
}
