//! Secrets kept out of every line the command prints on stderr: the
//! values of query parameters whose names say they are secret (`password`,
//! `token`, `api_key`, `secret`, …), and any text equal to a password or
//! secret parameter of a URL given on the command line, wherever an error
//! message repeats it. Which names are secret, and how a URL is redacted,
//! is the core's rule (`respcache_core::redact`); this module adds the
//! scrubbing of free text.

use std::sync::OnceLock;

use url::Url;

/// The redactor for this run's command line.
static ACTIVE: OnceLock<Redactor> = OnceLock::new();

/// Makes [`scrub`] hide the secrets of `urls` (the command line's URLs).
pub(crate) fn install(urls: &[&str]) {
    let _ = ACTIVE.set(Redactor::for_urls(urls.iter().copied()));
}

/// `text` without this run's secrets (see [`Redactor::scrub`]).
pub(crate) fn scrub(text: &str) -> String {
    match ACTIVE.get() {
        Some(r) => r.scrub(text),
        None => query_values(text),
    }
}

/// What stands in for a secret.
const HIDDEN: &str = "***";

/// Secrets shorter than this are not searched for in free text (a
/// one-letter password would blank out every message).
const MIN_SECRET_LEN: usize = 3;

/// Removes known secrets from messages.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the secrets in `urls` (the command line's URLs).
    pub(crate) fn for_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets = Vec::new();
        for text in urls {
            secrets.extend(secrets_of(text));
        }
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
        // Longest first, so a secret containing another goes whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every known secret and every secret-looking query
    /// parameter value replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), HIDDEN);
            }
        }
        query_values(&out)
    }
}

/// The user, password and secret query values of the URL `text`, raw and
/// percent-decoded.
fn secrets_of(text: &str) -> Vec<String> {
    let Ok(parsed) = Url::parse(text) else {
        // Not a URL: whatever sits between "://" and '@'.
        return match (text.find("://"), text.rfind('@')) {
            (Some(start), Some(at)) if at > start + 3 => {
                let userinfo = &text[start + 3..at];
                let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
                vec![password.to_owned()]
            }
            _ => Vec::new(),
        };
    };
    let mut found = Vec::new();
    if let Some(password) = parsed.password() {
        found.push(password.to_owned());
    }
    for (name, value) in parsed.query_pairs() {
        if secret_name(&name) {
            found.push(value.into_owned());
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .filter_map(|s| percent_decode(s))
        .filter(|d| !found.contains(d))
        .collect();
    found.extend(decoded);
    found
}

/// Whether a query parameter's name marks its value as secret: the core's
/// rule, so the command and the backends agree.
fn secret_name(name: &str) -> bool {
    respcache_core::redact::is_secret_option(name)
}

/// `text` with the values of secret-looking `name=value` pairs that follow
/// a `?`, `&` or `;` replaced by `***`.
fn query_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['?', '&', ';']) {
        let (head, tail) = rest.split_at(i + 1);
        out.push_str(head);
        rest = tail;
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.%[]".contains(c)))
            .unwrap_or(rest.len());
        if rest[name_len..].starts_with('=') && secret_name(&rest[..name_len]) {
            out.push_str(&rest[..=name_len]);
            rest = &rest[name_len + 1..];
            let value_len = rest
                .find(|c: char| "&#;\"' \t<>)".contains(c))
                .unwrap_or(rest.len());
            if value_len > 0 {
                out.push_str(HIDDEN);
            }
            rest = &rest[value_len..];
        }
    }
    out.push_str(rest);
    out
}

/// `text` with `%XX` sequences decoded, when that changes it and gives
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_vanish_from_free_text() {
        let r = Redactor::for_urls([
            "redis://u:p%40ss@h/0?cache=c",
            "sqlite:///tmp/x.sqlite?cache=c&password=hunter2",
            "http://:ab@h/",
        ]);
        let text = r.scrub("auth failed for p@ss and p%40ss; hunter2 rejected; ab stays");
        assert_eq!(text, "auth failed for *** and ***; *** rejected; ab stays");
        assert_eq!(
            r.scrub("GET http://h/x?page=1&signature=abc&n=2: refused"),
            "GET http://h/x?page=1&signature=***&n=2: refused"
        );
    }
}
