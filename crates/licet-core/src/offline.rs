//! Air-gapped activation (SPEC §8): a host that never reaches the server writes its activation
//! request as one line of text; a connected machine takes it to the server (the portal, or
//! `POST /v1/offline/activate`); the token comes back the same way.
//!
//! The text is `LICET1.` and the unpadded base64url of the request (MessagePack, its fields
//! named) followed by the first 8 bytes of its SHA-256: a character changed in transit is found
//! (1001), never read as another request. The request carries no secret beyond the number the
//! customer types anyway, and no signature: what it asks is exactly what an online activation
//! with that number asks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::credential::Secret;
use crate::error::Error;
use crate::host::Fingerprint;
use crate::ledger::HostCommand;
use crate::model::Host;

/// Longest request text accepted (SPEC §8: one line of at most 2 KB).
pub const MAX_REQUEST_CHARS: usize = 2048;
/// What every request text starts with (its format's version).
const PREFIX: &str = "LICET1.";
const CHECK_LEN: usize = 8;

/// An activation request written on an air-gapped host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineRequest {
    /// The registration number as entered on the host.
    pub number: Secret,
    /// The product.
    pub product: String,
    /// The host, as an online activation would present it.
    pub host: Host,
}

impl OfflineRequest {
    /// The request as one line of text.
    pub fn encode(&self) -> String {
        let mut bytes = codec::pack(self);
        let check = Sha256::digest(&bytes);
        bytes.extend_from_slice(&check[..CHECK_LEN]);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Reads a request's text (surrounding whitespace and line breaks a mail or a clipboard added
    /// are ignored); anything damaged, truncated or too long is 1001.
    pub fn decode(text: &str) -> Result<OfflineRequest, Error> {
        let damaged = || Error::input("request", "not an offline activation request, or damaged in transit");
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if text.len() > MAX_REQUEST_CHARS {
            return Err(Error::input("request", format!("longer than {MAX_REQUEST_CHARS} characters")));
        }
        let body = text.strip_prefix(PREFIX).ok_or_else(damaged)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| damaged())?;
        if bytes.len() <= CHECK_LEN {
            return Err(damaged());
        }
        let (payload, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if Sha256::digest(payload)[..CHECK_LEN] != *check {
            return Err(damaged());
        }
        let request: OfflineRequest = codec::unpack(payload).map_err(|_| damaged())?;
        // The host checked as an online request's is: the fingerprints' components (a checksum
        // anyone can compute vouches for nothing), the names.
        let checked = |f: &Fingerprint| Fingerprint::new(f.components().clone());
        let legacy = request.host.legacy.as_ref().map(checked).transpose()?;
        let host = Host::new(checked(&request.host.fingerprint)?, &request.host.hostname, &request.host.os)?
            .with_legacy(legacy);
        Ok(OfflineRequest { host, ..request })
    }

    /// The ledger's activation it asks for.
    pub fn to_command(&self) -> HostCommand {
        HostCommand { number: self.number.clone(), product: self.product.clone(), host: self.host.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Fingerprint;

    fn request() -> OfflineRequest {
        let keyed = |tag: &str| {
            Fingerprint::new(["machine-id", "mac", "disk"].map(|c| (c, format!("{tag}{c}").repeat(4)))).unwrap()
        };
        let host = Host::new(keyed("new"), "warehouse-ПК", "Windows 10").unwrap().with_legacy(Some(keyed("old")));
        OfflineRequest { number: "MIKO-50YDY-RF28Y-E8CAH-RXWTG".into(), product: "call-journal".into(), host }
    }

    #[test]
    fn a_request_reads_back_as_written_even_wrapped_by_a_mail_program() {
        let text = request().encode();
        assert!(text.len() <= 1024, "{} characters", text.len());
        assert_eq!(OfflineRequest::decode(&text).unwrap(), request());
        let wrapped: String =
            text.as_bytes().chunks(60).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
        assert_eq!(OfflineRequest::decode(&format!("  {wrapped}\n")).unwrap(), request());
    }

    #[test]
    fn a_damaged_truncated_or_foreign_request_is_1001() {
        let text = request().encode();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in PREFIX.len()..text.len() {
            let original = text.as_bytes()[i] as char;
            let other = alphabet.chars().find(|c| *c != original).unwrap();
            let mut damaged = text.clone();
            damaged.replace_range(i..=i, &other.to_string());
            // The last character carries only some bits of the check: changing its unused
            // bits may leave the bytes as they were — then it is the same request.
            match OfflineRequest::decode(&damaged) {
                Err(e) => assert_eq!(e.code(), crate::error::Code::InvalidRequest),
                Ok(same) => assert_eq!(same, request(), "position {i}"),
            }
        }
        // Well-formed and checksummed, but with a fingerprint an online request could not send.
        let mut empty = request();
        empty.host.fingerprint =
            codec::unpack(&codec::pack(&std::collections::BTreeMap::<String, String>::new())).unwrap();
        let forged = empty.encode();
        for bad in [&text[..text.len() - 3], "", "LICET1.", "LICET2.AAAA", "hello", &"A".repeat(5000), &forged] {
            assert_eq!(OfflineRequest::decode(bad).unwrap_err().code(), crate::error::Code::InvalidRequest, "{bad}");
        }
    }
}
