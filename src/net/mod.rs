//! The transport: QUIC (quinn) with mutual TLS 1.3 (rustls) against the cluster CA, and the
//! framing of core's wire messages. Uses only `core`.

pub mod endpoint;
pub mod frame;
pub mod pki;
pub mod tls;

pub use endpoint::TransportSettings;
pub use frame::NetError;
pub use tls::{Identity, Role, TlsError};
