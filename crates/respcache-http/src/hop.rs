//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so
//! the proxy drops them in both directions.

use http::header::{self, HeaderMap, HeaderName};

/// Removes the hop-by-hop headers: those `Connection` names, then
/// `Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`,
/// `Transfer-Encoding` and `Upgrade`.
pub(crate) fn drop_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (and none is named without `Connection`),
    // stored answers never: one pass over the names instead of a removal
    // per name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut names = connection_names(headers);
    names.extend(headers.keys().filter(|n| is_hop_by_hop(n)).cloned());
    for name in names {
        headers.remove(name);
    }
}

/// The field names the `Connection` headers list (none allocates nothing).
pub(crate) fn connection_names(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Whether `name` is hop-by-hop whatever `Connection` says: `Connection`,
/// `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
/// `Upgrade`. Runs for every header of every answer: one length switch
/// (names are lower case).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    let n = name.as_str();
    let fixed = match n.len() {
        2 => n == "te",
        7 => n == "trailer" || n == "upgrade",
        10 => n == "connection" || n == "keep-alive",
        17 => n == "transfer-encoding",
        _ => false,
    };
    fixed || n.starts_with("proxy-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn hop_by_hop_headers_go_end_to_end_ones_stay() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("authorization", "Bearer t"),
            ("x-custom", "a"),
            ("x-custom", "b"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        drop_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-custom"]);
        assert_eq!(h.get_all("x-custom").iter().count(), 2);
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_dropped() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-authenticate",
            // As long as `connection`: the prefix is checked whatever the length.
            "proxy-zzzz",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            drop_hop_by_hop(&mut h);
            let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            assert_eq!(left, ["accept"], "{name}");
        }
    }
}
