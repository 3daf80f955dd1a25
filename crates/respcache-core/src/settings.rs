//! [`RepositorySettings`]: how one endpoint family is cached — its name, the
//! key fields, how a request becomes a key, how a payload is named and which
//! codec stores it — and [`TemplateSettings`], a ready-made implementation
//! from a URL path template.

use std::fmt;
use std::sync::Arc;

use http::Method;

use crate::codec::Codec;
use crate::error::{Error, ErrorKind, Result};
use crate::key::{FieldKind, Key, KeyPart, KeySchema};
use crate::name::Name;
use crate::request::Request;
use crate::time::Expiry;

/// Describes one repository: an endpoint family such as `/v1/tracks/{id}`
/// whose answers are payloads of type `P`.
///
/// Implement it by hand for full control, or use [`TemplateSettings`].
pub trait RepositorySettings<P>: Send + Sync + 'static {
    /// The repository's name (validated as a [`Name`] when the cache connects).
    fn name(&self) -> &str;

    /// The key fields after the method.
    fn fields(&self) -> &KeySchema;

    /// The key for `request`, or `None` when the request is not cached
    /// (wrong method, a missing or malformed part).
    fn key(&self, request: &Request) -> Option<Key>;

    /// A human-readable name for a payload (e.g. a track's title).
    fn name_of(&self, _payload: &P) -> Option<String> {
        None
    }

    /// The codec that stores payloads.
    fn codec(&self) -> &dyn Codec<P>;

    /// How long entries stay fresh; `None` uses the cache's default.
    fn expiry(&self) -> Option<Expiry> {
        None
    }
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Field(usize),
}

type NameFn<P> = Arc<dyn Fn(&P) -> Option<String> + Send + Sync>;

/// Settings built from a path template such as `/{version}/tracks/{id}`.
///
/// Each `{field}` placeholder is a text key field (`{field:int}` an integer
/// one); literal segments must match exactly and the path must have exactly
/// as many segments as the template. Only the allowed methods (default
/// `GET`) are cached.
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
pub struct TemplateSettings<P> {
    name: String,
    template: String,
    schema: KeySchema,
    segments: Vec<Segment>,
    query_fields: Vec<String>,
    methods: Vec<Method>,
    codec: Arc<dyn Codec<P>>,
    name_of: Option<NameFn<P>>,
    expiry: Option<Expiry>,
}

impl<P> TemplateSettings<P> {
    /// Settings named `name` (validated) for paths matching `template`.
    pub fn new(name: &str, template: &str, codec: impl Codec<P>) -> Result<Self> {
        Name::new(name)?;
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Configuration,
                format!("path template {template:?}: {why}"),
            )
        };
        let path = template
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'"))?;
        let mut fields: Vec<(String, FieldKind)> = Vec::new();
        let mut segments = Vec::new();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (field, kind) = match inner.split_once(':') {
                    None | Some((_, "text")) => {
                        (inner.split(':').next().unwrap_or(inner), FieldKind::Text)
                    }
                    Some((f, "int")) => (f, FieldKind::Integer),
                    Some((_, other)) => {
                        return Err(bad(&format!(
                            "unknown field type {other:?} (use text or int)"
                        )));
                    }
                };
                segments.push(Segment::Field(fields.len()));
                fields.push((field.to_owned(), kind));
            } else if seg.contains(['{', '}']) {
                return Err(bad(&format!(
                    "segment {seg:?} mixes text and a placeholder"
                )));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        let schema = KeySchema::new(fields.iter().map(|(n, k)| (n.as_str(), *k)))?;
        Ok(TemplateSettings {
            name: name.to_owned(),
            template: template.to_owned(),
            schema,
            segments,
            query_fields: Vec::new(),
            methods: vec![Method::GET],
            codec: Arc::new(codec),
            name_of: None,
            expiry: None,
        })
    }

    /// Adds a key field read from the query parameter `param`; a request
    /// without it is not cached.
    pub fn with_query_field(mut self, param: &str, kind: FieldKind) -> Result<Self> {
        let mut fields: Vec<(String, FieldKind)> = self
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().to_owned(), f.kind()))
            .collect();
        fields.push((param.to_owned(), kind));
        self.schema = KeySchema::new(fields.iter().map(|(n, k)| (n.as_str(), *k)))?;
        self.query_fields.push(param.to_owned());
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

    fn field_kind(&self, index: usize) -> FieldKind {
        self.schema
            .fields()
            .get(index)
            .map_or(FieldKind::Text, |f| f.kind())
    }
}

fn parse_part(text: &str, kind: FieldKind) -> Option<KeyPart> {
    match kind {
        FieldKind::Text => Some(KeyPart::Text(text.to_owned())),
        FieldKind::Integer => parse_canonical_int(text).map(KeyPart::Int),
    }
}

/// Only the canonical decimal form of an integer: no `+`, no leading zeros,
/// no `-0`; so `/albums/042` and `/albums/42` never share a key.
fn parse_canonical_int(text: &str) -> Option<i64> {
    let value: i64 = text.parse().ok()?;
    (value.to_string() == text).then_some(value)
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
        let mut parts = vec![None; self.schema.fields().len()];
        for (seg, tpl) in segs.iter().zip(&self.segments) {
            match tpl {
                Segment::Literal(lit) if lit == seg => {}
                Segment::Literal(_) => return None,
                Segment::Field(i) => {
                    let decoded = percent_decode(seg)?;
                    *parts.get_mut(*i)? = Some(parse_part(&decoded, self.field_kind(*i))?);
                }
            }
        }
        let path_fields = self.schema.fields().len() - self.query_fields.len();
        for (offset, param) in self.query_fields.iter().enumerate() {
            let value = request
                .url()
                .query_pairs()
                .find(|(k, _)| k == param.as_str())
                .map(|(_, v)| v.into_owned())?;
            let i = path_fields + offset;
            *parts.get_mut(i)? = Some(parse_part(&value, self.field_kind(i))?);
        }
        let parts: Option<Vec<KeyPart>> = parts.into_iter().collect();
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
        for t in ["no-slash", "/a/{id:float}", "/a/x{id}"] {
            let e = TemplateSettings::<String>::new("a", t, TextCodec)
                .err()
                .map(|e| e.kind());
            assert_eq!(e, Some(ErrorKind::Configuration), "{t}");
        }
        let e = TemplateSettings::<String>::new("a b", "/x", TextCodec)
            .err()
            .map(|e| e.kind());
        assert_eq!(e, Some(ErrorKind::InvalidName));
    }
}
