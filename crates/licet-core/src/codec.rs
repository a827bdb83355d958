//! The one place that knows the binary encodings, so either can be swapped by changing this file.
//!
//! * **Compact** ([`encode`], [`decode`]): bincode `=2.0.1`, standard configuration (little-endian,
//!   variable-length integers), positional. Tokens use it, where every byte counts and evolution
//!   goes through a version byte and a tagged extension area; so did release 0.1.0's records.
//! * **Self-describing** ([`pack`], [`unpack`]): MessagePack with field names. Stored records and
//!   the agent's cache use it: a field added later (`#[serde(default)]`) is skipped by an older
//!   reader and defaulted by a newer one, so adding a field needs no migration.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest stored record decoded (an account with very many bindings stays well below).
pub const RECORD_LIMIT: usize = 64 << 20;

/// Bytes that are not a valid encoding of the expected type.
#[derive(Debug, thiserror::Error)]
#[error("undecodable bytes: {0}")]
pub struct CodecError(String);

/// Encodes `value` canonically.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("encoding plain data into a Vec cannot fail")
}

/// Decodes a whole value of at most `LIMIT` bytes; trailing bytes are an error, so every value
/// has exactly one accepted encoding.
pub fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > LIMIT {
        return Err(CodecError(format!("{} bytes exceed the limit of {LIMIT}", bytes.len())));
    }
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, used) = bincode::serde::decode_from_slice(bytes, config).map_err(|e| CodecError(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// Decodes a stored record (at most [`RECORD_LIMIT`] bytes).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_limited::<T, RECORD_LIMIT>(bytes)
}

/// Encodes `value` as MessagePack, structs as maps with field names.
pub fn pack<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("encoding plain data into a Vec cannot fail")
}

/// Decodes a whole MessagePack value of at most [`RECORD_LIMIT`] bytes; trailing bytes are an
/// error. Unknown fields are skipped; missing fields with a default take it.
pub fn unpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > RECORD_LIMIT {
        return Err(CodecError(format!("{} bytes exceed the limit of {RECORD_LIMIT}", bytes.len())));
    }
    let mut rest = bytes;
    let value = {
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        T::deserialize(&mut de).map_err(|e| CodecError(e.to_string()))?
    };
    if !rest.is_empty() {
        return Err(CodecError(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let v: (u32, String, Option<i64>) = (7, "x".into(), Some(-3));
        let mut bytes = encode(&v);
        assert_eq!(decode::<(u32, String, Option<i64>)>(&bytes).unwrap(), v);
        bytes.push(0);
        assert!(decode::<(u32, String, Option<i64>)>(&bytes).is_err());
        assert!(decode::<(u32, String, Option<i64>)>(&[0xff; 3]).is_err());
        assert!(decode_limited::<Vec<u8>, 8>(&encode(&vec![0u8; 20])).is_err());
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Old {
        a: u32,
        b: String,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct New {
        a: u32,
        b: String,
        #[serde(default)]
        c: Vec<String>,
    }

    #[test]
    fn packed_values_evolve_both_ways() {
        let old = Old { a: 1, b: "x".into() };
        let new: New = unpack(&pack(&old)).unwrap();
        assert_eq!(new, New { a: 1, b: "x".into(), c: vec![] }, "a newer reader defaults the added field");
        let newer = New { a: 2, b: "y".into(), c: vec!["z".into()] };
        assert_eq!(unpack::<Old>(&pack(&newer)).unwrap(), Old { a: 2, b: "y".into() }, "an older reader skips it");
        let mut bytes = pack(&old);
        bytes.push(0xc0);
        assert!(unpack::<Old>(&bytes).is_err());
        assert!(unpack::<Old>(&[0x92, 0x01]).is_err());
    }
}
