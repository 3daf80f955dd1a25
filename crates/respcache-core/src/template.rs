//! [`TemplateSettings`]: ready-made [`RepositorySettings`] from a URL path
//! template, query parameters and, optionally, every request header.

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, Method};

use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::header_digest::headers_digest;
use crate::key::{FieldKind, Key, KeyPart, KeySchema};
use crate::name::Name;
use crate::request::Request;
use crate::settings::RepositorySettings;
use crate::time::Expiry;

/// The name of the key field [`TemplateSettings::with_all_headers`] adds.
pub const HEADERS_FIELD: &str = "headers";

/// What one path segment of the template accepts.
#[derive(Clone, Debug)]
enum Segment {
    /// Exactly this text.
    Literal(String),
    /// The value of the declared key field of this index.
    Field(usize, Accepts),
    /// Any value `Accepts` lets through; not part of the key.
    Any(Accepts),
}

/// The values a variable segment accepts.
#[derive(Clone, Debug)]
enum Accepts {
    /// Any text.
    Text,
    /// A canonical decimal integer.
    Int,
    /// One of these texts.
    OneOf(Vec<String>),
}

impl Accepts {
    fn kind(&self) -> FieldKind {
        match self {
            Accepts::Int => FieldKind::Integer,
            Accepts::Text | Accepts::OneOf(_) => FieldKind::Text,
        }
    }

    /// The key part for the (decoded) segment `text`, `None` when it does
    /// not fit.
    fn part(&self, text: &str) -> Option<KeyPart> {
        match self {
            Accepts::Text => Some(KeyPart::Text(text.to_owned())),
            Accepts::Int => parse_canonical_int(text).map(KeyPart::Int),
            Accepts::OneOf(choices) => choices
                .iter()
                .any(|c| c == text)
                .then(|| KeyPart::Text(text.to_owned())),
        }
    }
}

/// Where a key field's value comes from.
#[derive(Clone, Debug)]
enum Source {
    /// A path segment (read while the segments are matched).
    Path,
    /// A query parameter, with the value used when the request lacks it.
    Query {
        param: String,
        default: Option<KeyPart>,
    },
    /// The digest of every request header but these.
    Headers { except: Vec<HeaderName> },
}

/// One key field, in the order it was declared.
#[derive(Clone, Debug)]
struct Declared {
    name: String,
    kind: FieldKind,
    source: Source,
}

type NameFn<P> = Arc<dyn Fn(&P) -> Option<String> + Send + Sync>;

