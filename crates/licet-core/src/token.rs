//! Signed license tokens: *license L of product P is valid on host H; lease until T; term ends E*.
//!
//! Wire form: `version (1 byte) ‖ claims (codec) ‖ ed25519 signature (64 bytes)`, the signature
//! covering everything before it; text form: unpadded base64url of those bytes (about 210
//! characters with four host components). Verification checks the signature with
//! `verify_strict` against a trusted key picked by the key id in the claims, and returns a
//! [`VerifiedToken`] — the only way to obtain one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::error::{Code, Error};
use crate::host::{HostDigest, hex};
use crate::ledger::Seat;
use crate::model::{LicenseKind, Time};

/// The current token format.
const VERSION: u8 = 1;
/// Largest token accepted, in bytes after base64 decoding.
const MAX_TOKEN_BYTES: usize = 2048;
const SIGNATURE_LEN: usize = 64;

/// A key id: the first 8 bytes of SHA-256 of the public key, shown as 16 hex characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id of a public key.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// What a token states. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The signing key.
    pub kid: KeyId,
    /// The license.
    pub license_id: String,
    /// The product.
    pub product: String,
    /// The license's kind.
    pub kind: LicenseKind,
    /// The host it is valid on.
    pub host: HostDigest,
    /// Server time at issue.
    pub issued_at: i64,
    /// The end of the offline lease: `min(expires_at, issued_at + offline_lease_hours)`.
    pub lease_until: i64,
    /// The end of the license's term; `None` for perpetual.
    pub expires_at: Option<i64>,
    /// The product's clock tolerance, so the agent can judge offline.
    pub clock_tolerance_minutes: u32,
}

impl Claims {
    /// The claims for a seat issued at `now` by key `kid`.
    pub fn for_seat(grant: &Seat, kid: KeyId, now: Time) -> Claims {
        let issued_at = now.timestamp();
        let lease = issued_at + i64::from(grant.product.offline_lease_hours) * 3600;
        let expires_at = grant.license.expires_at.map(|t| t.timestamp());
        Claims {
            kid,
            license_id: grant.license.id.clone(),
            product: grant.product.id.clone(),
            kind: grant.license.kind,
            host: grant.binding.host.fingerprint.digest(),
            issued_at,
            lease_until: expires_at.map_or(lease, |e| e.min(lease)),
            expires_at,
            clock_tolerance_minutes: grant.product.clock_tolerance_minutes,
        }
    }
}

/// The server's signing key with its id.
pub struct TokenSigner {
    key: SigningKey,
    kid: KeyId,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer from a 32-byte secret key (from a file or the OS's random source — not core's business).
    pub fn from_secret(secret: &[u8; 32]) -> TokenSigner {
        let key = SigningKey::from_bytes(secret);
        let kid = KeyId::of(&key.verifying_key());
        TokenSigner { key, kid }
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// The public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as 64 lowercase hex characters.
    pub fn public_key_hex(&self) -> String {
        hex(self.key.verifying_key().as_bytes())
    }

    /// Signs claims and returns the token's text form. The claims' `kid` is set to this key's.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut claims = claims.clone();
        claims.kid = self.kid;
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&codec::encode(&claims));
        let signature = self.key.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs the claims for a grant issued now.
    pub fn issue(&self, grant: &Seat, now: Time) -> String {
        self.sign(&Claims::for_seat(grant, self.kid, now))
    }
}

