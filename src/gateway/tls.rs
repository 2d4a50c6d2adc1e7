//! TLS on the S3 endpoint: a certificate chain and key read from files at start and again on
//! [`S3Tls::reload`] (`exclaved` calls it on SIGHUP). New handshakes take the new certificate;
//! connections already open keep theirs and are not dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::net::tls::TlsError;
use crate::sys::read_secret;

/// The S3 endpoint's certificate, reloadable.
pub struct S3Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for S3Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Tls")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

/// The certificate new handshakes get.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a whole certificate: it is only ever replaced.
        Some(match self.0.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain and its private key (a secret: permissions checked), and
/// checks that they belong together.
fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem = std::fs::read(cert_file).map_err(|error| TlsError::Read {
        path: cert_file.into(),
        error,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_file.into(),
            what: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_file.into(),
            what: "no certificate".into(),
        });
    }
    let key_pem = read_secret(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key_file.into(),
        what: format!("no private key: {e}"),
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Pem {
        path: key_file.into(),
        what: format!("does not go with {}: {e}", cert_file.display()),
    })?;
    Ok(Arc::new(certified))
}

impl S3Tls {
    /// Reads the certificate chain and key; TLS 1.3 and 1.2, HTTP/1.1.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let current = Arc::new(Current(RwLock::new(load(cert_file, key_file)?)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.cert_file, &self.key_file)?;
        match self.current.0.write() {
            Ok(mut k) => *k = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}
