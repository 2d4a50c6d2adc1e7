//! Identities: the cluster CA, a certificate and key per node and gateway, and the peer's role
//! read from its verified certificate.
//!
//! Certificates carry DNS names that say what they are: `gateway.exclave` or `node.exclave` for
//! the role, and `<site>.sites.exclave` for the site. A gateway dials a node by its site name,
//! so it reaches the site it meant; a node learns a peer's role from which role name the peer's
//! CA-verified certificate is valid for.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sys::{FileError, read_secret};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// ALPN of the node protocol.
pub const ALPN: &[u8] = b"exclave/1";
/// DNS name in every gateway certificate.
pub const GATEWAY_NAME: &str = "gateway.exclave";
/// DNS name in every node certificate.
pub const NODE_NAME: &str = "node.exclave";

/// The DNS name of a site.
pub fn site_name(site: &str) -> String {
    format!("{site}.sites.exclave")
}

/// Whether `site` can be a site name: a DNS label (lower-case letters, digits, '-').
pub fn valid_site_name(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 63
        && site
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !site.starts_with('-')
        && !site.ends_with('-')
}

/// What a peer is, from its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A gateway: may write and read everything.
    Gateway,
    /// A node: may read shards (for repair).
    Node,
}

/// Errors loading or checking identities.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A secret file could not be read, or others may read it.
    #[error(transparent)]
    File(#[from] FileError),
    /// A file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The certificate is not issued by the cluster CA (or not valid now, or not for a role).
    #[error("certificate {cert} is not valid under the cluster CA {ca}: {reason}")]
    NotSignedByCa {
        /// The certificate file.
        cert: PathBuf,
        /// The CA file.
        ca: PathBuf,
        /// What webpki said.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// This process's identity: the CA it trusts and its own certificate and key.
#[derive(Clone)]
pub struct Identity {
    ca: CertificateDer<'static>,
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    role: Role,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.role)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Identity {
    /// Loads the CA, certificate and key files, checking the key's permissions and that the
    /// certificate is issued by the CA for a role.
    pub fn load(ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let ca = read_cert(ca_file)?;
        let cert = read_cert(cert_file)?;
        let key_pem = read_secret(key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            path: key_file.to_path_buf(),
            what: format!("no private key: {e}"),
        })?;
        Self::from_der(ca, cert, key).map_err(|reason| TlsError::NotSignedByCa {
            cert: cert_file.to_path_buf(),
            ca: ca_file.to_path_buf(),
            reason,
        })
    }

    /// Secrets for QUIC that stay the same across restarts of this identity's process,
    /// derived from its private key: an HMAC key for stateless resets, and a key for the
    /// connection-id generator. A peer whose connection outlived a restart (a node SIGKILLed
    /// and started again on the same port) then gets a valid stateless reset for its next
    /// packet and reconnects at once, instead of sending into a connection the new process
    /// drops (its ids no longer validate) until the idle timeout.
    pub fn quic_restart_keys(&self) -> (aws_lc_rs::hmac::Key, u64) {
        // HMAC keyed with the private key, over a label per use.
        let secret = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.key.secret_der());
        let derive = |label: &[u8]| aws_lc_rs::hmac::sign(&secret, label);
        let reset = derive(b"exclave quic stateless reset v1");
        let cid = derive(b"exclave quic connection ids v1");
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&cid.as_ref()[..8]);
        (
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, reset.as_ref()),
            u64::from_le_bytes(cid_key),
        )
    }

    /// An identity from DER parts (as `pki` issues them); checks the chain and role.
    pub fn from_der(
        ca: CertificateDer<'static>,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, String> {
        let role = verify_role(&ca, &cert)?;
        Ok(Self {
            ca,
            certs: vec![cert],
            key: Arc::new(key),
            role,
        })
    }

    /// The role this identity's certificate names.
    pub fn role(&self) -> Role {
        self.role
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(roots)
    }

    /// Server side: TLS 1.3 only, client certificates required and verified against the CA,
    /// no early data.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let roots = Arc::new(self.roots()?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.max_early_data_size = 0;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }

    /// Client side: TLS 1.3 only, the CA as the only root, our certificate presented, no 0-RTT.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.enable_early_data = false;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        Ok(cfg)
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.into(),
        error,
    })?;
    CertificateDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.into(),
        what: format!("no certificate: {e}"),
    })
}

/// Verifies `cert` chains to `ca` (now, for TLS client and server use) and returns its role.
fn verify_role(ca: &CertificateDer<'_>, cert: &CertificateDer<'_>) -> Result<Role, String> {
    let anchor = webpki::anchor_from_trusted_cert(ca).map_err(|e| format!("bad CA: {e}"))?;
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("bad certificate: {e}"))?;
    let algs = provider().signature_verification_algorithms.all;
    for usage in [
        webpki::KeyUsage::client_auth(),
        webpki::KeyUsage::server_auth(),
    ] {
        ee.verify_for_usage(
            algs,
            std::slice::from_ref(&anchor),
            &[],
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map_err(|e| format!("{e}"))?;
    }
    role_of(&ee).ok_or_else(|| "names neither the gateway nor the node role".into())
}

fn role_of(ee: &webpki::EndEntityCert<'_>) -> Option<Role> {
    let is = |name: &'static str| {
        ServerName::try_from(name).is_ok_and(|n| ee.verify_is_valid_for_subject_name(&n).is_ok())
    };
    if is(GATEWAY_NAME) {
        Some(Role::Gateway)
    } else if is(NODE_NAME) {
        Some(Role::Node)
    } else {
        None
    }
}

/// The role of a connected peer, from the certificate rustls already verified against the CA.
pub fn peer_role(conn: &quinn::Connection) -> Option<Role> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    let ee = webpki::EndEntityCert::try_from(certs.first()?).ok()?;
    role_of(&ee)
}