/// The public keys an agent trusts (embedded by the vendor, never fetched unauthenticated).
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl TrustedKeys {
    /// No keys: every token is refused.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a public key given as 64 hex characters (1001 if it is not one).
    pub fn add_hex(&mut self, public_key: &str) -> Result<KeyId, Error> {
        let bad = || Error::input("trusted_key", "a public key is 64 hexadecimal characters");
        let text = public_key.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(self.add(key))
    }

    /// Adds a public key.
    pub fn add(&mut self, key: VerifyingKey) -> KeyId {
        let kid = KeyId::of(&key);
        if !self.keys.iter().any(|(k, _)| *k == kid) {
            self.keys.push((kid, key));
        }
        kid
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a token's form and signature. Anything wrong is 3001.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, Error> {
        let invalid = || Error::Token(Code::TokenInvalid);
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES * 4 / 3 + 4 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() <= 1 + SIGNATURE_LEN || bytes[0] != VERSION {
            return Err(invalid());
        }
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let signature = Signature::from_slice(signature).map_err(|_| invalid())?;
        let claims: Claims = codec::decode_limited::<Claims, MAX_TOKEN_BYTES>(&signed[1..]).map_err(|_| invalid())?;
        let (_, key) = self.keys.iter().find(|(kid, _)| *kid == claims.kid).ok_or_else(invalid)?;
        key.verify_strict(signed, &signature).map_err(|_| invalid())?;
        Ok(VerifiedToken { claims, text: token.to_owned() })
    }
}

/// A token whose signature was checked against a trusted key. Only [`TrustedKeys::verify`]
/// makes one, so holding one proves the claims are the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    claims: Claims,
    text: String,
}

/// What a usable token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    /// The license.
    pub license_id: String,
    /// The product.
    pub product: String,
    /// The license's kind.
    pub kind: LicenseKind,
    /// When the term ends; `None` for perpetual.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the offline lease ends.
    pub lease_until: DateTime<Utc>,
    /// When the server issued the token.
    pub issued_at: DateTime<Utc>,
}

/// The offline verdict on a token, with the clock high-water mark to persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Valid, or the reason it is not.
    pub result: Result<Entitlement, Error>,
    /// The new high-water mark of trusted time (`None` only if there was none and the token
    /// taught nothing).
    pub high_water: Option<DateTime<Utc>>,
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl VerifiedToken {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The token's text form, as verified.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Judges the token offline for `product` on the host whose digest is `host`, at `now`,
    /// given the persisted high-water mark of trusted time (SPEC §3). In order: wrong product →
    /// 3001; another host → 3002; `now` earlier than trusted time by more than the tolerance →
    /// 3004; term over → 1052; lease over → 3003.
    ///
    /// The high-water mark only moves forward, and only past checks that reached the clock step:
    /// a token for another product or host teaches nothing about time.
    pub fn judge(
        &self,
        product: &str,
        host: &HostDigest,
        now: DateTime<Utc>,
        high_water: Option<DateTime<Utc>>,
    ) -> Judgement {
        let c = &self.claims;
        let refuse = |code, high_water| Judgement { result: Err(Error::Token(code)), high_water };
        if c.product != product {
            return refuse(Code::TokenInvalid, high_water);
        }
        if !c.host.matches_digest(host) {
            return refuse(Code::HostMismatch, high_water);
        }
        let trusted = high_water.map_or(at(c.issued_at), |m| m.max(at(c.issued_at)));
        if now < trusted - chrono::Duration::minutes(i64::from(c.clock_tolerance_minutes)) {
            return refuse(Code::ClockTampered, Some(trusted));
        }
        let high_water = Some(trusted.max(now));
        if c.expires_at.is_some_and(|end| now >= at(end)) {
            return refuse(Code::LicenseExpired, high_water);
        }
        if now >= at(c.lease_until) {
            return refuse(Code::LeaseExpired, high_water);
        }
        Judgement {
            result: Ok(Entitlement {
                license_id: c.license_id.clone(),
                product: c.product.clone(),
                kind: c.kind,
                expires_at: c.expires_at.map(at),
                lease_until: at(c.lease_until),
                issued_at: at(c.issued_at),
            }),
            high_water,
        }
    }
}

/// The whole offline verdict of SPEC §3 in one pure function: signature, then
/// [`VerifiedToken::judge`]. A token that fails verification leaves the high-water mark as it was.
pub fn verdict(
    keys: &TrustedKeys,
    token: &str,
    product: &str,
    host: &HostDigest,
    now: DateTime<Utc>,
    high_water: Option<DateTime<Utc>>,
) -> Judgement {
    match keys.verify(token) {
        Ok(verified) => verified.judge(product, host, now, high_water),
        Err(e) => Judgement { result: Err(e), high_water },
    }
}
