//! [`Exchange`]: one request on its way through the stages — the request,
//! where its answer lives, its directives and what the cache holds for it.

use http::Method;

use super::Engine;
use super::lookup::Read;
use crate::directives::Directives;
use crate::line::RequestLine;
use crate::request::Prepared;
use crate::target::Slot;

/// One request the cache may answer, and what the stages learnt about it.
pub(crate) struct Exchange<'a> {
    /// The request (its body read whole: it is part of the key).
    pub(crate) req: Box<Prepared>,
    /// "METHOD url" for logs and errors, written on first use.
    pub(crate) line: &'a RequestLine<'a>,
    /// The request's digest (method, normalised URL, body, matched headers).
    pub(crate) digest: String,
    /// Where its answer lives.
    pub(crate) slot: Slot,
    /// The request's cache directives (none when `Cache-Control` is not
    /// respected).
    pub(crate) req_cc: Directives,
    /// What the cache holds for it (filled by [`lookup`](super::lookup)).
    pub(crate) read: Read,
}

impl Engine {
    /// Where the answer to `req` lives: its digest and slot; `None` when
    /// no store answers it.
    pub(super) fn locate(&self, req: &Prepared) -> Option<(String, Slot)> {
        let rules = &self.options.rules;
        let method = lookup_method(&req.method);
        let body_for_key: &[u8] = if req.method == Method::HEAD {
            b""
        } else {
            &req.body
        };
        let normalized = rules.normalize_url(&req.url);
        let digest = rules.digest_normalized(&method, &normalized, body_for_key, &req.headers);
        let slot = self
            .target
            .slot(&method, &normalized, &digest, &req.headers)?;
        Some((digest, slot))
    }

    /// The request's cache directives (none when `Cache-Control` is not
    /// respected).
    pub(super) fn request_directives(&self, req: &Prepared) -> Directives {
        if self.options.respect_cache_control {
            Directives::parse(&req.headers)
        } else {
            Directives::default()
        }
    }
}

impl Exchange<'_> {
    /// Whether the caller wants a stored answer or none (per request, or
    /// `only-if-cached`).
    pub(crate) fn only_if_cached(&self) -> bool {
        self.req.per.only_if_cached || self.req_cc.only_if_cached
    }

    pub(crate) fn is_head(&self) -> bool {
        self.req.method == Method::HEAD
    }

    /// The key identical requests in flight share: the method, the
    /// request's digest (normalised URL, body, matched headers) and the
    /// headers that tell requests apart. (The digest, not the slot key's
    /// string form: as fine or finer, and a miss does not pay for encoding
    /// the key.) In a shared cache the credentials the key leaves out
    /// (`Authorization`, the other ignored headers and query parameters)
    /// count too: a user's answer is never handed to a request with other
    /// credentials (RFC 9111 §3.5), whatever the answer says.
    pub(crate) fn coalesce_key(&self, engine: &Engine) -> String {
        let method = self.req.method.as_str();
        let mut key = String::with_capacity(method.len() + self.digest.len() + 132);
        key.push_str(method);
        key.push('|');
        key.push_str(&self.digest);
        key.push('|');
        let rules = &engine.options.rules;
        rules.push_headers_digest(&self.req.headers, &mut key);
        if engine.options.shared {
            key.push('|');
            rules.push_credentials_digest(&self.req.headers, &self.req.url, &mut key);
        }
        key
    }

    /// The request line's text.
    pub(crate) fn line(&self) -> &str {
        self.line.text()
    }
}

/// The method a request's answer is looked up and stored under (a HEAD
/// is answered from a GET).
pub(super) fn lookup_method(method: &Method) -> Method {
    if *method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    }
}
