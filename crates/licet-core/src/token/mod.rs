//! Signed license tokens: *license L of product P is valid on host H; lease until T; term ends E*.
//!
//! Text form: unpadded base64url of `version ‖ claims ‖ ed25519 signature`, optionally followed
//! by `.ENDORSEMENT` links when the signing key is newer than the keys an agent trusts (SPEC §9).
//! The byte layout and how it evolves are in the private module `encoding` (and docs/formats.md): version 1 is release 0.1.0's, issued
//! to 0.1.0 agents; version 2 adds a tagged extension area (grace, refresh interval, features).
//!
//! Verification checks the signature with `verify_strict` against a trusted key — directly, or
//! through endorsements leading to one — and returns a [`VerifiedToken`], the only way to obtain
//! one; the offline verdict ([`VerifiedToken::judge`]) takes nothing else. The same keys sign
//! refusals ([`Refusal`]) and endorsements ([`Endorsement`]), under their own context strings.

mod encoding;
mod proof;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use proof::{Endorsement, Refusal};

use crate::codec;
use crate::error::{Code, Error};
use crate::host::HostDigest;
use crate::ledger::{Seat, SessionSeat};
use crate::model::{License, LicenseKind, Product, Time};
use encoding::{MAX_TOKEN_BYTES, SIGNATURE_LEN};

/// Most endorsement links followed from a token to a trusted key.
const MAX_CHAIN: usize = 4;

/// A key id: the first 8 bytes of SHA-256 of the public key, shown as 16 hex characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId(pub(crate) [u8; 8]);

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
        f.write_str(&hex::encode(self.0))
    }
}

/// Which token layout to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFormat {
    /// Release 0.1.0's: no extensions, grace folded into the term. For agents that send no
    /// format marker.
    V1,
    /// This release's.
    V2,
}

impl TokenFormat {
    /// The format for a request carrying `marker` (the newer agents' `token_format`), or none.
    pub fn for_marker(marker: Option<u8>) -> TokenFormat {
        match marker {
            Some(n) if n >= encoding::V2 => TokenFormat::V2,
            _ => TokenFormat::V1,
        }
    }

    /// The number newer agents send as their marker.
    pub const LATEST_MARKER: u8 = encoding::V2;

    fn version(self) -> u8 {
        match self {
            TokenFormat::V1 => encoding::V1,
            TokenFormat::V2 => encoding::V2,
        }
    }

    fn of_version(version: u8) -> Option<TokenFormat> {
        match version {
            encoding::V1 => Some(TokenFormat::V1),
            encoding::V2 => Some(TokenFormat::V2),
            _ => None,
        }
    }
}

/// What a token states. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The end of the offline lease: `min(term end, issued_at + lease)`.
    pub lease_until: i64,
    /// The end of the license's term as sold; `None` for perpetual.
    pub expires_at: Option<i64>,
    /// The product's clock tolerance, so the agent can judge offline.
    pub clock_tolerance_minutes: u32,
    /// The term's end after any grace period (`None`: `expires_at`).
    pub grace_until: Option<i64>,
    /// Seconds after issue at which the agent asks the server again (`None`: half the lease).
    pub refresh_after: Option<u32>,
    /// The features the license grants.
    pub features: Vec<String>,
    /// The nonce of the request this token answers, so the agent that sent it knows it is not
    /// a replay (only a fresh answer may move its clock mark back to the server's time).
    pub nonce: Option<[u8; 16]>,
    /// The floating session whose seat the token holds (SPEC §11): the agent refreshes it by
    /// heartbeat. `None` for a host's seat.
    pub session: Option<String>,
}

impl Claims {
    /// What any token of `license` of `product` for `host`, issued at `now` by key `kid`,
    /// states — with the product's offline lease (never past the term) and refresh interval.
    fn of_license(license: &License, product: &Product, host: HostDigest, kid: KeyId, now: Time) -> Claims {
        let issued_at = now.timestamp();
        let lease = issued_at + i64::from(product.offline_lease_hours) * 3600;
        let expires_at = license.expires_at.map(|t| t.timestamp());
        let term_end = license.term_end(product).map(|t| t.timestamp());
        Claims {
            kid,
            license_id: license.id.clone(),
            product: product.id.clone(),
            kind: license.kind,
            host,
            issued_at,
            lease_until: term_end.map_or(lease, |e| e.min(lease)),
            expires_at,
            clock_tolerance_minutes: product.clock_tolerance_minutes,
            grace_until: term_end.filter(|end| Some(*end) != expires_at),
            refresh_after: Some(product.refresh_hours.saturating_mul(3600)),
            features: license.features_granted(product),
            nonce: None,
            session: None,
        }
    }

