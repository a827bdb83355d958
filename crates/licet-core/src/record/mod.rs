//! Stored records, typed, and their versioned encoding.
//!
//! A store holds [`Record`]s under [`RecordKey`]s. How a record becomes bytes is decided here,
//! once: a format byte ([`FORMAT`]) followed by the record as MessagePack with field names
//! ([`codec::pack`]). A field added by a later release carries `#[serde(default)]`: older records
//! read with the default and no migration is needed. A record of a newer format is refused with
//! [`RecordError::Newer`]; release 0.1.0's records (no format byte, positional bincode) are read
//! by [`legacy`] when a store is migrated.

pub mod legacy;

use crate::codec;
use crate::mail::Mail;
use crate::model::{Account, Coupon, Product};
use crate::txn::RecordKey;

/// The record format this build writes.
pub const FORMAT: u8 = 2;

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// Under [`RecordKey::Product`].
    Product(Product),
    /// Under [`RecordKey::Account`].
    Account(Account),
    /// An account id, under [`RecordKey::Email`] or [`RecordKey::Number`].
    AccountId(String),
    /// Under [`RecordKey::Coupon`].
    Coupon(Coupon),
    /// Account ids, under [`RecordKey::HostComponent`].
    HostAccounts(Vec<String>),
    /// Under [`RecordKey::Mail`].
    Mail(Mail),
}

/// Why stored bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes do not decode as the record their key names.
    #[error("record {key:?} is unreadable: {reason}")]
    Unreadable {
        /// The record's key.
        key: RecordKey,
        /// What failed.
        reason: String,
    },
    /// The record was written by a newer release of licet.
    #[error("record {key:?} has format {found}; this release reads formats up to {FORMAT}")]
    Newer {
        /// The record's key.
        key: RecordKey,
        /// Its format byte.
        found: u8,
    },
}

impl From<RecordError> for crate::Error {
    fn from(e: RecordError) -> crate::Error {
        crate::Error::Internal(e.to_string())
    }
}

impl Record {
    /// The stored form: the format byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        let body = match self {
            Record::Product(p) => codec::pack(p),
            Record::Account(a) => codec::pack(a),
            Record::AccountId(id) => codec::pack(id),
            Record::Coupon(c) => codec::pack(c),
            Record::HostAccounts(ids) => codec::pack(ids),
            Record::Mail(m) => codec::pack(m),
        };
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(FORMAT);
        out.extend_from_slice(&body);
        out
    }

    /// Reads the stored form of the record under `key`.
    pub fn decode(key: &RecordKey, bytes: &[u8]) -> Result<Record, RecordError> {
        let unreadable = |reason: String| RecordError::Unreadable { key: key.clone(), reason };
        let (&format, body) = bytes.split_first().ok_or_else(|| unreadable("empty".into()))?;
        if format > FORMAT {
            return Err(RecordError::Newer { key: key.clone(), found: format });
        }
        if format != FORMAT {
            return Err(unreadable(format!("unknown format {format}")));
        }
        let e = |e: codec::CodecError| unreadable(e.to_string());
        Ok(match key {
            RecordKey::Product(_) => Record::Product(codec::unpack(body).map_err(e)?),
            RecordKey::Account(_) => Record::Account(codec::unpack(body).map_err(e)?),
            RecordKey::Email(_) | RecordKey::Number(_) => Record::AccountId(codec::unpack(body).map_err(e)?),
            RecordKey::Coupon(_) => Record::Coupon(codec::unpack(body).map_err(e)?),
            RecordKey::HostComponent(_) => Record::HostAccounts(codec::unpack(body).map_err(e)?),
            RecordKey::Mail(_) => Record::Mail(codec::unpack(body).map_err(e)?),
        })
    }

    /// Whether this is the kind of record `key` names.
    pub fn fits(&self, key: &RecordKey) -> bool {
        matches!(
            (key, self),
            (RecordKey::Product(_), Record::Product(_))
                | (RecordKey::Account(_), Record::Account(_))
                | (RecordKey::Email(_) | RecordKey::Number(_), Record::AccountId(_))
                | (RecordKey::Coupon(_), Record::Coupon(_))
                | (RecordKey::HostComponent(_), Record::HostAccounts(_))
                | (RecordKey::Mail(_), Record::Mail(_))
        )
    }
}