/// Settings built from a path template such as `/{version}/tracks/{id}`.
///
/// The template's segments, split at `/`:
///
/// | segment | matches | key field |
/// |---|---|---|
/// | `tracks` | exactly `tracks` | – |
/// | `{id}` or `{id:text}` | any segment | `id`, text |
/// | `{year:int}` | a canonical integer (`42`, not `042` or `+42`) | `year`, integer |
/// | `{kind:albums\|tracks}` | one of the texts | `kind`, text |
/// | `*` or `{_}` | any segment | none |
/// | `{_kind}`, `{_n:int}`, `{_kind:albums\|tracks}` | as above, named for the reader | none |
///
/// A path must have exactly as many segments as the template; segments are
/// percent-decoded before they are matched. A segment matched by `*` or
/// `{_…}` does not separate entries: `/v1/albums/7` and `/v1/tracks/7`
/// share one under `/v1/*/{id}`. Repositories are tried in order, so list
/// narrow templates before broad ones.
///
/// Key fields are the path's fields in path order, then the fields of
/// [`with_query_field`](Self::with_query_field) and
/// [`with_query_field_or`](Self::with_query_field_or) in the order they
/// were added, then [`with_all_headers`](Self::with_all_headers)' field;
/// [`with_key_order`](Self::with_key_order) orders them otherwise. Only
/// the allowed methods (default `GET`) are cached.
///
/// ```
/// use respcache_core::{JsonCodec, RepositorySettings, Request, TemplateSettings};
///
/// let tracks = TemplateSettings::<serde_json::Value>::new("tracks", "/{version}/tracks/{id}", JsonCodec)?
///     .with_name_of(|v| v["name"].as_str().map(str::to_owned));
/// let key = tracks.key(&Request::get("https://api.example.com/v1/tracks/7ouMYWpwJ422jRcDASZB7P")?);
/// assert_eq!(key.map(|k| k.encode()).as_deref(), Some("3:GET|2:v1|22:7ouMYWpwJ422jRcDASZB7P"));
/// assert!(tracks.key(&Request::get("https://api.example.com/v1/tracks")?).is_none());
/// # Ok::<(), respcache_core::Error>(())
/// ```
///
/// The seed's (aiorequestful's) Spotify settings, with no hand-written
/// [`RepositorySettings`]: single objects keyed by their ID whatever their
/// kind, and pages of tracks keyed by `(id, offset, limit)`, Spotify's
/// defaults standing in for a missing `offset` or `limit`:
///
/// ```
/// use respcache_core::{JsonCodec, Key, RepositorySettings, Request, TemplateSettings};
/// use serde_json::Value;
///
/// let objects = TemplateSettings::<Value>::new(
///     "objects",
///     "/v1/{_kind:tracks|albums|artists}/{id}",
///     JsonCodec,
/// )?;
/// let pages = TemplateSettings::<Value>::new("pages", "/v1/{_kind:albums|playlists}/{id}/tracks", JsonCodec)?
///     .with_query_field_or("limit", 50)?
///     .with_query_field_or("offset", 0)?
///     .with_key_order(["id", "offset", "limit"])?;
///
/// let get = |url: &str| Request::get(&format!("https://api.spotify.com{url}"));
/// assert_eq!(
///     objects.key(&get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy")?),
///     Some(Key::new("GET", ["4aawyAB9vmqN3uQ7FjRGTy".into()])),
/// );
/// assert!(objects.key(&get("/v1/shows/4aawyAB9vmqN3uQ7FjRGTy")?).is_none());
/// assert_eq!(
///     pages.key(&get("/v1/playlists/37i9dQZF1DXcBWIGoYBM5M/tracks?limit=20&offset=40")?),
///     Some(Key::new("GET", ["37i9dQZF1DXcBWIGoYBM5M".into(), 40.into(), 20.into()])),
/// );
/// assert_eq!(
///     pages.key(&get("/v1/albums/4aawyAB9vmqN3uQ7FjRGTy/tracks")?).map(|k| k.encode()),
///     Some("3:GET|22:4aawyAB9vmqN3uQ7FjRGTy|#0|#50".to_owned()),
/// );
/// let fields: Vec<&str> = pages.fields().fields().iter().map(|f| f.name()).collect();
/// assert_eq!(fields, ["id", "offset", "limit"]);
/// # Ok::<(), respcache_core::Error>(())
/// ```
pub struct TemplateSettings<P> {
    name: String,
    template: String,
    declared: Vec<Declared>,
    /// Key position → index in `declared`.
    order: Vec<usize>,
    /// Whether `with_key_order` fixed `order`.
    ordered: bool,
    schema: KeySchema,
    segments: Vec<Segment>,
    methods: Vec<Method>,
    codec: Arc<dyn Codec<P>>,
    name_of: Option<NameFn<P>>,
    expiry: Option<Expiry>,
}

