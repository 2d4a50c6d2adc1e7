//! S3 additional checksums: which the client asked for (a header value, an algorithm, or an
//! aws-chunked trailer), computing them over the body, and checking them before commit.

use base64_simd::STANDARD as B64;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum as Sums;

use super::error::S3Fault;
use crate::core::format::{Checksum, ChecksumAlgorithm};

/// The [`Wanted`] checksums of a PutObject or UploadPart input (same field names in both).
macro_rules! wanted_of {
    ($input:expr, $headers:expr) => {
        $crate::gateway::checksum::Wanted::new(
            $input.checksum_algorithm.as_ref().map(|a| a.as_str()),
            s3s::dto::Checksum {
                checksum_crc32: $input.checksum_crc32.clone(),
                checksum_crc32c: $input.checksum_crc32c.clone(),
                checksum_sha1: $input.checksum_sha1.clone(),
                checksum_sha256: $input.checksum_sha256.clone(),
                checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
                ..Default::default()
            },
            $headers,
        )
    };
}
use crate::core::ids::hex;
pub(crate) use wanted_of;

/// The checksums of a request: algorithms to compute and values to match.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// Algorithm names (S3 spelling, upper case) to compute.
    pub(crate) algorithms: Vec<&'static str>,
    /// Values the client sent in headers.
    pub(crate) given: Sums,
    /// A trailer will carry the value of this header.
    pub(crate) trailer: Option<String>,
}

impl Wanted {
    /// The request carries or announces a checksum of its body (a header, a trailer, or an
    /// algorithm to compute and check against one).
    pub(crate) fn asks_any(&self) -> bool {
        let g = &self.given;
        self.trailer.is_some()
            || g.checksum_crc32.is_some()
            || g.checksum_crc32c.is_some()
            || g.checksum_sha1.is_some()
            || g.checksum_sha256.is_some()
            || g.checksum_crc64nvme.is_some()
    }
}

const NAMES: [&str; 5] = ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"];

fn canonical(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| n.eq_ignore_ascii_case(name))
}

fn from_header_name(h: &str) -> Option<&'static str> {
    let h = h.trim().to_ascii_lowercase();
    canonical(h.strip_prefix("x-amz-checksum-")?)
}

impl Wanted {
    /// From a request's algorithm, header values and `x-amz-trailer`.
    pub(crate) fn new(
        algorithm: Option<&str>,
        given: Sums,
        headers: &http::HeaderMap,
    ) -> Result<Self, S3Fault> {
        let mut w = Self {
            given,
            ..Self::default()
        };
        if let Some(a) = algorithm {
            let a = canonical(a).ok_or_else(|| {
                S3Fault::InvalidRequest(format!("unsupported checksum algorithm {a}"))
            })?;
            w.algorithms.push(a);
        }
        let g = &w.given;
        for (name, v) in [
            ("CRC32", &g.checksum_crc32),
            ("CRC32C", &g.checksum_crc32c),
            ("SHA1", &g.checksum_sha1),
            ("SHA256", &g.checksum_sha256),
            ("CRC64NVME", &g.checksum_crc64nvme),
        ] {
            if v.is_some() && !w.algorithms.contains(&name) {
                w.algorithms.push(name);
            }
        }
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            let a = from_header_name(t)
                .ok_or_else(|| S3Fault::InvalidRequest(format!("unsupported trailer {t}")))?;
            if !w.algorithms.contains(&a) {
                w.algorithms.push(a);
            }
            w.trailer = Some(t.trim().to_ascii_lowercase());
        }
        if w.algorithms.len() > 1 {
            return Err(S3Fault::InvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.".into()));
        }
        Ok(w)
    }