    /// The claims for a seat issued at `now` by key `kid`.
    pub fn for_seat(seat: &Seat, kid: KeyId, now: Time) -> Claims {
        Claims::of_license(&seat.license, &seat.product, seat.binding.host.fingerprint.digest(), kid, now)
    }

    /// The claims for a floating session issued at `now` by key `kid`: valid on the host that
    /// checked it out until the session's lease ends (its term capped it already); refreshed by
    /// heartbeat at half of what is left.
    pub fn for_session(seat: &SessionSeat, kid: KeyId, now: Time) -> Claims {
        let host = seat.session.host.fingerprint.digest();
        Claims {
            lease_until: seat.session.lease_until.timestamp(),
            refresh_after: None,
            session: Some(seat.session.id.clone()),
            ..Claims::of_license(&seat.license, &seat.product, host, kid, now)
        }
    }

    /// When the term ends, grace included.
    pub fn term_end(&self) -> Option<i64> {
        self.grace_until.or(self.expires_at)
    }
}

/// The server's signing key with its id, and the endorsements that lead from the keys agents
/// trust to it (empty for a key they trust directly).
pub struct TokenSigner {
    key: SigningKey,
    kid: KeyId,
    chain: Vec<String>,
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
        TokenSigner { key, kid, chain: Vec::new() }
    }

    /// The same key, attaching these endorsements (nearest first) to what it signs.
    pub fn with_chain(mut self, chain: Vec<String>) -> TokenSigner {
        self.chain = chain;
        self
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
        hex::encode(self.key.verifying_key().as_bytes())
    }

    fn with_links(&self, text: String) -> String {
        if self.chain.is_empty() { text } else { [text, self.chain.join(".")].join(".") }
    }

    /// Signs claims in `format` and returns the token's text form. The claims' `kid` is set to
    /// this key's. A version-1 token carries no endorsement links: release 0.1.0 cannot read
    /// them (its agents must be given tokens of a key they trust directly).
    pub fn sign(&self, claims: &Claims, format: TokenFormat) -> String {
        let mut claims = claims.clone();
        claims.kid = self.kid;
        let mut bytes = encoding::encode(&claims, format.version());
        let signature = self.key.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        let text = URL_SAFE_NO_PAD.encode(bytes);
        match format {
            TokenFormat::V1 => text,
            TokenFormat::V2 => self.with_links(text),
        }
    }

    /// Signs the claims for a seat issued now, in this release's format.
    pub fn issue(&self, seat: &Seat, now: Time) -> String {
        self.issue_as(seat, now, TokenFormat::V2, None)
    }

    /// Signs the claims for a floating session issued now (always this release's format: only
    /// agents that know sessions check them out), answering the request that carried `nonce`.
    pub fn issue_session(&self, seat: &SessionSeat, now: Time, nonce: Option<[u8; 16]>) -> String {
        let mut claims = Claims::for_session(seat, self.kid, now);
        claims.nonce = nonce;
        self.sign(&claims, TokenFormat::V2)
    }

    /// Signs the token of an air-gapped activation (SPEC §8) of a seat, issued now: its lease is
    /// the product's `offline_activation_days` (never past the term), and it is refreshed only
    /// at half of that — the host is not expected to reach a server.
    pub fn issue_offline(&self, seat: &Seat, now: Time) -> String {
        let mut claims = Claims::for_seat(seat, self.kid, now);
        let lease = claims.issued_at.saturating_add(i64::from(seat.product.offline_activation_days) * 86_400);
        claims.lease_until = claims.term_end().map_or(lease, |end| end.min(lease));
        claims.refresh_after = None;
        self.sign(&claims, TokenFormat::V2)
    }

    /// Signs the claims for a seat issued now, in `format`, answering the request that carried
    /// `nonce` (version 2 only).
    pub fn issue_as(&self, seat: &Seat, now: Time, format: TokenFormat, nonce: Option<[u8; 16]>) -> String {
        let mut claims = Claims::for_seat(seat, self.kid, now);
        claims.nonce = nonce;
        self.sign(&claims, format)
    }

    /// Signs a definitive refusal of a license check: `code` for `product` on `host`, answering
    /// the request that carried `nonce` and the registration number `number` (as sent).
    pub fn sign_refusal(
        &self,
        code: Code,
        product: &str,
        host: &HostDigest,
        number: &str,
        now: Time,
        nonce: [u8; 16],
    ) -> String {
        let statement = codec::encode(&Refusal {
            kid: self.kid,
            code: code.number(),
            product: product.to_owned(),
            host: host.clone(),
            number: Refusal::number_digest(number),
            server_time: now.timestamp(),
            nonce,
        });
        let signature = self.key.sign(&proof::signed_message(proof::REFUSAL_CONTEXT, &statement));
        self.with_links(proof::to_text(&statement, &signature))
    }

    /// Endorses a newer key: what this key signs vouches for `key`'s tokens from `not_before` on.
    pub fn endorse(&self, key: &VerifyingKey, not_before: Time) -> String {
        let statement = codec::encode(&Endorsement {
            endorser: self.kid,
            kid: KeyId::of(key),
            public_key: key.to_bytes(),
            not_before: not_before.timestamp(),
        });
        let signature = self.key.sign(&proof::signed_message(proof::ENDORSEMENT_CONTEXT, &statement));
        proof::to_text(&statement, &signature)
    }
}

