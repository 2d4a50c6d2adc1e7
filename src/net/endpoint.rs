//! QUIC endpoints with the transport settings the cluster uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, EndpointConfig, MtuDiscoveryConfig, TransportConfig, VarInt};

use crate::net::tls::{Identity, TlsError};

/// Transport knobs (`[transport]` in the config; `docs/config.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportSettings {
    /// MTU used from the first packet. 1200 is safe everywhere; loopback allows far more.
    pub initial_mtu: u16,
    /// Largest MTU path discovery may reach (at most [`GSO_SAFE_MTU`]: loopback and jumbo-frame
    /// LANs get there, a 1500-byte LAN settles at ~1472).
    pub mtu_upper_bound: u16,
    /// UDP socket send and receive buffer, bytes (the defaults drop packets under load).
    pub udp_buffer_bytes: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval (below the idle timeout).
    pub keep_alive: Duration,
    /// Flow-control window of one stream, bytes (bounds memory per stream).
    pub stream_window: u32,
    /// Flow-control window of one connection, bytes (bounds memory per peer).
    pub connection_window: u32,
    /// Concurrent bidirectional streams a peer may open.
    pub max_streams: u32,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            initial_mtu: 1200,
            mtu_upper_bound: GSO_SAFE_MTU,
            udp_buffer_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(3),
            stream_window: 4 << 20,
            connection_window: 32 << 20,
            max_streams: 256,
        }
    }
}

/// The largest packet that survives quinn's segmentation offload: it sends up to 10 datagrams
/// in one GSO batch, and a batch is one UDP send of at most 65,507 bytes. Past 6,550 bytes a
/// full batch fails, which quinn counts as lost packets, then as a black hole: the path falls
/// back to 1,200 bytes for good (measured: 8,952 reached, then 1,200 after one 64 MiB PUT).
pub const GSO_SAFE_MTU: u16 = 6_550;

impl TransportSettings {
    /// Settings for loopback-only clusters (`exclaved dev`, tests): a large MTU from the start,
    /// flow-control windows for a round trip of microseconds (1 MiB per stream, 8 MiB per peer
    /// keep loopback links full: measured, a 4 x 256 MiB PUT to `exclaved dev` peaked at 138
    /// MiB with them and 177-204 MiB with the defaults, at the same speed), and a dead peer
    /// noticed within 3 s.
    pub fn loopback() -> Self {
        Self {
            initial_mtu: GSO_SAFE_MTU,
            idle_timeout: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
            stream_window: 1 << 20,
            connection_window: 8 << 20,
            ..Self::default()
        }
    }

    /// The largest UDP payload path MTU discovery may reach: the configured bound, but never
    /// more than [`GSO_SAFE_MTU`].
    fn mtu_bound(&self) -> u16 {
        self.mtu_upper_bound.max(self.initial_mtu).min(GSO_SAFE_MTU)
    }

    fn transport(&self) -> TransportConfig {
        let mut t = TransportConfig::default();
        t.initial_mtu(self.initial_mtu.min(GSO_SAFE_MTU));
        t.min_mtu(self.initial_mtu.min(1200));
        let mut mtud = MtuDiscoveryConfig::default();
        mtud.upper_bound(self.mtu_bound());
        t.mtu_discovery_config(Some(mtud));
        t.max_idle_timeout(self.idle_timeout.try_into().ok());
        t.keep_alive_interval(Some(self.keep_alive));
        t.stream_receive_window(VarInt::from_u32(self.stream_window));
        t.receive_window(VarInt::from_u32(self.connection_window));
        t.send_window(u64::from(self.connection_window));
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        t
    }
}

/// Errors creating an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Socket.
    #[error("UDP socket {addr}: {error}")]
    Socket {
        /// Address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// quinn refused the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

/// A QUIC endpoint bound to `addr`; serves if `serve`, and can always dial out.
pub fn endpoint(
    addr: SocketAddr,
    identity: &Identity,
    settings: &TransportSettings,
    serve: bool,
) -> Result<Endpoint, EndpointError> {
    let socket =
        crate::sys::listen::udp(addr).map_err(|error| EndpointError::Socket { addr, error })?;
    let sock = socket2::SockRef::from(&socket);
    // Best effort: the kernel may cap these (net.core.rmem_max); a smaller buffer still works.
    let _ = sock.set_recv_buffer_size(settings.udp_buffer_bytes);
    let _ = sock.set_send_buffer_size(settings.udp_buffer_bytes);
    let transport = Arc::new(settings.transport());

    let server = if serve {
        let crypto = QuicServerConfig::try_from(identity.server_config()?)
            .map_err(|e| EndpointError::Quic(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport.clone());
        Some(server)
    } else {
        None
    };
    let runtime =
        quinn::default_runtime().ok_or_else(|| EndpointError::Quic("no async runtime".into()))?;
    let (reset_key, cid_key) = identity.quic_restart_keys();
    let mut config = EndpointConfig::new(Arc::new(reset_key));
    // What a peer may send us: quinn's default (1472, an Ethernet MTU) caps path MTU discovery
    // in both directions, so without this no packet ever grew past 1,472 bytes, loopback and
    // jumbo-frame LANs included (issue 19: ~1,430 bytes of payload per packet).
    config
        .max_udp_payload_size(settings.mtu_bound())
        .map_err(|e| EndpointError::Quic(format!("mtu_upper_bound: {e}")))?;
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let mut ep = Endpoint::new(config, server, socket, runtime)
        .map_err(|error| EndpointError::Socket { addr, error })?;
    let crypto = QuicClientConfig::try_from(identity.client_config()?)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport);
    ep.set_default_client_config(client);
    Ok(ep)
}
