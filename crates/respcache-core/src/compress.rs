//! Compressed payloads: how the core frames a stored payload it compressed,
//! so every backend stores it as plain bytes and every reader tells the two
//! apart.
//!
//! A framed payload starts with a 5-byte header:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `C1 52 43 5A` (`0xC1` never occurs in UTF-8, so no text, JSON or HTML payload starts with it) |
//! | 4 | codec: `0` raw (an escaped payload that began with the magic), `1` zstd, `2` lz4 block |
//! | 5..9 | the original length, u32 big-endian (zstd and lz4 only) |
//!
//! [`frame`] writes it; [`unframe`] reads it back and is total: a payload
//! without the magic, or one whose header or data does not decode (an entry
//! written before compression existed that happened to begin with the
//! magic), comes back unchanged. Contexts are reused per thread: a new zstd
//! context costs ~8 µs per 1 KiB call, more than the work itself.

use std::cell::RefCell;

use bytes::Bytes;

/// The magic that starts a framed payload.
pub const MAGIC: [u8; 4] = [0xC1, b'R', b'C', b'Z'];
const RAW: u8 = 0;
const ZSTD: u8 = 1;
const LZ4: u8 = 2;
const HEADER: usize = 9;

/// The largest original length a frame may claim; a larger claim is not a
/// frame (so a damaged header never makes a reader allocate gigabytes).
const MAX_ORIGINAL: usize = 1 << 30;

/// The zstd level: 3 (zstd's default). Level 9 took 7–10× the time on
/// 100 KiB for 4–11 % fewer bytes (DEPENDENCIES.md, Round 2 §5).
const ZSTD_LEVEL: i32 = 3;

/// Payloads from this size on are compressed with zstd by
/// [`Algorithm::Auto`]; smaller ones with lz4.
pub const AUTO_ZSTD_FROM: usize = 16 * 1024;

/// Which algorithm compresses payloads.
///
/// Measured on this project's 2-core VM (`cargo xtask bench`, economy rows):
/// on a 1 KiB JSON body zstd saves more (2.5× against 2.0×) but a hit pays
/// ~2 µs to decompress it against ~0.3 µs for lz4; on 100 KiB of HTML zstd
/// stores 4–5.6× smaller, lz4 2.7–3.8×. [`Auto`](Algorithm::Auto), the
/// default, takes the fast one for small bodies and the dense one for large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// lz4 below [`AUTO_ZSTD_FROM`] bytes, zstd from there on (each entry
    /// records which one it used).
    Auto,
    /// zstd level 3: the better ratio (JSON 2.4×, HTML 4.8–6×).
    Zstd,
    /// lz4 (block format): 2–4× faster to compress and 2–7× faster to
    /// decompress than zstd, for a lower ratio (JSON 1.8×, HTML 2.8–4×).
    Lz4,
}

impl Algorithm {
    /// Parses `auto`, `zstd` or `lz4`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(Algorithm::Auto),
            "zstd" => Some(Algorithm::Zstd),
            "lz4" => Some(Algorithm::Lz4),
            _ => None,
        }
    }

    /// `auto`, `zstd` or `lz4`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Zstd => "zstd",
            Algorithm::Lz4 => "lz4",
        }
    }
}

thread_local! {
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The stored form of `payload`: compressed with `algorithm` when that is
/// given, the payload is at least `min_size` bytes and compression saves at
/// least 1/16 of it; otherwise the payload itself (escaped with a raw header
/// only when it begins with the magic).
pub fn frame(payload: &Bytes, algorithm: Option<Algorithm>, min_size: usize) -> Bytes {
    if let Some(algorithm) = algorithm
        && payload.len() >= min_size
        && payload.len() <= MAX_ORIGINAL
        && let Some(framed) = compress(payload, algorithm)
        && framed.len() < payload.len() - payload.len() / 16
    {
        return Bytes::from(framed);
    }
    if payload.starts_with(&MAGIC) {
        let mut out = Vec::with_capacity(payload.len() + 5);
        out.extend_from_slice(&MAGIC);
        out.push(RAW);
        out.extend_from_slice(payload);
        return Bytes::from(out);
    }
    payload.clone()
}

fn compress(payload: &[u8], algorithm: Algorithm) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER + payload.len() / 2);
    out.extend_from_slice(&MAGIC);
    let algorithm = match algorithm {
        Algorithm::Auto if payload.len() >= AUTO_ZSTD_FROM => Algorithm::Zstd,
        Algorithm::Auto => Algorithm::Lz4,
        chosen => chosen,
    };
    match algorithm {
        Algorithm::Zstd => {
            out.push(ZSTD);
            out.extend_from_slice(&len.to_be_bytes());
            let bound = zstd::zstd_safe::compress_bound(payload.len());
            out.reserve(bound);
            ZSTD_COMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
                }
                let compressor = slot.as_mut()?;
                let start = out.len();
                out.resize(start + bound, 0);
                let written = compressor
                    .compress_to_buffer(payload, &mut out[start..])
                    .ok()?;
                out.truncate(start + written);
                Some(())
            })?;
        }
        Algorithm::Lz4 | Algorithm::Auto => {
            out.push(LZ4);
            out.extend_from_slice(&len.to_be_bytes());
            let start = out.len();
            out.resize(
                start + lz4_flex::block::get_maximum_output_size(payload.len()),
                0,
            );
            let written = lz4_flex::block::compress_into(payload, &mut out[start..]).ok()?;
            out.truncate(start + written);
        }
    }
    Some(out)
}

