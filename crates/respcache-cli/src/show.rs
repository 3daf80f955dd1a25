//! `respcache show KEY|URL`: one entry in full.
//!
//! A key (`Key::encode()` text, as `ls` prints it) is read with `get` from
//! every repository (or `--repository R`). A URL is matched against the URL
//! the HTTP layer recorded in each entry's metadata, with a scan: entries
//! saved through a `ResponseCache` record no URL and are found by key.

use std::io::Write;

use respcache::futures::StreamExt;
use respcache::url::Url;
use respcache::{Bytes, Key, Select, Timestamp};

use crate::args::ShowArgs;
use crate::cache::Cache;
use crate::failure::{CliResult, Failure};
use crate::view::EntryView;
use crate::when;

/// What `show` looks for.
enum Wanted {
    Key(Key),
    Url(Url),
}

/// Runs `show`.
pub(crate) async fn run(cache: &Cache, args: &ShowArgs, out: &mut impl Write) -> CliResult<()> {
    let now = Timestamp::now();
    let wanted = match Key::decode(&args.target) {
        Ok(key) => Wanted::Key(key),
        Err(_) if args.target.contains("://") => Wanted::Url(
            Url::parse(&args.target)
                .map_err(|e| Failure::new(format!("{:?} is not a valid URL: {e}", args.target)))?,
        ),
        Err(_) => {
            return Err(Failure::new(format!(
                "{:?} is neither an encoded key (as `respcache ls` prints it, e.g. \
                 3:GET|2:v1|5:track) nor a URL",
                args.target
            )));
        }
    };
    let only: Vec<String> = args.repository.iter().cloned().collect();
    let names = cache.repositories(&only).await?;
    let mut found: Vec<(EntryView, Bytes)> = Vec::new();
    for name in &names {
        let repo = cache.open(name).await?;
        match &wanted {
            Wanted::Key(key) => {
                if let Some(entry) = repo.store.get(key).await.map_err(|e| cache.fail(e))? {
                    let view = EntryView::new(&repo.name, repo.schema.as_ref(), &entry, now);
                    found.push((view, entry.payload));
                }
            }
            Wanted::Url(url) => {
                let mut entries = repo.store.scan(Select::All, now);
                while let Some(entry) = entries.next().await {
                    let entry = entry.map_err(|e| cache.fail(e))?;
                    let view = EntryView::new(&repo.name, repo.schema.as_ref(), &entry, now);
                    let same = view
                        .url
                        .as_deref()
                        .and_then(|u| Url::parse(u).ok())
                        .is_some_and(|u| &u == url);
                    if same {
                        found.push((view, entry.payload));
                    }
                }
            }
        }
    }
    if found.is_empty() {
        let what = match &wanted {
            Wanted::Key(key) => format!("no entry under key {}", key.encode()),
            Wanted::Url(url) => format!(
                "no entry the HTTP layer stored for {url} (entries saved through a \
                 ResponseCache record no URL: find their key with `respcache ls`)"
            ),
        };
        return Err(cache.fail(what));
    }
    if args.payload {
        return match found.as_slice() {
            [(_, payload)] => Ok(out.write_all(payload)?),
            _ => Err(Failure::new(format!(
                "{} entries match (in {}); choose one with --repository",
                found.len(),
                found
                    .iter()
                    .map(|(v, _)| v.repository.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    for (i, (view, _)) in found.iter().enumerate() {
        if args.json {
            writeln!(out, "{}", view.to_json())?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            write_text(view, now, out)?;
        }
    }
    Ok(())
}

fn write_text(v: &EntryView, now: Timestamp, out: &mut impl Write) -> std::io::Result<()> {
    let mut lines: Vec<(&str, String)> = vec![
        ("repository", v.repository.clone()),
        ("key", v.key.clone()),
        ("method", v.method.clone()),
        ("fields", v.fields_text()),
        ("name", v.name.clone().unwrap_or_else(|| "-".to_owned())),
        ("status", v.status().to_owned()),
        (
            "cached_at",
            format!(
                "{} ({})",
                when::millis(v.cached_at),
                when::relative(v.cached_at, now)
            ),
        ),
        (
            "expires_at",
            v.expires_at.map_or_else(
                || "never".to_owned(),
                |e| format!("{} ({})", when::millis(e), when::relative(e, now)),
            ),
        ),
        ("payload", format!("{} bytes", v.payload_bytes)),
        (
            "meta",
            if v.meta_bytes == 0 {
                "none".to_owned()
            } else {
                format!("{} bytes", v.meta_bytes)
            },
        ),
    ];
    if let Some(url) = &v.url {
        lines.push(("url", url.clone()));
    }
    if let Some(status) = v.http_status {
        lines.push(("http_status", status.to_string()));
    }
    for (label, value) in lines {
        let label = format!("{label}:");
        writeln!(out, "{label:<12} {}", crate::failure::one_line(&value))?;
    }
    Ok(())
}
