//! Tests of the stored meta: round trips, the older versions, the head.

use super::*;
use serde::Serialize;

fn meta() -> ResponseMeta {
    let res = http::Response::builder()
        .header("cache-control", "max-age=60")
        .header("link", "<a>; rel=a")
        .header("link", "<b>; rel=b")
        .body(())
        .unwrap();
    ResponseMeta {
        status: 200,
        headers: header_list(
            &res.headers()
                .iter()
                .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
                .collect::<Vec<_>>(),
        ),
        url: "http://h/a".into(),
        method: "GET".into(),
        response_time: 5,
        initial_age: 0,
        body: Some(BodyCheck::of(b"body")),
        vary: Some(VaryMatch {
            names: vec!["accept".into()],
            digest: [7; 32],
        }),
        version: 20,
    }
}

#[test]
fn round_trips_with_multi_valued_headers() {
    let m = meta();
    let bytes = m.encode().unwrap();
    assert_eq!(bytes[0], META_VERSION);
    let back = ResponseMeta::decode(&bytes).unwrap();
    assert_eq!(back.headers, m.headers);
    assert_eq!(back.header_map().get_all("link").iter().count(), 2);
    assert_eq!(back.vary, m.vary);
    assert_eq!(back.url, "http://h/a");
    assert!(back.body.unwrap().matches(b"body"));
    assert!(!back.body.unwrap().matches(b"bodY"));
    assert!(!back.body.unwrap().matches(b"body!"));
}

/// Version 3's wire form, as the previous release wrote it: the body
/// hashed with BLAKE3.
fn encode_v3(m: &ResponseMeta, body: &[u8]) -> Bytes {
    #[derive(Serialize)]
    struct CheckV3 {
        len: u64,
        blake3: [u8; 32],
    }
    let check = CheckV3 {
        len: body.len() as u64,
        blake3: *blake3::hash(body).as_bytes(),
    };
    let wire = WireMeta::Response(WireResponse::of(m, Some(check)));
    Bytes::from(postcard::to_extend(&wire, vec![META_VERSION_3]).unwrap())
}

#[test]
fn version_3_meta_still_reads_and_checks_its_blake3_hash() {
    let m = meta();
    let bytes = encode_v3(&m, b"body");
    let h = head(&bytes);
    assert_eq!((h.status, h.version, h.response_time), (200, 20, 5));
    assert_eq!(h.headers, m.header_map());
    let check = h.body.unwrap();
    assert!(matches!(check.hash, BodyHash::Blake3(_)));
    assert!(check.matches(b"body"));
    assert!(!check.matches(b"bodY"));
    // Rewritten (a 304 updates the meta, not the body): the old check
    // is kept in version 4 and still holds.
    let whole = ResponseMeta::decode(&bytes).unwrap();
    let again = whole.encode().unwrap();
    assert_eq!(again[0], META_VERSION);
    assert_eq!(head(&again).body, Some(check));
}

#[test]
fn version_4_checks_with_xxh3() {
    let check = BodyCheck::of(b"body");
    assert!(matches!(check.hash, BodyHash::Xxh3(_)));
    let other = BodyCheck::of(b"bodY");
    assert_ne!(check, other);
    // The 1 KiB bodies of the bench: one byte changed anywhere is seen.
    let body = vec![b'x'; 1024];
    let check = BodyCheck::of(&body);
    for at in [0, 511, 1023] {
        let mut damaged = body.clone();
        damaged[at] = b'y';
        assert!(!check.matches(&damaged), "byte {at}");
    }
}

/// Version 2's wire form, as the previous release wrote it.
#[derive(Serialize)]
enum V2<'a> {
    Response {
        status: u16,
        version: u8,
        response_time: i64,
        headers: Vec<(&'a str, &'a [u8])>,
        vary: Option<VaryMatch>,
        url: &'a str,
        method: &'a str,
        policy: &'a [u8],
    },
}

fn encode_v2(m: &ResponseMeta) -> Bytes {
    let wire = V2::Response {
        status: m.status,
        version: m.version,
        response_time: m.response_time,
        // Written as strings, as that release did (read back as bytes).
        headers: m
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect(),
        vary: m.vary.clone(),
        url: &m.url,
        method: &m.method,
        policy: b"an http-cache-semantics policy",
    };
    Bytes::from(postcard::to_extend(&wire, vec![META_VERSION_2]).unwrap())
}

fn head(bytes: &Bytes) -> Head {
    match StoredHead::decode(bytes).unwrap() {
        StoredHead::Response(h) => h,
        StoredHead::VaryIndex(_) => panic!("not a response"),
    }
}