/// The payload a stored `bytes` holds: decompressed when it is a frame,
/// else `bytes` unchanged.
pub fn unframe(bytes: Bytes) -> Bytes {
    if !bytes.starts_with(&MAGIC) {
        return bytes;
    }
    match bytes.get(4) {
        Some(&RAW) => bytes.slice(5..),
        Some(&codec @ (ZSTD | LZ4)) => decompress(&bytes, codec).map_or(bytes, Bytes::from),
        _ => bytes,
    }
}

/// Whether `bytes` is a compressed frame (for statistics and tests).
pub fn is_compressed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC) && matches!(bytes.get(4), Some(&(ZSTD | LZ4)))
}

fn decompress(bytes: &[u8], codec: u8) -> Option<Vec<u8>> {
    let len: [u8; 4] = bytes.get(5..HEADER)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len)).ok()?;
    if len > MAX_ORIGINAL {
        return None;
    }
    let data = bytes.get(HEADER..)?;
    let out = match codec {
        ZSTD => ZSTD_DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            let mut out = vec![0u8; len];
            let written = slot
                .as_mut()?
                .decompress_to_buffer(data, &mut out[..])
                .ok()?;
            (written == len).then_some(out)
        })?,
        _ => {
            let mut out = vec![0u8; len];
            let written = lz4_flex::block::decompress_into(data, &mut out).ok()?;
            (written == len).then_some(out)?
        }
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn html() -> Bytes {
        let mut s = String::from("<!doctype html><html><body>");
        for i in 0..2000 {
            s.push_str(&format!("<p class=\"row\">item {i} of the list</p>"));
        }
        Bytes::from(s)
    }

    #[test]
    fn compresses_above_the_threshold_and_round_trips() {
        for algorithm in [Algorithm::Zstd, Algorithm::Lz4, Algorithm::Auto] {
            let body = html();
            let framed = frame(&body, Some(algorithm), 1024);
            assert!(is_compressed(&framed), "{algorithm:?}");
            assert!(
                framed.len() * 3 < body.len(),
                "{algorithm:?} {}",
                framed.len()
            );
            assert_eq!(unframe(framed), body);
            let small = Bytes::from_static(b"{\"a\":1}");
            assert_eq!(frame(&small, Some(algorithm), 1024), small);
        }
    }

    #[test]
    fn auto_takes_lz4_for_small_bodies_and_zstd_for_large() {
        let small = Bytes::from("{\"name\":\"row\"}".repeat(100));
        let large = html();
        assert_eq!(frame(&small, Some(Algorithm::Auto), 0).get(4), Some(&LZ4));
        assert_eq!(frame(&large, Some(Algorithm::Auto), 0).get(4), Some(&ZSTD));
    }

    #[test]
    fn incompressible_payloads_stay_raw() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let noise = Bytes::from(noise);
        let framed = frame(&noise, Some(Algorithm::Zstd), 0);
        assert!(!is_compressed(&framed));
        assert_eq!(unframe(framed), noise);
    }

    #[test]
    fn a_payload_that_begins_with_the_magic_is_escaped() {
        let mut p = MAGIC.to_vec();
        p.extend_from_slice(&[1, 0, 0, 0, 3, 1, 2, 3]);
        let p = Bytes::from(p);
        let framed = frame(&p, None, 0);
        assert_ne!(framed, p);
        assert_eq!(unframe(framed), p);
        // Written without the core (older entries): it reads as itself.
        assert_eq!(unframe(p.clone()), p);
    }

    proptest! {
        #[test]
        fn frame_round_trips(p in proptest::collection::vec(any::<u8>(), 0..3000), z in any::<bool>(), min in 0usize..2000) {
            let p = Bytes::from(p);
            let algorithm = if z { Algorithm::Zstd } else { Algorithm::Auto };
            prop_assert_eq!(unframe(frame(&p, Some(algorithm), min)), p.clone());
            prop_assert_eq!(unframe(frame(&p, None, min)), p);
        }

        #[test]
        fn unframe_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut p = MAGIC.to_vec();
            p.extend_from_slice(&tail);
            let _ = unframe(Bytes::from(p));
        }
    }
}
