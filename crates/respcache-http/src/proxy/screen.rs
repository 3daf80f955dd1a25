//! Requests the proxy answers itself instead of forwarding:
//!
//! - `CONNECT` (a tunnel, which a reverse proxy does not open): `501`.
//! - `OPTIONS *` (asterisk-form: about the server, not a resource): `200`
//!   with `Allow` naming the methods the proxy relays, answered here since
//!   the upstream request can only carry a path (it used to reach the
//!   upstream as `OPTIONS /*`).
//! - An HTTP/1.1 request without a `Host` header, or any request with more
//!   than one: `400` (RFC 9112 §3.2). HTTP/2 carries `:authority` instead.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Version};

use super::answer::{Answer, own_answer};
use crate::body::ResponseBody;

/// The methods `OPTIONS *` lists: every standard one but `CONNECT`
/// (extension methods are relayed too).
const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// The proxy's own answer to a request it must not forward, if any.
pub(crate) fn screen(parts: &Parts) -> Option<Answer> {
    let hosts = parts.headers.get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && parts.version == Version::HTTP_11) {
        return Some(own_answer(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    if parts.method == Method::CONNECT {
        return Some(own_answer(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not relayed (this is a reverse proxy)",
        ));
    }
    let asterisk = parts.uri.authority().is_none() && parts.uri.path() == "*";
    if asterisk {
        if parts.method != Method::OPTIONS {
            return Some(own_answer(
                StatusCode::BAD_REQUEST,
                "the request target * is for OPTIONS only",
            ));
        }
        let mut answer = Answer::new(ResponseBody::full(Bytes::new()));
        let h = answer.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(ALLOWED));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Some(answer);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(method: &str, target: &str, version: Version, hosts: &[&str]) -> Parts {
        let mut b = Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn status(p: &Parts) -> Option<u16> {
        screen(p).map(|a| a.status().as_u16())
    }

    #[test]
    fn host_is_required_once_on_http_1_1() {
        assert_eq!(status(&parts("GET", "/", Version::HTTP_11, &["h"])), None);
        assert_eq!(status(&parts("GET", "/", Version::HTTP_11, &[])), Some(400));
        assert_eq!(
            status(&parts("GET", "/", Version::HTTP_11, &["h", "i"])),
            Some(400)
        );
        assert_eq!(status(&parts("GET", "/", Version::HTTP_10, &[])), None);
        assert_eq!(status(&parts("GET", "/", Version::HTTP_2, &[])), None);
    }

    #[test]
    fn connect_and_asterisk_form_are_answered_here() {
        assert_eq!(
            status(&parts("CONNECT", "h:443", Version::HTTP_11, &["h"])),
            Some(501)
        );
        let options = screen(&parts("OPTIONS", "*", Version::HTTP_11, &["h"]));
        let options = options.unwrap();
        assert_eq!(options.status(), 200);
        assert!(options.headers()["allow"].to_str().unwrap().contains("GET"));
        assert_eq!(
            status(&parts("GET", "*", Version::HTTP_11, &["h"])),
            Some(400)
        );
        assert_eq!(
            status(&parts("OPTIONS", "/x", Version::HTTP_11, &["h"])),
            None
        );
    }
}