/// The public keys an agent trusts (embedded by the vendor, never fetched unauthenticated).
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

/// Splits `TEXT.LINK.LINK…` into the signed text and its endorsement links. Every link must read
/// as an endorsement (whether it is needed or not), so a token has no room for other baggage.
fn split_links(text: &str) -> Option<(&str, Vec<&str>)> {
    let mut parts = text.trim().split('.');
    let body = parts.next()?;
    let links: Vec<&str> = parts.collect();
    let well_formed = |link: &&str| {
        proof::from_text(link).is_some_and(|(statement, _)| proof::read_endorsement(&statement).is_some())
    };
    (links.len() <= MAX_CHAIN && links.iter().all(well_formed)).then_some((body, links))
}

impl TrustedKeys {
    /// No keys: every token is refused.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a public key given as 64 hex characters (1001 if it is not one).
    pub fn add_hex(&mut self, public_key: &str) -> Result<KeyId, Error> {
        let bad = || Error::input("trusted_key", "a public key is 64 hexadecimal characters");
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(public_key.trim(), &mut bytes).map_err(|_| bad())?;
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

    /// The key `kid` for something signed at `at`: a trusted key, or one the `links` endorse
    /// (from `not_before` on) through a chain that ends at a trusted key.
    fn key_for(&self, kid: KeyId, links: &[&str], at: i64, depth: usize) -> Option<VerifyingKey> {
        if let Some((_, key)) = self.keys.iter().find(|(id, _)| *id == kid) {
            return Some(*key);
        }
        if depth >= MAX_CHAIN {
            return None;
        }
        for link in links {
            let Some((statement, signature)) = proof::from_text(link) else { continue };
            let Some((endorsement, key)) = proof::read_endorsement(&statement) else { continue };
            if endorsement.kid != kid || at < endorsement.not_before {
                continue;
            }
            let endorser = self.key_for(endorsement.endorser, links, at, depth + 1)?;
            let message = proof::signed_message(proof::ENDORSEMENT_CONTEXT, &statement);
            if endorser.verify_strict(&message, &signature).is_ok() {
                return Some(key);
            }
        }
        None
    }

    /// Checks a token's form and signature. Anything wrong is 3001.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, Error> {
        let invalid = || Error::Token(Code::TokenInvalid);
        let (body, links) = split_links(token).ok_or_else(invalid)?;
        if body.len() > MAX_TOKEN_BYTES * 4 / 3 + 4 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        if bytes.len() <= 1 + SIGNATURE_LEN {
            return Err(invalid());
        }
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let signature = Signature::from_slice(signature).map_err(|_| invalid())?;
        let (claims, version) = encoding::decode(signed).map_err(|_| invalid())?;
        let format = TokenFormat::of_version(version).ok_or_else(invalid)?;
        let key = self.key_for(claims.kid, &links, claims.issued_at, 0).ok_or_else(invalid)?;
        key.verify_strict(signed, &signature).map_err(|_| invalid())?;
        Ok(VerifiedToken { claims, format, text: token.trim().to_owned() })
    }

