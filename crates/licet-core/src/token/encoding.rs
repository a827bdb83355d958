//! The byte layout of tokens: `version ‖ claims ‖ ed25519 signature (64 bytes)`, the signature
//! covering everything before it, through [`codec`]'s compact encoding.
//!
//! * **Version 1** (release 0.1.0): the claims are one positional struct and nothing else. 0.1.0
//!   agents read only this, so the server keeps issuing it to requests without the newer
//!   agents' format marker.
//! * **Version 2**: the same core claims, then an *extension area*: a list of `(tag, bytes)` in
//!   strictly increasing tag order, as TLS and QUIC carry transport parameters. A reader skips an
//!   even tag it does not know; an odd tag is *critical* — a reader that does not know it refuses
//!   the token. So a later release adds a field without a new version, and can still add one that
//!   older agents must not ignore.

use serde::{Deserialize, Serialize};

use super::{Claims, KeyId};
use crate::codec;
use crate::host::HostDigest;
use crate::model::LicenseKind;

/// Release 0.1.0's token format.
pub(crate) const V1: u8 = 1;
/// This release's token format.
pub(crate) const V2: u8 = 2;
/// Largest token accepted, in bytes after base64 decoding.
pub(crate) const MAX_TOKEN_BYTES: usize = 2048;
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Extension tags of version 2 (even: skippable by a reader that does not know them).
mod tag {
    /// The end of the term after any grace period, Unix seconds (absent: `expires_at`).
    pub(super) const GRACE_UNTIL: u16 = 2;
    /// Seconds after issue at which the agent asks the server again (absent: half the lease).
    pub(super) const REFRESH_AFTER: u16 = 4;
    /// The features the license grants (absent: none).
    pub(super) const FEATURES: u16 = 6;
    /// The nonce of the request the token answers (absent: none was sent).
    pub(super) const NONCE: u16 = 8;
    /// The floating session the token belongs to (absent: a host's seat). Critical: a reader
    /// that took a session token for a host's would refresh it by activation, which a floating
    /// license refuses.
    pub(super) const SESSION: u16 = 9;
}

/// Version 1's claims, exactly as release 0.1.0 lays them out — and the first part of version 2's.
/// `LicenseKind`'s variant order is part of this layout and must never change.
#[derive(Serialize, Deserialize)]
struct CoreClaims {
    kid: KeyId,
    license_id: String,
    product: String,
    kind: LicenseKind,
    host: HostDigest,
    issued_at: i64,
    lease_until: i64,
    expires_at: Option<i64>,
    clock_tolerance_minutes: u32,
}

/// One entry of the extension area.
#[derive(Serialize, Deserialize)]
struct Extension {
    tag: u16,
    value: Vec<u8>,
}

/// Version 2's claims: version 1's, then the extension area (a nested struct adds no bytes).
#[derive(Serialize, Deserialize)]
struct ClaimsV2 {
    core: CoreClaims,
    extensions: Vec<Extension>,
}

impl CoreClaims {
    /// The core of `c`, with the term ending at `expires_at`.
    fn of(c: &Claims, expires_at: Option<i64>) -> CoreClaims {
        CoreClaims {
            kid: c.kid,
            license_id: c.license_id.clone(),
            product: c.product.clone(),
            kind: c.kind,
            host: c.host.clone(),
            issued_at: c.issued_at,
            lease_until: c.lease_until,
            expires_at,
            clock_tolerance_minutes: c.clock_tolerance_minutes,
        }
    }

    /// Claims with these core fields and no extension.
    fn into_claims(self) -> Claims {
        Claims {
            kid: self.kid,
            license_id: self.license_id,
            product: self.product,
            kind: self.kind,
            host: self.host,
            issued_at: self.issued_at,
            lease_until: self.lease_until,
            expires_at: self.expires_at,
            clock_tolerance_minutes: self.clock_tolerance_minutes,
            grace_until: None,
            refresh_after: None,
            features: Vec::new(),
            nonce: None,
            session: None,
        }
    }
}

/// The signed part of a token (everything but the signature) in `version`.
pub(crate) fn encode(claims: &Claims, version: u8) -> Vec<u8> {
    let c = claims;
    let mut bytes = vec![version];
    if version == V1 {
        // 0.1.0 agents know no grace: the term ends when the grace does.
        bytes.extend_from_slice(&codec::encode(&CoreClaims::of(c, c.grace_until.or(c.expires_at))));
        return bytes;
    }
    let mut extensions = Vec::new();
    if let Some(end) = c.grace_until.filter(|end| Some(*end) != c.expires_at) {
        extensions.push(Extension { tag: tag::GRACE_UNTIL, value: codec::encode(&end) });
    }
    if let Some(after) = c.refresh_after {
        extensions.push(Extension { tag: tag::REFRESH_AFTER, value: codec::encode(&after) });
    }
    if !c.features.is_empty() {
        extensions.push(Extension { tag: tag::FEATURES, value: codec::encode(&c.features) });
    }
    if let Some(nonce) = c.nonce {
        extensions.push(Extension { tag: tag::NONCE, value: nonce.to_vec() });
    }
    if let Some(session) = &c.session {
        extensions.push(Extension { tag: tag::SESSION, value: session.as_bytes().to_vec() });
    }
    bytes.extend_from_slice(&codec::encode(&ClaimsV2 { core: CoreClaims::of(c, c.expires_at), extensions }));
    bytes
}

