//! [`EntryView`]: what the command shows of one stored entry — without its
//! payload, so listings hold little memory.

use respcache::{Entry, KeyPart, KeySchema, Name, Timestamp};
use respcache_http::ResponseMeta;
use serde_json::{Value, json};

use crate::when;

/// One entry as `ls` and `show` print it.
#[derive(Clone, Debug)]
pub(crate) struct EntryView {
    /// The repository it is in.
    pub(crate) repository: String,
    /// `Key::encode()`: what `show` accepts.
    pub(crate) key: String,
    /// The HTTP method part of the key.
    pub(crate) method: String,
    /// The other key parts, named when the schema is known.
    pub(crate) fields: Vec<(Option<String>, KeyPart)>,
    /// The name taken from the payload.
    pub(crate) name: Option<String>,
    /// Fresh at the time the command looked.
    pub(crate) fresh: bool,
    /// When it was stored.
    pub(crate) cached_at: Timestamp,
    /// When it goes stale.
    pub(crate) expires_at: Option<Timestamp>,
    /// The payload's size.
    pub(crate) payload_bytes: usize,
    /// The HTTP metadata's size (0 without).
    pub(crate) meta_bytes: usize,
    /// The URL the HTTP layer recorded.
    pub(crate) url: Option<String>,
    /// The HTTP status the HTTP layer recorded.
    pub(crate) http_status: Option<u16>,
}

impl EntryView {
    /// The view of `entry` in `repository` at `now`.
    pub(crate) fn new(
        repository: &Name,
        schema: Option<&KeySchema>,
        entry: &Entry,
        now: Timestamp,
    ) -> Self {
        let meta = entry.meta.as_deref().and_then(ResponseMeta::decode);
        let fields = entry
            .key
            .fields()
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let name = schema
                    .and_then(|s| s.fields().get(i))
                    .map(|f| f.name().to_owned());
                (name, part.clone())
            })
            .collect();
        EntryView {
            repository: repository.as_str().to_owned(),
            key: entry.key.encode(),
            method: entry.key.method().to_owned(),
            fields,
            name: entry.name.clone(),
            fresh: entry.is_fresh(now),
            cached_at: entry.cached_at,
            expires_at: entry.expires_at,
            payload_bytes: entry.payload.len(),
            meta_bytes: entry.meta.as_ref().map_or(0, |m| m.len()),
            url: meta.as_ref().map(|m| m.url.clone()),
            http_status: meta.as_ref().map(|m| m.status),
        }
    }

    /// `fresh` or `stale`.
    pub(crate) fn status(&self) -> &'static str {
        if self.fresh { "fresh" } else { "stale" }
    }

    /// Payload and metadata together.
    pub(crate) fn bytes(&self) -> usize {
        self.payload_bytes.saturating_add(self.meta_bytes)
    }

    /// The key parts after the method: `id="7ou"`, `page=2`.
    pub(crate) fn fields_text(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(name, part)| {
                let value = match part {
                    KeyPart::Text(s) => format!("{s:?}"),
                    KeyPart::Int(i) => i.to_string(),
                };
                match name {
                    Some(n) => format!("{n}={value}"),
                    None => value,
                }
            })
            .collect();
        parts.join(" ")
    }

    /// One JSON object.
    pub(crate) fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(name, part)| {
                let value = match part {
                    KeyPart::Text(s) => json!(s),
                    KeyPart::Int(i) => json!(i),
                };
                json!({ "name": name, "value": value })
            })
            .collect();
        json!({
            "repository": self.repository,
            "key": self.key,
            "method": self.method,
            "fields": fields,
            "name": self.name,
            "url": self.url,
            "http_status": self.http_status,
            "status": self.status(),
            "cached_at": when::millis(self.cached_at),
            "expires_at": self.expires_at.map(when::millis),
            "cached_at_ms": self.cached_at.as_millis(),
            "expires_at_ms": self.expires_at.map(Timestamp::as_millis),
            "payload_bytes": self.payload_bytes,
            "meta_bytes": self.meta_bytes,
        })
    }
}