    /// A hasher computing what is wanted.
    pub(crate) fn hasher(&self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        for a in &self.algorithms {
            match *a {
                "CRC32" => h.crc32 = Some(Crc32::default()),
                "CRC32C" => h.crc32c = Some(Crc32c::default()),
                "SHA1" => h.sha1 = Some(Sha1::default()),
                "SHA256" => h.sha256 = Some(Sha256::default()),
                _ => h.crc64nvme = Some(Crc64Nvme::default()),
            }
        }
        h
    }

    /// Checks computed sums against the header values and the trailer (read after the body).
    pub(crate) fn verify(
        &self,
        computed: &Sums,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> Result<(), S3Fault> {
        let mut expected = self.given.clone();
        if let (Some(name), Some(t)) = (&self.trailer, trailers) {
            let value = t
                .take()
                .and_then(|map| {
                    map.get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    S3Fault::InvalidRequest(format!(
                        "the trailer {name} was announced but not sent"
                    ))
                })?;
            match from_header_name(name) {
                Some("CRC32") => expected.checksum_crc32 = Some(value),
                Some("CRC32C") => expected.checksum_crc32c = Some(value),
                Some("SHA1") => expected.checksum_sha1 = Some(value),
                Some("SHA256") => expected.checksum_sha256 = Some(value),
                _ => expected.checksum_crc64nvme = Some(value),
            }
        }
        for (name, want, got) in [
            ("CRC32", &expected.checksum_crc32, &computed.checksum_crc32),
            (
                "CRC32C",
                &expected.checksum_crc32c,
                &computed.checksum_crc32c,
            ),
            ("SHA1", &expected.checksum_sha1, &computed.checksum_sha1),
            (
                "SHA256",
                &expected.checksum_sha256,
                &computed.checksum_sha256,
            ),
            (
                "CRC64NVME",
                &expected.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
            ),
        ] {
            if let Some(w) = want
                && Some(w) != got.as_ref()
            {
                return Err(S3Fault::BadDigest(format!(
                    "The {name} you specified did not match the calculated checksum."
                )));
            }
        }
        Ok(())
    }
}

/// Checks a Content-MD5 header (base64) against the body's hex MD5.
pub(crate) fn check_content_md5(header: Option<&str>, etag_hex: &str) -> Result<(), S3Fault> {
    let Some(h) = header else { return Ok(()) };
    let raw = B64
        .decode_to_vec(h.trim())
        .map_err(|_| S3Fault::InvalidDigest)?;
    if raw.len() != 16 {
        return Err(S3Fault::InvalidDigest);
    }
    if hex(&raw) != etag_hex {
        return Err(S3Fault::BadDigest(
            "The Content-MD5 you specified did not match what we received.".into(),
        ));
    }
    Ok(())
}

/// Computed sums as the manifest stores them (raw digests).
pub(crate) fn to_stored(sums: &Sums) -> Vec<Checksum> {
    let mut out = Vec::new();
    for (alg, v) in [
        (ChecksumAlgorithm::Crc32, &sums.checksum_crc32),
        (ChecksumAlgorithm::Crc32c, &sums.checksum_crc32c),
        (ChecksumAlgorithm::Sha1, &sums.checksum_sha1),
        (ChecksumAlgorithm::Sha256, &sums.checksum_sha256),
    ] {
        if let Some(v) = v
            && let Ok(raw) = B64.decode_to_vec(v)
        {
            out.push(Checksum {
                algorithm: alg,
                value: raw,
            });
        }
    }
    out
}

/// Stored sums as S3 response fields (base64).
pub(crate) fn from_stored(stored: &[Checksum]) -> Sums {
    let mut s = Sums::default();
    for c in stored {
        let v = Some(B64.encode_to_string(&c.value));
        match c.algorithm {
            ChecksumAlgorithm::Crc32 => s.checksum_crc32 = v,
            ChecksumAlgorithm::Crc32c => s.checksum_crc32c = v,
            ChecksumAlgorithm::Sha1 => s.checksum_sha1 = v,
            ChecksumAlgorithm::Sha256 => s.checksum_sha256 = v,
        }
    }
    s
}
