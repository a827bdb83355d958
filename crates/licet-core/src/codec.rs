//! The one place that knows the binary encoding (bincode `=2.0.1`, standard configuration:
//! little-endian, variable-length integers). Tokens and stored records go through here, so the
//! encoding can be swapped by changing this file alone.

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
}
