//! `sha256:<64 lowercase hex>` digests: the only algorithm the store keeps.
//!
//! A parsed [`Digest`] is safe to join onto a path: it is exactly 64
//! characters of `[0-9a-f]`, so no `/`, `..` or NUL can reach the file system.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::StoreError;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; any other algorithm, a wrong length or a
    /// non-lowercase-hex character is an error naming the input.
    pub fn parse(s: &str) -> Result<Digest, StoreError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(StoreError::InvalidDigest {
                digest: s.to_string(),
                reason: "expected \"sha256:<64 hex digits>\"".into(),
            });
        };
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !alg_ok {
            return Err(StoreError::InvalidDigest {
                digest: s.to_string(),
                reason: "bad algorithm name; expected \"sha256:<64 hex digits>\"".into(),
            });
        }
        if alg != "sha256" {
            return Err(StoreError::UnsupportedDigestAlgorithm {
                digest: s.to_string(),
                algorithm: alg.to_string(),
            });
        }
        Digest::from_hex(hex).map_err(|_| StoreError::InvalidDigest {
            digest: s.to_string(),
            reason: "the sha256 value must be exactly 64 lowercase hex digits".into(),
        })
    }

    /// Builds a digest from the bare 64-hex value (as used in `blobs/sha256/<hex>`).
    pub fn from_hex(hex: &str) -> Result<Digest, StoreError> {
        if is_sha256_hex(hex) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(StoreError::InvalidDigest {
                digest: hex.to_string(),
                reason: "the sha256 value must be exactly 64 lowercase hex digits".into(),
            })
        }
    }

    /// The sha256 of `data`.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// As an `oci_spec` digest (for descriptors).
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        match oci_spec::image::Sha256Digest::from_str(&self.hex) {
            Ok(d) => d.into(),
            // `self.hex` is validated as 64 lowercase hex digits at construction,
            // exactly what `Sha256Digest` accepts.
            Err(e) => unreachable!("validated sha256 digest rejected by oci-spec: {e}"),
        }
    }
}

/// True for exactly 64 characters of `[0-9a-f]`.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = StoreError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::parse(d.as_ref())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}