    /// Checks that `proof` is the server's signed refusal with `code` of `product` for `host`,
    /// answering the request that carried `nonce` and the registration number `number`.
    /// Anything else is 3001.
    pub fn verify_refusal(
        &self,
        proof: &str,
        code: Code,
        product: &str,
        host: &HostDigest,
        number: &str,
        nonce: &[u8; 16],
    ) -> Result<Refusal, Error> {
        let invalid = || Error::Token(Code::TokenInvalid);
        let (body, links) = split_links(proof).ok_or_else(invalid)?;
        let (statement, signature) = proof::from_text(body).ok_or_else(invalid)?;
        let refusal = proof::read_refusal(&statement).ok_or_else(invalid)?;
        let matches = refusal.code == code.number()
            && refusal.product == product
            && refusal.host == *host
            && refusal.number == Refusal::number_digest(number)
            && refusal.nonce == *nonce;
        if !matches {
            return Err(invalid());
        }
        let key = self.key_for(refusal.kid, &links, refusal.server_time, 0).ok_or_else(invalid)?;
        let message = proof::signed_message(proof::REFUSAL_CONTEXT, &statement);
        key.verify_strict(&message, &signature).map_err(|_| invalid())?;
        Ok(refusal)
    }
}

/// A token whose signature was checked against a trusted key. Only [`TrustedKeys::verify`]
/// makes one, so holding one proves the claims are the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    claims: Claims,
    format: TokenFormat,
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
    /// When the term ends as sold; `None` for perpetual.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the term ends after any grace period; `None` for perpetual.
    pub grace_until: Option<DateTime<Utc>>,
    /// Whether the term is over and the grace period running.
    pub in_grace: bool,
    /// When the offline lease ends.
    pub lease_until: DateTime<Utc>,
    /// When the server issued the token.
    pub issued_at: DateTime<Utc>,
    /// When the agent should ask the server again: the refresh interval, or half the lease,
    /// whichever comes first.
    pub refresh_due: DateTime<Utc>,
    /// The features the license grants.
    pub features: Vec<String>,
    /// The floating session it holds a seat of; `None` for a host's seat.
    pub session_id: Option<String>,
}

impl Entitlement {
    /// Whether the license grants `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
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
    crate::model::from_unix(secs).unwrap_or(DateTime::<Utc>::MIN_UTC)
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

    /// The token's layout: release 0.1.0's or this release's.
    pub fn format(&self) -> TokenFormat {
        self.format
    }

    /// Judges the token offline for `product` on the host whose digest is `host`, at `now`,
    /// given the persisted high-water mark of trusted time (SPEC §3). In order: wrong product →
    /// 3001; another host → 3002; `now` earlier than trusted time by more than the tolerance →
    /// 3004; term over (after any grace) → 1052; lease over → 3003. Term and lease are judged
    /// against the later of `now` and trusted time, so a clock set back within the tolerance
    /// never stretches them.
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
        let effective = trusted.max(now);
        let high_water = Some(effective);
        if c.term_end().is_some_and(|end| effective >= at(end)) {
            return refuse(Code::LicenseExpired, high_water);
        }
        if effective >= at(c.lease_until) {
            return refuse(Code::LeaseExpired, high_water);
        }
        let half_lease = (c.lease_until - c.issued_at) / 2;
        let refresh = c.refresh_after.map_or(half_lease, |r| half_lease.min(i64::from(r)));
        Judgement {
            result: Ok(Entitlement {
                license_id: c.license_id.clone(),
                product: c.product.clone(),
                kind: c.kind,
                expires_at: c.expires_at.map(at),
                grace_until: c.term_end().map(at),
                in_grace: c.expires_at.is_some_and(|end| effective >= at(end)),
                lease_until: at(c.lease_until),
                issued_at: at(c.issued_at),
                refresh_due: at(c.issued_at.saturating_add(refresh)),
                features: c.features.clone(),
                session_id: c.session.clone(),
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
