//! [`Codec`]: how a repository turns its payload type into stored bytes and
//! back. Text (the default), JSON, raw bytes, and bincode (feature
//! `bincode`); a user can add one by implementing the trait.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// Encodes payloads of type `P` to bytes and decodes them back.
///
/// A decode failure is an [`ErrorKind::Codec`] error; repositories treat it
/// as a miss (logged and counted), never as an error to the caller.
pub trait Codec<P>: Send + Sync + 'static {
    /// A short name (`text`, `json`, ...), used in logs and errors.
    fn name(&self) -> &'static str;
    /// Encodes `payload`.
    fn encode(&self, payload: &P) -> Result<Bytes>;
    /// Decodes `bytes`.
    fn decode(&self, bytes: &[u8]) -> Result<P>;
}

fn codec_error(codec: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("{codec} codec cannot {what}: {e}"),
    )
}

/// UTF-8 text payloads (`String`). The default codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextCodec;

impl Codec<String> for TextCodec {
    fn name(&self) -> &'static str {
        "text"
    }
    fn encode(&self, payload: &String) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(payload.as_bytes()))
    }
    fn decode(&self, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| codec_error("text", "decode", e))
    }
}

/// JSON payloads: any `serde` type, `serde_json::Value` included.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl<P: Serialize + DeserializeOwned> Codec<P> for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }
    fn encode(&self, payload: &P) -> Result<Bytes> {
        serde_json::to_vec(payload)
            .map(Bytes::from)
            .map_err(|e| codec_error("json", "encode", e))
    }
    fn decode(&self, bytes: &[u8]) -> Result<P> {
        serde_json::from_slice(bytes).map_err(|e| codec_error("json", "decode", e))
    }
}

/// Raw bytes, stored as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn name(&self) -> &'static str {
        "bytes"
    }
    fn encode(&self, payload: &Bytes) -> Result<Bytes> {
        Ok(payload.clone())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

impl Codec<Vec<u8>> for BytesCodec {
    fn name(&self) -> &'static str {
        "bytes"
    }
    fn encode(&self, payload: &Vec<u8>) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(payload))
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

/// bincode 2 (serde mode, standard configuration) for compact typed payloads.
///
/// bincode is unmaintained (RUSTSEC-2025-0141) and 3.0 is a tombstone; it is
/// offered only as a payload codec a user chooses, never for respcache's own
/// envelope.
#[cfg(feature = "bincode")]
#[derive(Clone, Copy, Debug, Default)]
pub struct BincodeCodec;

#[cfg(feature = "bincode")]
impl<P: Serialize + DeserializeOwned> Codec<P> for BincodeCodec {
    fn name(&self) -> &'static str {
        "bincode"
    }
    fn encode(&self, payload: &P) -> Result<Bytes> {
        bincode::serde::encode_to_vec(payload, bincode::config::standard())
            .map(Bytes::from)
            .map_err(|e| codec_error("bincode", "encode", e))
    }
    fn decode(&self, bytes: &[u8]) -> Result<P> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| codec_error("bincode", "decode", e))?;
        if read != bytes.len() {
            return Err(codec_error("bincode", "decode", "trailing bytes"));
        }
        Ok(value)
    }
}
