//! Listening sockets, bound here or handed over by whoever started the process: systemd's
//! socket activation (`LISTEN_PID` names this process, `LISTEN_FDS` counts the descriptors
//! from 3 on). A handed-over socket is taken by the address and kind it is bound to, so a
//! unit's `.socket` (or a test that bound port 0 and keeps the port while it restarts the
//! process) needs no names; an address nothing was handed over for is bound as usual.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::{Mutex, OnceLock};

use socket2::{Socket, Type};

/// Descriptors `sd_listen_fds` starts at.
const FIRST_FD: i32 = 3;

fn handed_over() -> &'static Mutex<Vec<Socket>> {
    static HANDED: OnceLock<Mutex<Vec<Socket>>> = OnceLock::new();
    HANDED.get_or_init(|| Mutex::new(take_from_env()))
}

/// The sockets the environment hands to this process, each taken once (the `OnceLock` above
/// runs this at most once per process).
fn take_from_env() -> Vec<Socket> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| (1..=64).contains(n));
    let (true, Some(count)) = (for_us, count) else {
        return Vec::new();
    };
    (FIRST_FD..FIRST_FD + count)
        .filter_map(|fd| {
            // SAFETY: the protocol gives descriptors 3..3+LISTEN_FDS to the process LISTEN_PID
            // names (checked above); nothing else in this process opens or owns them, and the
            // `OnceLock` takes each exactly once.
            #[allow(unsafe_code)]
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let socket = Socket::from(owned);
            // Not a socket (a caller's mistake): dropped, which closes it.
            socket.local_addr().ok()?;
            let _ = socket.set_cloexec(true);
            Some(socket)
        })
        .collect()
}

/// The handed-over socket of kind `kind` bound to `addr`, if there is one.
fn take(addr: SocketAddr, kind: Type) -> Option<Socket> {
    let mut handed = handed_over().lock().unwrap_or_else(|e| e.into_inner());
    let at = handed.iter().position(|s| {
        s.r#type().ok() == Some(kind)
            && s.local_addr().ok().and_then(|a| a.as_socket()) == Some(addr)
    })?;
    Some(handed.swap_remove(at))
}

/// A UDP socket at `addr`: the one handed over for it, or a new one.
pub fn udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    match take(addr, Type::DGRAM) {
        Some(s) => Ok(s.into()),
        None => UdpSocket::bind(addr),
    }
}

/// A listening TCP socket at `addr` (non-blocking, for an async runtime): the one handed over
/// for it, or a new one.
pub fn tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener: TcpListener = match take(addr, Type::STREAM) {
        Some(s) => s.into(),
        None => TcpListener::bind(addr)?,
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}