#[test]
fn a_cloned_head_keeps_every_field_in_order_with_room_for_age() {
    let mut m = meta();
    m.headers.push(("x-b".into(), b"1".to_vec()));
    m.headers.push(("link".into(), b"<c>; rel=c".to_vec()));
    let original = head(&m.encode().unwrap());
    let copy = original.clone();
    let pairs = |h: &HeaderMap| {
        h.iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&copy.headers), pairs(&original.headers));
    assert_eq!(copy.headers.get_all("link").iter().count(), 3);
    assert_eq!(
        (
            copy.status,
            copy.version,
            copy.response_time,
            copy.initial_age
        ),
        (
            original.status,
            original.version,
            original.response_time,
            original.initial_age
        )
    );
    assert_eq!(copy.vary, original.vary);
    assert!(copy.headers.capacity() > copy.headers.keys_len());
}

#[test]
fn version_2_meta_still_reads_with_its_age_header_as_initial_age() {
    let mut m = meta();
    m.headers.push(("age".into(), b"50".to_vec()));
    let bytes = encode_v2(&m);
    let h = head(&bytes);
    assert_eq!(
        (h.status, h.version, h.response_time, h.initial_age),
        (200, 20, 5, 50)
    );
    assert_eq!(h.headers, m.header_map());
    assert_eq!(h.vary, m.vary);
    assert!(h.body.is_none());
    assert_eq!(h.age(Timestamp::from_millis(5 + 10_000)).as_secs(), 60);
    let whole = ResponseMeta::decode(&bytes).unwrap();
    assert_eq!(whole.headers, m.headers);
    // Version 1 (the policy inline) is not read.
    assert!(StoredHead::decode(&Bytes::from_static(&[1, 0, 0])).is_err());
}

#[test]
fn a_huge_initial_age_saturates() {
    let m = ResponseMeta {
        response_time: 1_700_000_000_000,
        initial_age: u64::MAX,
        ..meta()
    };
    let h = head(&m.encode().unwrap());
    assert!(h.age(Timestamp::from_millis(1_700_000_001_000)) >= Duration::from_secs(u64::MAX));
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn decode_all(bytes: Bytes) {
    let _ = StoredHead::decode(&bytes);
    let _ = StoredMeta::decode(&bytes);
    if let Ok(StoredHead::Response(h)) = StoredHead::decode(&bytes) {
        let _ = h.age(Timestamp::from_millis(i64::MAX));
        let _ = h.age(Timestamp::from_millis(i64::MIN));
        let _ = h.status_code();
    }
}

/// Random bytes, and valid meta with bytes flipped or cut, never panic.
#[test]
fn random_and_mutated_meta_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let v4 = meta().encode().unwrap().to_vec();
    let v3 = encode_v3(&meta(), b"body").to_vec();
    let v2 = encode_v2(&meta()).to_vec();
    for i in 0..200_000 {
        let r = xorshift(&mut seed);
        let bytes: Vec<u8> = match i % 3 {
            0 => {
                let len = (r % 300) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
                if let Some(first) = b.first_mut() {
                    *first = 2 + (r >> 32) as u8 % 3;
                }
                b
            }
            1 => {
                let mut b = [&v4, &v3, &v2][(r % 3) as usize].clone();
                for _ in 0..1 + (r >> 8) % 4 {
                    let at = 1 + (xorshift(&mut seed) as usize) % (b.len() - 1);
                    b[at] = xorshift(&mut seed) as u8;
                }
                b
            }
            _ => {
                let b = [&v4, &v3, &v2][(r % 3) as usize];
                b[..(r as usize >> 3) % b.len()].to_vec()
            }
        };
        decode_all(Bytes::from(bytes));
    }
}

/// Hostile stored meta with many (tiny) headers: a hit must be a
/// counted miss, not a panic in `HeaderMap::with_capacity`.
#[test]
fn meta_with_very_many_headers_does_not_panic() {
    let m = ResponseMeta {
        headers: vec![("a".to_owned(), b"b".to_vec()); 25_000],
        ..meta()
    };
    let v4 = m.encode().unwrap();
    assert!(v4.len() < 200_000, "{} bytes", v4.len());
    let head = std::panic::catch_unwind(|| StoredHead::decode(&v4).is_ok());
    assert!(head.is_ok(), "StoredHead::decode panicked");
    let whole = std::panic::catch_unwind(|| ResponseMeta::decode(&v4).map(|m| m.header_map()));
    assert!(whole.is_ok(), "ResponseMeta::header_map panicked");
}

#[test]
fn foreign_or_corrupt_bytes_do_not_decode() {
    let mut bytes = meta().encode().unwrap().to_vec();
    assert!(ResponseMeta::decode(&[]).is_none());
    bytes[0] = 99;
    assert!(StoredMeta::decode(&bytes).is_err());
    bytes[0] = META_VERSION;
    bytes.truncate(bytes.len() / 2);
    assert!(StoredMeta::decode(&bytes).is_err());
}
