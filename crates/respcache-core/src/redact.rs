//! [`redact_url`]: a backend URL made safe to print in errors, logs and
//! `Debug` output — no password, no secret-looking query value.

/// Query option names (lowercase, `_` and `-` removed) whose values are
/// hidden wherever they appear in the name.
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "signature",
    "credential",
    "apikey",
    "accesskey",
    "sessionkey",
    "privatekey",
    "authmechanismproperties",
];

/// Query option names (lowercase, `_` and `-` removed) hidden when they
/// are the whole name.
const SECRET_NAMES: &[&str] = &["pass", "key", "sig", "auth"];

/// Whether a query option called `name` carries a secret (`password`,
/// `aws_secret_access_key`, `X-Amz-Security-Token`, `sig`, ...).
///
/// ```
/// use respcache_core::redact::is_secret_option;
/// assert!(is_secret_option("aws_secret_access_key"));
/// assert!(is_secret_option("X-Amz-Security-Token"));
/// assert!(!is_secret_option("region"));
/// ```
pub fn is_secret_option(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_NAMES.contains(&folded.as_str()) || SECRET_PARTS.iter().any(|p| folded.contains(p))
}

/// `url` with its password and every secret-looking query value
/// ([`is_secret_option`]) replaced by `***`. It works on text that is not
/// a valid URL too: with no `scheme://`, everything before an `@` that
/// comes before the path is hidden.
///
/// ```
/// use respcache_core::redact::redact_url;
/// assert_eq!(redact_url("redis://user:hunter2@host:6379/0"), "redis://user:***@host:6379/0");
/// assert_eq!(redact_url("redis://:hunter2@host"), "redis://:***@host");
/// assert_eq!(
///     redact_url("dynamodb://t?region=x&aws_secret_access_key=abc"),
///     "dynamodb://t?region=x&aws_secret_access_key=***"
/// );
/// assert_eq!(redact_url("sqlite://:pw@/x.sqlite"), "sqlite://:***@/x.sqlite");
/// assert_eq!(redact_url("user:pw@host"), "***@host");
/// assert_eq!(redact_url("sqlite:///tmp/cache.sqlite"), "sqlite:///tmp/cache.sqlite");
/// ```
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = redact_authority(before_query);
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    out
}

/// Hides the password of `scheme://user:password@host...`, or all of
/// `anything@` when there is no `://`.
fn redact_authority(text: &str) -> String {
    match text.find("://") {
        Some(scheme_end) => {
            let start = scheme_end + 3;
            let rest = &text[start..];
            let end = rest.find(['/', '#']).unwrap_or(rest.len());
            let Some(at) = rest[..end].rfind('@') else {
                return text.to_owned();
            };
            let userinfo = &rest[..at];
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            format!("{}{user}{}", &text[..start], &rest[at..])
        }
        None => {
            let end = text.find('/').unwrap_or(text.len());
            match text[..end].rfind('@') {
                Some(at) => format!("***{}", &text[at..]),
                None => text.to_owned(),
            }
        }
    }
}

fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_secret_option(name) => {
                out.push_str(name);
                out.push_str("=***");
            }
            // A URL as a value (`endpoint=http://user:pw@host`): its own
            // password; percent-encoded with an '@', all of it.
            Some((name, value)) if value.contains("://") => {
                out.push_str(name);
                out.push('=');
                out.push_str(&redact_authority(value));
            }
            Some((name, value)) if value.to_ascii_lowercase().contains("%40") => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_secret_options_are_hidden() {
        for (url, expected) in [
            (
                "mongodb://u:p%40ss@h1:1,h2:2/db?replicaSet=rs",
                "mongodb://u:***@h1:1,h2:2/db?replicaSet=rs",
            ),
            (
                "mongodb+srv://c.example.net/?x=a@b",
                "mongodb+srv://c.example.net/?x=a@b",
            ),
            ("mongodb://user@h/", "mongodb://user@h/"),
            (
                "rediss://:pw@h:1/4?command_timeout_ms=20",
                "rediss://:***@h:1/4?command_timeout_ms=20",
            ),
            (
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc",
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
            ),
            (
                "dynamodb://t?endpoint=http://k:s@e:8000",
                "dynamodb://t?endpoint=http://k:***@e:8000",
            ),
            (
                "dynamodb://t?endpoint=http%3A%2F%2Fk%3As%40e",
                "dynamodb://t?endpoint=***",
            ),
            (
                "dynamodb://t?endpoint=http%3A%2F%2Fe%3A8000",
                "dynamodb://t?endpoint=http%3A%2F%2Fe%3A8000",
            ),
            (
                "dynamodb://t?token=abc&region=r",
                "dynamodb://t?token=***&region=r",
            ),
            ("weird://u:pw@ho st", "weird://u:***@ho st"),
            ("", ""),
            ("just-a-path", "just-a-path"),
        ] {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn an_endpoint_alone_is_redacted_too() {
        assert_eq!(redact_url("http://k:s@e:8000"), "http://k:***@e:8000");
    }
}
