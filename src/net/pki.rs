//! Issuing the cluster CA and the certificates of nodes and gateways (rcgen).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::net::tls::{GATEWAY_NAME, NODE_NAME, Role, site_name, valid_site_name};

/// A certificate and its private key, PEM-encoded.
#[derive(Debug)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PEM). A secret.
    pub key_pem: String,
}

/// Errors issuing certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The site name cannot be a DNS label.
    #[error("site name {0:?} must be lower-case letters, digits and '-' (at most 63)")]
    SiteName(String),
    /// A name for the S3 endpoint's certificate is neither a DNS name nor an IP address.
    #[error("{0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
}

/// The cluster CA.
#[derive(Debug)]
pub struct Ca {
    issued: Issued,
    key: KeyPair,
    params: CertificateParams,
}

impl Ca {
    /// A new CA for the cluster `name`, valid for 20 years.
    pub fn new(name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let params = Self::params(name);
        let cert = params.self_signed(&key)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Self {
            issued,
            key,
            params,
        })
    }

    /// The CA of the cluster `name` from its certificate and key (a recovery issuing a new
    /// gateway identity). Certificates it issues name the same issuer and key identifier, so
    /// they verify against the original `ca.pem` the nodes trust.
    pub fn from_pem(name: &str, cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            issued: Issued {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
            key,
            params: Self::params(name),
        })
    }

    fn params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("exclave cluster CA {name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        params
    }

    /// The CA's certificate and key.
    pub fn issued(&self) -> &Issued {
        &self.issued
    }

    /// Signs an end-entity certificate for `key`, valid 2025 to 2045.
    fn sign(&self, mut params: CertificateParams, key: &KeyPair) -> Result<Issued, PkiError> {
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(key, &issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues the S3 endpoint's TLS server certificate for `names` (DNS names or IP
    /// addresses). It is for TLS servers only and names no role, so no node or gateway takes
    /// it for a peer of the cluster.
    pub fn issue_s3_server(&self, names: &[String]) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "exclave S3 endpoint");
        params.distinguished_name = dn;
        let mut sans = Vec::new();
        for n in names {
            sans.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.clone()
                        .try_into()
                        .map_err(|_| PkiError::ServerName(n.clone()))?,
                ),
            });
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, &key)
    }

    /// Issues a certificate for a node or gateway at `site`.
    pub fn issue(&self, role: Role, site: &str, id: u32) -> Result<Issued, PkiError> {
        if !valid_site_name(site) {
            return Err(PkiError::SiteName(site.to_string()));
        }
        let key = KeyPair::generate()?;
        let role_name = match role {
            Role::Gateway => GATEWAY_NAME,
            Role::Node => NODE_NAME,
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{role_name} {id} at {site}"));
        dn.push(DnType::OrganizationalUnitName, site.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![
            SanType::DnsName(role_name.try_into()?),
            SanType::DnsName(site_name(site).try_into()?),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params, &key)
    }
}
