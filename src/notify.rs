//! The systemd notification protocol (sd_notify): `READY=1` once the roles serve,
//! `WATCHDOG=1` pings from a task on the runtime (a stuck event loop stops them, and systemd
//! restarts the service), `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` it does nothing.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to systemd's notification socket, if the service manager gave one.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_str()?;
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).ok()?,
            None => SocketAddr::from_pathname(path).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Self { socket, addr })
    }

    /// Sends one state line (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...`).
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`), if this process is the one
    /// it watches (`WATCHDOG_PID` unset or ours).
    pub fn watchdog_interval() -> Option<Duration> {
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.trim() != std::process::id().to_string()
        {
            return None;
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec))
    }
}

/// Pings the watchdog at half the interval until `stop` turns true. It runs on the runtime,
/// so a runtime that stops making progress stops the pings.
pub async fn watchdog(
    notifier: std::sync::Arc<Notifier>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = interval / 2;
    loop {
        notifier.notify("WATCHDOG=1");
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
