//! Signed statements other than tokens: refusals and key endorsements.
//!
//! Each is `statement (compact encoding) ‖ ed25519 signature`, the signature over a context
//! string followed by the statement, so that no statement can be read as another kind (or as a
//! token, whose first byte is its version, 1 or 2), and sent as unpadded base64url.
//!
//! * A **refusal** proves that the server itself answered a license check with a definitive
//!   code, for this product, this host and this request (its nonce): only then does an agent
//!   delete its cached token (SPEC §3), so nobody in the network path can make it do so.
//! * An **endorsement** is a key vouching for a newer one (SPEC §9): a token or refusal signed by
//!   a key the agent does not trust directly carries the chain, `TEXT.ENDORSEMENT.…`, nearest
//!   first, and is accepted when the chain leads to a trusted key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::KeyId;
use super::encoding::SIGNATURE_LEN;
use crate::codec;
use crate::host::HostDigest;

pub(crate) const REFUSAL_CONTEXT: &[u8] = b"licet-refusal-v1\0";
pub(crate) const ENDORSEMENT_CONTEXT: &[u8] = b"licet-endorsement-v1\0";
/// Longest statement accepted, in bytes after base64 decoding.
const MAX_STATEMENT_BYTES: usize = 1024;

/// What a signed refusal states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The signing key.
    pub kid: KeyId,
    /// The refusal's code number (1051, 1052, 2008, 1002).
    pub code: u16,
    /// The product asked about.
    pub product: String,
    /// The asking host.
    pub host: HostDigest,
    /// The registration number the request carried, as [`Refusal::number_digest`]: a request
    /// altered on its way (another number, to get a genuine 1002) is not this agent's.
    pub number: [u8; 8],
    /// The server's time, Unix seconds.
    pub server_time: i64,
    /// The request's nonce, so a refusal cannot be replayed to another request.
    pub nonce: [u8; 16],
}

impl Refusal {
    /// What a refusal holds of a registration number: 8 bytes of SHA-256 of the text as sent.
    pub fn number_digest(number: &str) -> [u8; 8] {
        let digest = Sha256::new().chain_update(b"licet-refusal-number\0").chain_update(number.as_bytes()).finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }
}

/// What an endorsement states: `endorser` vouches for `public_key` from `not_before` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The vouching key.
    pub endorser: KeyId,
    /// The endorsed key's id.
    pub kid: KeyId,
    /// The endorsed key.
    pub public_key: [u8; 32],
    /// Tokens it signed before this time (Unix seconds) are not vouched for.
    pub not_before: i64,
}

/// The message a statement's signature covers.
pub(crate) fn signed_message(context: &[u8], statement: &[u8]) -> Vec<u8> {
    [context, statement].concat()
}

/// `statement ‖ signature` as text.
pub(crate) fn to_text(statement: &[u8], signature: &Signature) -> String {
    URL_SAFE_NO_PAD.encode([statement, &signature.to_bytes()[..]].concat())
}

/// Splits a statement's text into the statement's bytes and its signature.
pub(crate) fn from_text(text: &str) -> Option<(Vec<u8>, Signature)> {
    if text.len() > (MAX_STATEMENT_BYTES + SIGNATURE_LEN) * 4 / 3 + 4 {
        return None;
    }
    let mut bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    if bytes.len() <= SIGNATURE_LEN {
        return None;
    }
    let signature = Signature::from_slice(&bytes.split_off(bytes.len() - SIGNATURE_LEN)).ok()?;
    Some((bytes, signature))
}

/// An endorsement's statement decoded and its key checked against its id (unverified).
pub(crate) fn read_endorsement(statement: &[u8]) -> Option<(Endorsement, VerifyingKey)> {
    let endorsement: Endorsement = codec::decode_limited::<_, MAX_STATEMENT_BYTES>(statement).ok()?;
    let key = VerifyingKey::from_bytes(&endorsement.public_key).ok()?;
    (KeyId::of(&key) == endorsement.kid).then_some((endorsement, key))
}

/// A refusal's statement decoded (unverified).
pub(crate) fn read_refusal(statement: &[u8]) -> Option<Refusal> {
    codec::decode_limited::<_, MAX_STATEMENT_BYTES>(statement).ok()
}