impl<P> TemplateSettings<P> {
    /// Settings named `name` (validated) for paths matching `template`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`](ErrorKind::InvalidName) for an invalid repository
    /// or field name or a field declared twice;
    /// [`Configuration`](ErrorKind::Configuration) for a template that does
    /// not start with `/`, an unknown field type, or a segment that mixes
    /// text and a placeholder.
    pub fn new(name: &str, template: &str, codec: impl Codec<P>) -> Result<Self> {
        Name::new(name)?;
        let bad = |why: String| {
            Error::new(
                ErrorKind::Configuration,
                format!("path template {template:?}: {why}"),
            )
        };
        let path = template
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'".to_owned()))?;
        let mut declared = Vec::new();
        let mut segments = Vec::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if seg == "*" {
                segments.push(Segment::Any(Accepts::Text));
            } else if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (field, spec) = inner.split_once(':').unwrap_or((inner, "text"));
                let accepts = match spec {
                    "text" => Accepts::Text,
                    "int" => Accepts::Int,
                    alternatives if alternatives.contains('|') => {
                        let choices: Vec<String> =
                            alternatives.split('|').map(str::to_owned).collect();
                        if choices
                            .iter()
                            .any(|c| c.is_empty() || c.contains(['{', '}']))
                        {
                            return Err(bad(format!(
                                "segment {seg:?} has an empty or malformed alternative"
                            )));
                        }
                        Accepts::OneOf(choices)
                    }
                    other => {
                        return Err(bad(format!(
                            "unknown field type {other:?} in {seg:?} (use text, int, or alternatives like a|b)"
                        )));
                    }
                };
                if field.starts_with('_') {
                    segments.push(Segment::Any(accepts));
                } else {
                    segments.push(Segment::Field(declared.len(), accepts.clone()));
                    declared.push(Declared {
                        name: field.to_owned(),
                        kind: accepts.kind(),
                        source: Source::Path,
                    });
                }
            } else if seg.contains(['{', '}']) {
                return Err(bad(format!("segment {seg:?} mixes text and a placeholder")));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        let order = (0..declared.len()).collect();
        let mut settings = TemplateSettings {
            name: name.to_owned(),
            template: template.to_owned(),
            declared,
            order,
            ordered: false,
            schema: KeySchema::default(),
            segments,
            methods: vec![Method::GET],
            codec: Arc::new(codec),
            name_of: None,
            expiry: None,
        };
        settings.schema = settings.build_schema()?;
        Ok(settings)
    }

    /// Adds a key field read from the query parameter `param` (also the
    /// field's name); a request without it is not cached, nor one whose
    /// value does not fit `kind` (an integer must be canonical).
    ///
    /// # Errors
    ///
    /// [`InvalidName`](ErrorKind::InvalidName) for an invalid or repeated
    /// field name; [`Configuration`](ErrorKind::Configuration) after
    /// [`with_key_order`](Self::with_key_order).
    pub fn with_query_field(self, param: &str, kind: FieldKind) -> Result<Self> {
        self.declare(
            param,
            kind,
            Source::Query {
                param: param.to_owned(),
                default: None,
            },
        )
    }

    /// Adds a key field read from the query parameter `param`, `default`
    /// when the request lacks it (so `?offset=0` and no `offset` share one
    /// entry). The field's type is the default's: `with_query_field_or("limit", 50)`
    /// is an integer field.
    ///
    /// # Errors
    ///
    /// As [`with_query_field`](Self::with_query_field).
    pub fn with_query_field_or(self, param: &str, default: impl Into<KeyPart>) -> Result<Self> {
        let default = default.into();
        self.declare(
            param,
            default.kind(),
            Source::Query {
                param: param.to_owned(),
                default: Some(default),
            },
        )
    }

    /// Puts every request header in the key, as one text field named
    /// [`HEADERS_FIELD`] (`headers`) holding the BLAKE3 digest of the
    /// headers' canonical form (names lowercased and sorted, a repeated
    /// header's values joined in order; see
    /// [`header_digest`](crate::header_digest) for the form and the
    /// hop-by-hop and cache-control headers left out, and why). Requests
    /// that differ in any other header are different entries. One field,
    /// whatever the headers, so typed schemas (SQLite's columns) stay fixed.
    ///
    /// ```
    /// use respcache_core::http::{HeaderValue, header};
    /// use respcache_core::{RepositorySettings, Request, TemplateSettings, TextCodec};
    ///
    /// let s = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?.with_all_headers()?;
    /// let en = Request::get("http://x/a/1")?
    ///     .with_header(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
    /// let sv = Request::get("http://x/a/1")?
    ///     .with_header(header::ACCEPT_LANGUAGE, HeaderValue::from_static("sv"));
    /// assert_ne!(s.key(&en), s.key(&sv));
    /// # Ok::<(), respcache_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidName`](ErrorKind::InvalidName) when the template already
    /// has a field named `headers`; [`Configuration`](ErrorKind::Configuration)
    /// after [`with_key_order`](Self::with_key_order).
    pub fn with_all_headers(self) -> Result<Self> {
        self.with_all_headers_except(std::iter::empty::<&str>())
    }