/// Reads the signed part of a token: its claims and version. `Err` says why it is not a token
/// this release can read (the caller answers 3001 whatever the reason).
pub(crate) fn decode(signed: &[u8]) -> Result<(Claims, u8), String> {
    let (&version, body) = signed.split_first().ok_or("empty")?;
    match version {
        V1 => {
            let core: CoreClaims = codec::decode_limited::<_, MAX_TOKEN_BYTES>(body).map_err(|e| e.to_string())?;
            Ok((core.into_claims(), V1))
        }
        V2 => {
            let c: ClaimsV2 = codec::decode_limited::<_, MAX_TOKEN_BYTES>(body).map_err(|e| e.to_string())?;
            let mut claims = c.core.into_claims();
            let mut previous = None;
            for ext in c.extensions {
                if previous.is_some_and(|p| ext.tag <= p) {
                    return Err(format!("extension {} out of order", ext.tag));
                }
                previous = Some(ext.tag);
                let bad = |e: codec::CodecError| format!("extension {}: {e}", ext.tag);
                match ext.tag {
                    tag::GRACE_UNTIL => claims.grace_until = Some(codec::decode(&ext.value).map_err(bad)?),
                    tag::REFRESH_AFTER => claims.refresh_after = Some(codec::decode(&ext.value).map_err(bad)?),
                    tag::FEATURES => claims.features = codec::decode(&ext.value).map_err(bad)?,
                    tag::NONCE => {
                        let nonce = <[u8; 16]>::try_from(ext.value.as_slice());
                        claims.nonce = Some(nonce.map_err(|_| format!("extension {}: not 16 bytes", ext.tag))?);
                    }
                    tag::SESSION => {
                        let id = String::from_utf8(ext.value)
                            .ok()
                            .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()));
                        claims.session =
                            Some(id.ok_or_else(|| format!("extension {}: not a session id", tag::SESSION))?);
                    }
                    unknown if unknown % 2 == 1 => return Err(format!("unknown critical extension {unknown}")),
                    _ => {}
                }
            }
            Ok((claims, V2))
        }
        other => Err(format!("unknown token version {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            kid: KeyId([1; 8]),
            license_id: "lic_1".into(),
            product: "p".into(),
            kind: LicenseKind::Subscription,
            host: HostDigest::from_hashes(vec![[2; 8]]),
            issued_at: 100,
            lease_until: 200,
            expires_at: Some(300),
            clock_tolerance_minutes: 60,
            grace_until: Some(400),
            refresh_after: Some(50),
            features: vec!["a".into(), "b".into()],
            nonce: Some([9; 16]),
            session: Some("ses_1".into()),
        }
    }

    #[test]
    fn both_versions_round_trip_and_version_1_folds_grace_into_the_term() {
        let c = claims();
        assert_eq!(decode(&encode(&c, V2)), Ok((c.clone(), V2)));
        let (v1, version) = decode(&encode(&c, V1)).unwrap();
        assert_eq!(version, V1);
        assert_eq!((v1.expires_at, v1.grace_until, v1.features.len(), v1.nonce), (Some(400), None, 0, None));
        assert_eq!(v1.session, None);
    }

    fn with_extensions(extensions: Vec<Extension>) -> Vec<u8> {
        let c = claims();
        let mut bytes = vec![V2];
        bytes.extend_from_slice(&codec::encode(&ClaimsV2 { core: CoreClaims::of(&c, c.expires_at), extensions }));
        bytes
    }

    #[test]
    fn unknown_extensions_are_skipped_unless_critical_and_order_is_canonical() {
        let skippable = Extension { tag: 100, value: vec![1, 2, 3] };
        let (c, _) = decode(&with_extensions(vec![skippable])).unwrap();
        assert_eq!(c.features, Vec::<String>::new());
        assert!(decode(&with_extensions(vec![Extension { tag: 101, value: vec![] }])).is_err());
        let features = || Extension { tag: tag::FEATURES, value: codec::encode(&vec!["x".to_owned()]) };
        let refresh = || Extension { tag: tag::REFRESH_AFTER, value: codec::encode(&10u32) };
        assert!(decode(&with_extensions(vec![refresh(), features()])).is_ok());
        assert!(decode(&with_extensions(vec![features(), refresh()])).is_err(), "out of order");
        assert!(decode(&with_extensions(vec![features(), features()])).is_err(), "twice");
        let broken = Extension { tag: tag::REFRESH_AFTER, value: vec![0xff] };
        assert!(decode(&with_extensions(vec![broken])).is_err());
        assert!(decode(&with_extensions(vec![Extension { tag: tag::NONCE, value: vec![1; 15] }])).is_err());
        assert!(decode(&[3, 0, 0]).is_err());
        assert!(decode(&[]).is_err());
    }
}
