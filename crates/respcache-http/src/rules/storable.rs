//! Whether a response may be stored at all (RFC 9111 §3, §3.5, §5.2.2).

use http::StatusCode;

use crate::directives::Directives;

/// The status codes that are heuristically cacheable (RFC 9110 §15.1): a
/// response with one of them may be stored and given heuristic freshness.
pub const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Whether this cache understands `status` (RFC 9111 §5.2.2.3,
/// `must-understand`): the final status codes RFC 9110 defines.
pub(crate) fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// Why a response is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotStorable {
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` (in any form) in a shared cache.
    Private,
    /// A request with `Authorization` in a shared cache, without
    /// `public`, `s-maxage` or `must-revalidate` in the response.
    Authorization,
    /// A status the cache does not store: interim, `206`/`304` (never
    /// stored as a complete response), or not understood with
    /// `must-understand`.
    Status,
    /// Nothing allows storing it: no explicit freshness, not `public`, a
    /// status that is not heuristically cacheable (nor allowed by the user).
    NoFreshness,
}

impl NotStorable {
    /// A short name, for logs and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::Status => "status",
            NotStorable::NoFreshness => "no-freshness",
        }
    }
}

/// What [`check`] looks at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exchange<'a> {
    pub(crate) status: StatusCode,
    pub(crate) response: &'a Directives,
    pub(crate) request: &'a Directives,
    /// Whether the request carries credentials: `Authorization`, or a
    /// header or query parameter the key leaves out (`X-API-Key`,
    /// `api_key`...); a shared cache treats them all as RFC 9111 §3.5
    /// treats `Authorization`.
    pub(crate) credentials: bool,
    /// Whether the response has explicit freshness (`max-age`, `s-maxage`
    /// in a shared cache, `Expires`).
    pub(crate) explicit: bool,
    /// Whether the user allowed this status for storing (`allowed_codes`):
    /// a cache extension in the RFC's terms.
    pub(crate) allowed_by_user: bool,
    pub(crate) shared: bool,
    /// A `206` this cache can keep and answer ranges from (RFC 9111 §3.3:
    /// one byte range of known length, and nothing complete stored);
    /// another `206` is not stored.
    pub(crate) partial: bool,
}

/// RFC 9111 §3: may the response be stored?
pub(crate) fn check(x: Exchange<'_>) -> Result<(), NotStorable> {
    let status = x.status;
    if status.is_informational()
        || (status == StatusCode::PARTIAL_CONTENT && !x.partial)
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStorable::Status);
    }
    let d = x.response;
    if d.must_understand {
        if !understood(status) {
            return Err(NotStorable::Status);
        }
        // A cache that understands the status may ignore `no-store`.
    } else if d.no_store {
        return Err(NotStorable::NoStore);
    }
    if x.request.no_store {
        return Err(NotStorable::NoStore);
    }
    if x.shared && d.private {
        return Err(NotStorable::Private);
    }
    if x.shared && x.credentials && !(d.public || d.must_revalidate || d.s_maxage.is_some()) {
        return Err(NotStorable::Authorization);
    }
    let allowed = x.explicit
        || d.public
        || (!x.shared && d.private)
        || HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
        || x.allowed_by_user;
    if allowed {
        Ok(())
    } else {
        Err(NotStorable::NoFreshness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn cc(v: &'static str) -> Directives {
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static(v));
        Directives::parse(&h)
    }

    fn run(status: u16, response: &str, shared: bool, auth: bool) -> Result<(), NotStorable> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_str(response).unwrap(),
        );
        let d = Directives::parse(&h);
        check(Exchange {
            status: StatusCode::from_u16(status).unwrap(),
            response: &d,
            request: &Directives::default(),
            credentials: auth,
            explicit: d.max_age.is_some() || (shared && d.s_maxage.is_some()),
            allowed_by_user: false,
            shared,
            partial: false,
        })
    }

    /// §3.3: a partial answer the cache can answer ranges from is kept by
    /// the same rules as a complete one.
    #[test]
    fn a_partial_answer_this_cache_can_serve_is_storable() {
        let d = cc("max-age=3600");
        let partial = |partial, response: &Directives| {
            check(Exchange {
                status: StatusCode::PARTIAL_CONTENT,
                response,
                request: &Directives::default(),
                credentials: false,
                explicit: response.max_age.is_some(),
                allowed_by_user: false,
                shared: false,
                partial,
            })
        };
        assert_eq!(partial(true, &d), Ok(()));
        assert_eq!(partial(false, &d), Err(NotStorable::Status));
        assert_eq!(partial(true, &cc("no-store")), Err(NotStorable::NoStore));
    }

    /// The security regression of issue 14: any spelling of `private` keeps
    /// a response out of a shared cache, any spelling of `no-store` out of
    /// every cache.
    #[test]
    fn private_and_no_store_in_any_case_are_never_stored_when_they_apply() {
        for v in [
            "private, max-age=3600",
            "Private, max-age=3600",
            "PRIVATE, max-age=3600",
            "private=\"set-cookie\", max-age=3600",
        ] {
            assert_eq!(run(200, v, true, false), Err(NotStorable::Private), "{v}");
            assert_eq!(run(200, v, false, false), Ok(()), "{v}");
        }
        for v in [
            "no-store, max-age=3600",
            "No-Store, max-age=3600",
            "nO-StOrE",
        ] {
            assert_eq!(run(200, v, false, false), Err(NotStorable::NoStore), "{v}");
            assert_eq!(run(200, v, true, false), Err(NotStorable::NoStore), "{v}");
        }
    }

    /// §3: any final status with explicit freshness; heuristically
    /// cacheable ones without.
    #[test]
    fn statuses() {
        for s in [
            200, 203, 204, 299, 400, 404, 410, 499, 500, 502, 503, 504, 599,
        ] {
            assert_eq!(run(s, "max-age=3600", false, false), Ok(()), "{s}");
        }
        for s in [200, 404, 410, 501] {
            assert_eq!(run(s, "", false, false), Ok(()), "{s}");
        }
        for s in [201, 202, 403, 502, 503, 504, 599] {
            assert_eq!(
                run(s, "", false, false),
                Err(NotStorable::NoFreshness),
                "{s}"
            );
        }
        assert_eq!(
            run(206, "max-age=3600", false, false),
            Err(NotStorable::Status),
            "a 206 this cache cannot answer ranges from"
        );
        assert_eq!(
            run(599, "max-age=3600, no-store, must-understand", false, false),
            Err(NotStorable::Status)
        );
        assert_eq!(
            run(200, "max-age=3600, no-store, must-understand", false, false),
            Ok(())
        );
        assert_eq!(run(201, "public", false, false), Ok(()));
        let _ = cc("");
    }

    /// §3.5: `Authorization` in a shared cache.
    #[test]
    fn authorization_in_a_shared_cache() {
        assert_eq!(
            run(200, "max-age=3600", true, true),
            Err(NotStorable::Authorization)
        );
        assert_eq!(run(200, "max-age=3600", false, true), Ok(()));
        for ok in [
            "max-age=3600, public",
            "s-maxage=3600",
            "max-age=3600, must-revalidate",
        ] {
            assert_eq!(run(200, ok, true, true), Ok(()), "{ok}");
        }
    }
}