    /// [`with_all_headers`](Self::with_all_headers), leaving out the
    /// headers named in `except` too (case-insensitive) — headers that
    /// change on every request without changing the answer, such as
    /// `x-request-id` or `traceparent`.
    ///
    /// # Errors
    ///
    /// As [`with_all_headers`](Self::with_all_headers), and
    /// [`Configuration`](ErrorKind::Configuration) for a name that is not a
    /// valid header name.
    pub fn with_all_headers_except<I>(self, except: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut names = Vec::new();
        for name in except {
            let name = name.as_ref();
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| self.config_error(format!("{name:?} is not a header name: {e}")))?;
            names.push(parsed);
        }
        self.declare(
            HEADERS_FIELD,
            FieldKind::Text,
            Source::Headers { except: names },
        )
    }

    /// Orders the key fields: `names` lists every field — path, query and
    /// headers fields alike — exactly once, in key order. Call it last: a
    /// field added after it is a configuration error. Without it, fields
    /// follow the path, then the order they were added; changing the order
    /// of an existing repository changes its keys (entries stored before
    /// are no longer found).
    ///
    /// # Errors
    ///
    /// [`Configuration`](ErrorKind::Configuration), naming the template and
    /// the fields, when a name is not a field, is listed twice, or a field
    /// is missing.
    pub fn with_key_order<I>(mut self, names: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut order: Vec<usize> = Vec::new();
        for name in names {
            let name = name.as_ref();
            let Some(index) = self.declared.iter().position(|d| d.name == name) else {
                return Err(self.config_error(format!(
                    "with_key_order names {name:?}, which is not a key field (fields: {})",
                    self.field_list()
                )));
            };
            if order.contains(&index) {
                return Err(self.config_error(format!("with_key_order names {name:?} twice")));
            }
            order.push(index);
        }
        let missing: Vec<&str> = (0..self.declared.len())
            .filter(|i| !order.contains(i))
            .filter_map(|i| self.declared.get(i).map(|d| d.name.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(self.config_error(format!(
                "with_key_order leaves out {} (every field must be named once; fields: {})",
                missing.join(", "),
                self.field_list()
            )));
        }
        self.order = order;
        self.ordered = true;
        self.schema = self.build_schema()?;
        Ok(self)
    }

    /// The methods that are cached (default: `GET`).
    pub fn with_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// How a payload is named.
    pub fn with_name_of(
        mut self,
        f: impl Fn(&P) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.name_of = Some(Arc::new(f));
        self
    }

    /// How long this repository's entries stay fresh.
    pub fn with_expiry(mut self, expiry: impl Into<Expiry>) -> Self {
        self.expiry = Some(expiry.into());
        self
    }

    /// Adds a declared field at the end of the key order.
    fn declare(mut self, name: &str, kind: FieldKind, source: Source) -> Result<Self> {
        if self.ordered {
            return Err(self.config_error(format!(
                "field {name:?} is added after with_key_order; add every field first"
            )));
        }
        self.order.push(self.declared.len());
        self.declared.push(Declared {
            name: name.to_owned(),
            kind,
            source,
        });
        self.schema = self.build_schema()?;
        Ok(self)
    }

    /// The key schema: the declared fields in key order.
    fn build_schema(&self) -> Result<KeySchema> {
        let fields: Vec<(&str, FieldKind)> = self
            .order
            .iter()
            .filter_map(|&i| self.declared.get(i))
            .map(|d| (d.name.as_str(), d.kind))
            .collect();
        KeySchema::new(fields).map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "path template {:?} of repository {:?}: {}",
                    self.template,
                    self.name,
                    e.message()
                ),
            )
        })
    }

    fn config_error(&self, why: String) -> Error {
        Error::new(
            ErrorKind::Configuration,
            format!(
                "path template {:?} of repository {:?}: {why}",
                self.template, self.name
            ),
        )
    }

    fn field_list(&self) -> String {
        let names: Vec<&str> = self.declared.iter().map(|d| d.name.as_str()).collect();
        names.join(", ")
    }
}

/// Only the canonical decimal form of an integer: no `+`, no leading zeros,
/// no `-0`; so `/albums/042` and `/albums/42` never share a key.
fn parse_canonical_int(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
}

fn parse_part(text: &str, kind: FieldKind) -> Option<KeyPart> {
    match kind {
        FieldKind::Text => Some(KeyPart::Text(text.to_owned())),
        FieldKind::Integer => parse_canonical_int(text).map(KeyPart::Int),
    }
}

impl<P: 'static> RepositorySettings<P> for TemplateSettings<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn fields(&self) -> &KeySchema {
        &self.schema
    }

    fn key(&self, request: &Request) -> Option<Key> {
        if !self.methods.contains(request.method()) {
            return None;
        }
        let path = request.url().path();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segs.len() != self.segments.len() {
            return None;
        }
        let mut values: Vec<Option<KeyPart>> = vec![None; self.declared.len()];
        for (seg, tpl) in segs.iter().zip(&self.segments) {
            match tpl {
                Segment::Literal(lit) if lit == seg => {}
                Segment::Literal(_) => return None,
                Segment::Field(i, accepts) => {
                    *values.get_mut(*i)? = Some(accepts.part(&percent_decode(seg)?)?);
                }
                Segment::Any(accepts) => {
                    accepts.part(&percent_decode(seg)?)?;
                }
            }
        }
        for (value, declared) in values.iter_mut().zip(&self.declared) {
            match &declared.source {
                Source::Path => {}
                Source::Query { param, default } => {
                    let found = request
                        .url()
                        .query_pairs()
                        .find(|(k, _)| k == param.as_str())
                        .map(|(_, v)| v);
                    *value = match found {
                        Some(text) => Some(parse_part(&text, declared.kind)?),
                        None => Some(default.clone()?),
                    };
                }
                Source::Headers { except } => {
                    *value = Some(KeyPart::Text(headers_digest(request.headers(), except)));
                }
            }
        }
        let parts: Option<Vec<KeyPart>> = self
            .order
            .iter()
            .map(|&i| values.get_mut(i).and_then(Option::take))
            .collect();
        Some(Key::new(request.method().as_str(), parts?))
    }

    fn name_of(&self, payload: &P) -> Option<String> {
        self.name_of.as_ref().and_then(|f| f(payload))
    }

    fn codec(&self) -> &dyn Codec<P> {
        self.codec.as_ref()
    }

    fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl<P: 'static> fmt::Debug for TemplateSettings<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSettings")
            .field("name", &self.name)
            .field("template", &self.template)
            .field("schema", &self.schema)
            .field("methods", &self.methods)
            .field("codec", &self.codec.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::TextCodec;
    use crate::key::Field;
    use http::{HeaderValue, header};

    fn kind_of<T>(r: Result<T>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind())
    }

    #[test]
    fn typed_fields_and_query_fields() -> Result<()> {
        let s = TemplateSettings::<String>::new("albums", "/v1/albums/{id:int}", TextCodec)?
            .with_query_field("market", FieldKind::Text)?;
        let k = s.key(&Request::get("http://x/v1/albums/42?market=SE")?);
        assert_eq!(k, Some(Key::new("GET", [42i64.into(), "SE".into()])));
        assert!(s.key(&Request::get("http://x/v1/albums/42")?).is_none());
        assert!(
            s.key(&Request::get("http://x/v1/albums/abc?market=SE")?)
                .is_none()
        );
        assert!(
            s.key(&Request::get("http://x/v2/albums/42?market=SE")?)
                .is_none()
        );
        let post = Request::parse(Method::POST, "http://x/v1/albums/42?market=SE")?;
        assert!(s.key(&post).is_none());
        Ok(())
    }

    #[test]
    fn percent_encoded_segments_are_decoded() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?;
        let k = s.key(&Request::get("http://x/a/caf%C3%A9%20bar")?);
        assert_eq!(k, Some(Key::new("GET", ["café bar".into()])));
        assert!(s.key(&Request::get("http://x/a/%+1")?).is_none());
        Ok(())
    }

    #[test]
    fn bad_templates_are_configuration_errors() {
        for t in [
            "no-slash",
            "/a/{id:float}",
            "/a/x{id}",
            "/a/{_:float}",
            "/a/{kind:a||b}",
            "/a/{kind:|b}",
        ] {
            let e = kind_of(TemplateSettings::<String>::new("a", t, TextCodec));
            assert_eq!(e, Some(ErrorKind::Configuration), "{t}");
        }
        let e = kind_of(TemplateSettings::<String>::new("a b", "/x", TextCodec));
        assert_eq!(e, Some(ErrorKind::InvalidName));
        let e = kind_of(TemplateSettings::<String>::new(
            "a",
            "/{id}/{id}",
            TextCodec,
        ));
        assert_eq!(e, Some(ErrorKind::InvalidName));
    }

    /// Without the new options keys encode as they always did.
    #[test]
    fn the_default_order_keeps_the_old_encodings() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/{version}/x/{id:int}", TextCodec)?
            .with_query_field("market", FieldKind::Text)?
            .with_query_field("page", FieldKind::Integer)?;
        let k = s.key(&Request::get("http://x/v1/x/7?page=2&market=SE")?);
        assert_eq!(
            k.map(|k| k.encode()).as_deref(),
            Some("3:GET|2:v1|#7|2:SE|#2")
        );
        let names: Vec<&str> = s.fields().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["version", "id", "market", "page"]);
        Ok(())
    }

    #[test]
    fn wildcards_match_without_entering_the_key() -> Result<()> {
        for t in [
            "/*/tracks/{id}",
            "/{_}/tracks/{id}",
            "/{_version}/tracks/{id}",
        ] {
            let s = TemplateSettings::<String>::new("a", t, TextCodec)?;
            assert_eq!(s.fields().fields().len(), 1, "{t}");
            let v1 = s.key(&Request::get("http://x/v1/tracks/7")?);
            let v2 = s.key(&Request::get("http://x/v2/tracks/7")?);
            assert_eq!(v1, Some(Key::new("GET", ["7".into()])), "{t}");
            assert_eq!(v1, v2, "{t}");
            // Still one segment, and the literal still counts.
            assert!(s.key(&Request::get("http://x/tracks/7")?).is_none(), "{t}");
            assert!(
                s.key(&Request::get("http://x/v1/albums/7")?).is_none(),
                "{t}"
            );
        }
        Ok(())
    }

    #[test]
    fn typed_and_alternative_wildcards_and_fields() -> Result<()> {
        let s = TemplateSettings::<String>::new(
            "a",
            "/{_v:int}/{_kind:albums|tracks}/{id}",
            TextCodec,
        )?;
        assert!(s.key(&Request::get("http://x/1/albums/7")?).is_some());
        assert!(s.key(&Request::get("http://x/01/albums/7")?).is_none());
        assert!(s.key(&Request::get("http://x/v1/albums/7")?).is_none());
        assert!(s.key(&Request::get("http://x/1/shows/7")?).is_none());
        let keyed = TemplateSettings::<String>::new("b", "/{kind:albums|tracks}/{id}", TextCodec)?;
        assert_eq!(
            keyed.key(&Request::get("http://x/tracks/7")?),
            Some(Key::new("GET", ["tracks".into(), "7".into()]))
        );
        assert!(keyed.key(&Request::get("http://x/shows/7")?).is_none());
        // Alternatives are compared after percent-decoding.
        let spaced = TemplateSettings::<String>::new("c", "/{_k:a b|c}/{id}", TextCodec)?;
        assert!(spaced.key(&Request::get("http://x/a%20b/7")?).is_some());
        Ok(())
    }

    #[test]
    fn key_order_reorders_fields_and_encodings() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/{market}/albums/{id:int}", TextCodec)?
            .with_query_field("page", FieldKind::Integer)?
            .with_key_order(["id", "page", "market"])?;
        let names: Vec<(&str, FieldKind)> = s
            .fields()
            .fields()
            .iter()
            .map(|f| (f.name(), f.kind()))
            .collect();
        assert_eq!(
            names,
            [
                ("id", FieldKind::Integer),
                ("page", FieldKind::Integer),
                ("market", FieldKind::Text)
            ]
        );
        let k = s.key(&Request::get("http://x/SE/albums/7?page=3")?);
        assert_eq!(k.map(|k| k.encode()).as_deref(), Some("3:GET|#7|#3|2:SE"));
        Ok(())
    }

    #[test]
    fn key_order_errors_name_the_template_and_the_fields() -> Result<()> {
        let base = || {
            TemplateSettings::<String>::new("pages", "/v1/*/{id}", TextCodec)?
                .with_query_field_or("offset", 0)?
                .with_query_field_or("limit", 50)
        };
        let cases: [(&[&str], &str); 4] = [
            (
                &["id", "offset", "size"],
                "\"size\", which is not a key field (fields: id, offset, limit)",
            ),
            (&["id", "offset", "id", "limit"], "names \"id\" twice"),
            (&["id", "offset"], "leaves out limit"),
            (&[], "leaves out id, offset, limit"),
        ];
        for (names, says) in cases {
            let e = base()?.with_key_order(names.iter().copied()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
            let text = e.to_string();
            assert!(text.contains("\"/v1/*/{id}\""), "{text}");
            assert!(text.contains("\"pages\""), "{text}");
            assert!(text.contains(says), "{text}");
        }
        let late = base()?
            .with_key_order(["limit", "offset", "id"])?
            .with_query_field("market", FieldKind::Text)
            .unwrap_err();
        assert_eq!(late.kind(), ErrorKind::Configuration);
        assert!(late.to_string().contains("after with_key_order"), "{late}");
        let late = base()?
            .with_key_order(["limit", "offset", "id"])?
            .with_all_headers();
        assert_eq!(kind_of(late), Some(ErrorKind::Configuration));
        Ok(())
    }

    #[test]
    fn query_defaults_stand_in_for_missing_parameters() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?
            .with_query_field_or("offset", 0)?
            .with_query_field_or("market", "SE")?;
        assert_eq!(
            s.fields().fields().get(1).map(Field::kind),
            Some(FieldKind::Integer)
        );
        let bare = s.key(&Request::get("http://x/a/1")?);
        let explicit = s.key(&Request::get("http://x/a/1?market=SE&offset=0")?);
        assert_eq!(
            bare,
            Some(Key::new("GET", ["1".into(), 0.into(), "SE".into()]))
        );
        assert_eq!(bare, explicit);
        // A present value that does not fit is not replaced by the default.
        assert!(s.key(&Request::get("http://x/a/1?offset=x")?).is_none());
        assert!(s.key(&Request::get("http://x/a/1?offset=00")?).is_none());
        Ok(())
    }

    #[test]
    fn all_headers_are_one_digest_field() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?.with_all_headers()?;
        let names: Vec<&str> = s.fields().fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, ["id", HEADERS_FIELD]);
        let req = |lang: &'static str| -> Result<Request> {
            Ok(Request::get("http://x/a/1")?
                .with_header(header::ACCEPT_LANGUAGE, HeaderValue::from_static(lang)))
        };
        let en = s.key(&req("en")?).unwrap();
        let sv = s.key(&req("sv")?).unwrap();
        assert_ne!(en, sv);
        assert_eq!(s.key(&req("en")?), Some(en.clone()));
        let digest = en.fields().get(1).and_then(KeyPart::as_text).unwrap();
        assert_eq!(digest.len(), 64);
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
        // Revalidation headers the cache adds do not change the key.
        let revalidating = req("en")?
            .with_header(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""))
            .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        assert_eq!(s.key(&revalidating), Some(en));
        // Without the option a header changes nothing.
        let plain = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?;
        assert_eq!(plain.key(&req("en")?), plain.key(&req("sv")?));
        Ok(())
    }

    #[test]
    fn all_headers_except_and_its_errors() -> Result<()> {
        let s = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?
            .with_all_headers_except(["X-Request-Id"])?;
        let req = |id: &'static str| -> Result<Request> {
            Ok(Request::get("http://x/a/1")?.with_header(
                HeaderName::from_static("x-request-id"),
                HeaderValue::from_static(id),
            ))
        };
        assert_eq!(s.key(&req("1")?), s.key(&req("2")?));
        let bad = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?
            .with_all_headers_except(["not a header"]);
        assert_eq!(kind_of(bad), Some(ErrorKind::Configuration));
        let clash =
            TemplateSettings::<String>::new("a", "/a/{headers}", TextCodec)?.with_all_headers();
        let e = clash.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidName);
        assert!(e.to_string().contains("\"/a/{headers}\""), "{e}");
        // Ordered like any other field.
        let ordered = TemplateSettings::<String>::new("a", "/a/{id}", TextCodec)?
            .with_all_headers()?
            .with_key_order(["headers", "id"])?;
        let k = ordered.key(&Request::get("http://x/a/1")?).unwrap();
        assert_eq!(k.fields().get(1), Some(&KeyPart::from("1")));
        Ok(())
    }
}
