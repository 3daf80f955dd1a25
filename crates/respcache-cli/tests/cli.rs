//! The `respcache` command against SQLite files filled through the library:
//! stats, ls, show, purge, copy, and how errors look.

// Test helpers assert: a failed call is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use cli_common::*;
use serde_json::Value;

fn cache_url(backend_url: &str, cache: &str) -> String {
    format!("{backend_url}?cache={cache}")
}

fn filled() -> (tempfile::TempDir, String, Filled) {
    let (dir, backend) = sqlite_file();
    let filled = fill(&backend, "shop");
    (dir, cache_url(&backend, "shop"), filled)
}

#[test]
fn stats_counts_entries_fresh_stale_and_bytes() {
    let (_dir, url, _) = filled();
    let s = stats(&url);
    let tracks_bytes: u64 = TRACKS.iter().map(|(_, p)| p.len() as u64).sum();
    assert_eq!(s["tracks"], [3, 3, 0, tracks_bytes]);
    assert_eq!(s["pages"], [3, 1, 2, 18]);
    let http = s["http"];
    assert_eq!(http[..3], [2, 2, 0]);
    // payload + the HTTP layer's metadata
    assert!(http[3] > ("alpha".len() + "beta!".len()) as u64, "{http:?}");
    let mut sum = [0u64; 4];
    for (name, row) in &s {
        if name != "total" {
            for i in 0..4 {
                sum[i] += row[i];
            }
        }
    }
    assert_eq!(s["total"], sum);
    assert_eq!(s["total"][..3], [8, 6, 2]);

    // --repository and --json: one object per repository and line
    let run = respcache(&["stats", "--cache", &url, "--json", "--repository", "pages"]);
    let lines = json_lines(run.ok());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["repository"], "pages");
    assert_eq!(lines[0]["entries"], 3);
    assert_eq!(lines[0]["fresh"], 1);
    assert_eq!(lines[0]["stale"], 2);
    assert_eq!(lines[0]["bytes"], 18);
}

#[test]
fn the_cache_name_can_come_from_name_instead_of_the_url() {
    let (dir, backend) = sqlite_file();
    fill(&backend, "shop");
    let run = respcache(&["stats", "--cache", &backend, "--name", "shop"]);
    assert!(run.ok().contains("tracks"));
    // another cache in the same file is empty, and says so on stderr
    let other = respcache(&["stats", "--cache", &cache_url(&backend, "other")]);
    assert_eq!(rows(other.ok()), [["total", "0", "0", "0", "0"]]);
    assert!(other.stderr.contains("has no repositories"), "{other:?}");
    drop(dir);
}

#[test]
fn ls_lists_every_entry_with_status_times_key_and_name_or_url() {
    let (_dir, url, filled) = filled();
    let run = respcache(&["ls", "--cache", &url]);
    let out = run.ok();
    assert_eq!(
        header(out),
        [
            "REPOSITORY",
            "STATUS",
            "CACHED_AT",
            "EXPIRES_AT",
            "BYTES",
            "KEY",
            "NAME/URL"
        ]
    );
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 8, "{out}");
    // sorted by repository, then key; columns aligned on the header
    let repos: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        repos,
        [
            "http", "http", "pages", "pages", "pages", "tracks", "tracks", "tracks"
        ]
    );
    let key_column = out.lines().next().unwrap().find("KEY").unwrap();
    for line in &lines {
        let key = &line[key_column..];
        assert!(key.starts_with("3:GET|"), "{line}");
    }
    let track_a = lines
        .iter()
        .find(|l| l.contains("3:GET|1:a "))
        .expect("track a");
    assert!(track_a.contains(" fresh "), "{track_a}");
    assert!(track_a.ends_with("Title of track a"), "{track_a}");
    let page1 = lines
        .iter()
        .find(|l| l.contains("3:GET|#1 "))
        .expect("page 1");
    assert!(page1.contains(" stale "), "{page1}");
    let page3 = lines
        .iter()
        .find(|l| l.contains("3:GET|#3 "))
        .expect("page 3");
    assert!(page3.contains(" never "), "{page3}");
    assert!(page3.ends_with("third"), "{page3}");
    for (path, _) in PAGES_OVER_HTTP {
        let url = format!("{}{path}", filled.origin);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("http ") && l.ends_with(&url)),
            "{url}: {out}"
        );
    }
    // times are RFC 3339 UTC, to the second
    let cached_at = page1.split_whitespace().nth(2).unwrap();
    assert_eq!(cached_at.len(), "2026-11-24T07:30:00Z".len(), "{cached_at}");
    assert!(cached_at.ends_with('Z'));
}

#[test]
fn ls_json_has_exact_times_sizes_and_metadata() {
    let (_dir, url, filled) = filled();
    let entries = listing(&url);
    assert_eq!(entries.len(), 8);
    let page1 = entries.iter().find(|e| e["key"] == "3:GET|#1").unwrap();
    let day = 86_400_000;
    let now = filled.now.as_millis();
    assert_eq!(page1["repository"], "pages");
    assert_eq!(page1["status"], "stale");
    assert_eq!(page1["cached_at_ms"], now - 10 * day);
    assert_eq!(page1["expires_at_ms"], now - 9 * day);
    assert_eq!(page1["payload_bytes"], 6);
    assert_eq!(page1["meta_bytes"], 0);
    assert_eq!(
        page1["fields"],
        serde_json::json!([{"name": "n", "value": 1}])
    );
    assert_eq!(page1["url"], Value::Null);
    let page3 = entries.iter().find(|e| e["key"] == "3:GET|#3").unwrap();
    assert_eq!(page3["expires_at"], Value::Null);
    assert_eq!(page3["name"], "third");
    let http: Vec<&Value> = entries
        .iter()
        .filter(|e| e["repository"] == "http")
        .collect();
    assert_eq!(http.len(), 2);
    for e in http {
        assert!(
            e["url"].as_str().unwrap().starts_with(&filled.origin),
            "{e}"
        );
        assert_eq!(e["http_status"], 200);
        assert!(e["meta_bytes"].as_u64().unwrap() > 0);
        assert_eq!(e["status"], "fresh");
    }
}

#[test]
fn ls_filters_by_freshness_and_repository() {
    let (_dir, url, _) = filled();
    let keys = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ls", "--cache", &url, "--json"];
        all.extend_from_slice(args);
        let mut keys: Vec<String> = json_lines(respcache(&all).ok())
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["repository"].as_str().unwrap(),
                    e["key"].as_str().unwrap()
                )
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&["--stale"]), ["pages 3:GET|#1", "pages 3:GET|#2"]);
    assert_eq!(keys(&["--fresh"]).len(), 6);
    assert_eq!(keys(&["pages", "--fresh"]), ["pages 3:GET|#3"]);
    assert_eq!(keys(&["tracks"]).len(), 3);
    let both = respcache(&["ls", "--cache", &url, "--stale", "--fresh"]);
    assert_eq!(both.code, Some(2), "{both:?}");
    let typo = respcache(&["ls", "--cache", &url, "trakcs"]);
    let line = typo.error(1);
    assert!(line.contains("no repository \"trakcs\""), "{line}");
    assert!(line.contains("tracks"), "{line}");
}

#[test]
fn show_by_key_prints_the_entry_with_named_fields() {
    let (_dir, url, _) = filled();
    let run = respcache(&["show", "--cache", &url, "3:GET|1:b"]);
    let out = run.ok();
    let lines = shown(out);
    let field = |label: &str| -> String {
        lines
            .get(label)
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .clone()
    };
    assert_eq!(field("repository"), "tracks");
    assert_eq!(field("key"), "3:GET|1:b");
    assert_eq!(field("method"), "GET");
    assert_eq!(field("fields"), "id=\"b\"");
    assert_eq!(field("name"), "Title of track b");
    assert_eq!(field("status"), "fresh");
    assert!(field("expires_at").contains("(in 59m"), "{out}");
    assert_eq!(field("payload"), "7 bytes");
    assert_eq!(field("meta"), "none");
    assert!(!lines.contains_key("url"), "{out}");
    assert_eq!(
        out.lines().next(),
        Some("repository:  tracks"),
        "aligned values"
    );

    let stale = respcache(&[
        "show",
        "--cache",
        &url,
        "--repository",
        "pages",
        "3:GET|#2",
        "--json",
    ]);
    let lines = json_lines(stale.ok());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "stale");
    assert_eq!(lines[0]["fields"][0]["value"], 2);
}

#[test]
fn show_by_url_finds_what_the_http_layer_stored() {
    let (_dir, url, filled) = filled();
    let target = format!("{}/b/2", filled.origin);
    let run = respcache(&["show", "--cache", &url, &target]);
    let out = shown(run.ok());
    assert_eq!(out["repository"], "http");
    assert_eq!(out["url"], target);
    assert_eq!(out["http_status"], "200");
    assert_eq!(out["payload"], "5 bytes");
    assert_eq!(out["status"], "fresh");

    let payload = respcache(&["show", "--cache", &url, &target, "--payload"]);
    assert_eq!(payload.code, Some(0), "{payload:?}");
    assert_eq!(payload.raw, b"beta!");

    let missing = respcache(&[
        "show",
        "--cache",
        &url,
        &format!("{}/nowhere", filled.origin),
    ]);
    let line = missing.error(1);
    assert!(
        line.contains("no entry the HTTP layer stored for"),
        "{line}"
    );
}

#[test]
fn show_without_a_match_or_with_garbage_fails_with_one_line() {
    let (_dir, url, _) = filled();
    let missing = respcache(&["show", "--cache", &url, "3:GET|2:zz"]);
    let line = missing.error(1);
    assert!(line.contains("no entry under key 3:GET|2:zz"), "{line}");
    assert!(missing.stdout.is_empty());
    let garbage = respcache(&["show", "--cache", &url, "not a key"]);
    assert!(garbage.error(1).contains("neither an encoded key"));
    let payload = respcache(&["show", "--cache", &url, "3:GET|1:a", "--payload"]);
    assert_eq!(payload.raw, b"track a");
}

#[test]
fn purge_dry_run_counts_and_removes_nothing() {
    let (_dir, url, _) = filled();
    let before = listing(&url);
    let run = respcache(&["purge", "--cache", &url, "--expired", "--dry-run"]);
    let out = run.ok();
    assert_eq!(header(out), ["REPOSITORY", "WOULD_REMOVE"]);
    let table = rows(out);
    assert!(
        table.contains(&vec!["pages".to_owned(), "2".to_owned()]),
        "{out}"
    );
    assert!(
        table.contains(&vec!["total".to_owned(), "2".to_owned()]),
        "{out}"
    );
    assert!(out.contains("dry run: 2 entries"), "{out}");
    assert_eq!(listing(&url), before);
}

#[test]
fn purge_older_than_url_expired_and_all() {
    let (_dir, url, filled) = filled();
    // cached more than 5 days ago: page 1 only
    let run = respcache(&["purge", "--cache", &url, "--older-than", "5d"]);
    let out = run.ok();
    assert_eq!(header(out), ["REPOSITORY", "REMOVED"]);
    assert!(
        rows(out).contains(&vec!["pages".to_owned(), "1".to_owned()]),
        "{out}"
    );
    assert!(out.contains("removed 1 entries"), "{out}");
    assert_eq!(stats(&url)["pages"][..3], [2, 1, 1]);

    // by URL glob: one of the two HTTP entries
    let glob = format!("{}/a/*", filled.origin);
    let run = respcache(&["purge", "--cache", &url, "--url", &glob]);
    assert!(rows(run.ok()).contains(&vec!["http".to_owned(), "1".to_owned()]));
    let http: Vec<Value> = listing(&url)
        .into_iter()
        .filter(|e| e["repository"] == "http")
        .collect();
    assert_eq!(http.len(), 1);
    assert!(http[0]["url"].as_str().unwrap().ends_with("/b/2"));

    // filters combine: stale AND older than 1 hour: page 2
    let run = respcache(&[
        "purge",
        "--cache",
        &url,
        "--expired",
        "--older-than",
        "1h",
        "--repository",
        "pages",
    ]);
    assert_eq!(rows(run.ok()), [["pages", "1"], ["total", "1"]]);
    assert_eq!(stats(&url)["pages"][..3], [1, 1, 0]);

    // everything; the repositories stay
    let run = respcache(&["purge", "--cache", &url, "--all"]);
    assert!(run.ok().contains("removed 5 entries"), "{}", run.stdout);
    let s = stats(&url);
    assert_eq!(s["total"], [0, 0, 0, 0]);
    assert!(s.contains_key("tracks") && s.contains_key("pages"));

    // one of the filters is required; --all takes no other
    assert_eq!(respcache(&["purge", "--cache", &url]).code, Some(2));
    assert_eq!(
        respcache(&["purge", "--cache", &url, "--all", "--expired"]).code,
        Some(2)
    );
    let bad = respcache(&["purge", "--cache", &url, "--older-than", "soon"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("--older-than"), "{bad:?}");
}

#[test]
fn copy_sqlite_to_sqlite_keeps_every_entry_and_can_be_run_again() {
    let (_dir, src, _) = filled();
    let (_dst_dir, dst_backend) = sqlite_file();
    let dst = cache_url(&dst_backend, "shop");

    // an interrupted copy: only one repository made it
    let run = respcache(&["copy", &src, &dst, "--repository", "pages"]);
    assert_eq!(
        rows(run.ok()),
        [["pages", "3", "1", "2"], ["total", "3", "1", "2"]]
    );

    let run = respcache(&["copy", &src, &dst, "--batch", "2"]);
    let out = run.ok();
    assert_eq!(header(out), ["REPOSITORY", "COPIED", "FRESH", "STALE"]);
    assert!(
        rows(out).contains(&vec!["total".into(), "8".into(), "6".into(), "2".into()]),
        "{out}"
    );
    assert!(out.contains("copied 8 entries (6 fresh, 2 stale)"), "{out}");
    assert!(
        run.stderr.is_empty(),
        "no progress bar without a terminal: {:?}",
        run.stderr
    );
    // every entry as it was: key, name, times, sizes, URL
    assert_eq!(listing(&dst), listing(&src));
    assert_eq!(stats(&dst), stats(&src));
    // the key schema came along: fields keep their names
    let show = respcache(&["show", "--cache", &dst, "3:GET|#3"]);
    assert_eq!(shown(show.ok())["fields"], "n=3");

    // again: idempotent
    respcache(&["copy", &src, &dst]).ok();
    assert_eq!(listing(&dst), listing(&src));

    // into another cache of the same file
    let renamed = cache_url(&dst_backend, "shop-copy");
    respcache(&["copy", &src, &renamed]).ok();
    let copy: Vec<Value> = listing(&renamed);
    assert_eq!(copy.len(), 8);
    assert_eq!(stats(&renamed), stats(&src));
}

#[test]
fn copy_refuses_the_same_cache_and_a_missing_source() {
    let (dir, src, _) = filled();
    let same = respcache(&["copy", &src, &src]);
    assert!(same.error(1).contains("the same cache"));
    let missing = format!(
        "sqlite://{}?cache=shop",
        dir.path().join("nope.sqlite").display()
    );
    let run = respcache(&["copy", &missing, &src]);
    assert!(run.error(1).contains("does not exist"), "{run:?}");
    assert!(!dir.path().join("nope.sqlite").exists());
}

#[test]
fn errors_are_one_line_name_the_problem_and_hide_passwords() {
    let (dir, backend) = sqlite_file();
    fill(&backend, "shop");
    let cases: Vec<(String, &str)> = vec![
        ("just-a-path?cache=x".into(), "has no scheme"),
        (
            "gopher://host/?cache=x".into(),
            "unknown backend scheme \"gopher\"",
        ),
        ("sqlite://?cache=x".into(), "names no database file"),
        (
            format!("{backend}?cache=x&busy_timeout=soon"),
            "busy_timeout",
        ),
        (format!("{backend}?cache=no.dots"), "\"no.dots\""),
        (
            format!("{backend}?cache=shop&retention=forever"),
            "retention=\"forever\"",
        ),
        (backend.clone(), "no cache name"),
        (
            format!(
                "sqlite://{}?cache=shop",
                dir.path().join("typo.sqlite").display()
            ),
            "does not exist",
        ),
    ];
    for (url, needle) in cases {
        let run = respcache(&["stats", "--cache", &url]);
        let line = run.error(1);
        assert!(line.contains(needle), "{url}: {line}");
    }
    assert!(
        !dir.path().join("typo.sqlite").exists(),
        "a typo must not create a database"
    );

    let secret = respcache(&["ls", "--cache", "redis://user:s3cret@127.0.0.1:1/"]);
    let line = secret.error(1);
    assert!(!line.contains("s3cret"), "{line}");
    assert!(line.contains("user:***@"), "{line}");
}

#[test]
fn a_backend_this_build_lacks_names_its_feature() {
    // Every scheme respcache knows either works in this build, or fails
    // naming the feature that enables it.
    for (scheme, feature) in respcache::SCHEMES {
        let url = format!("{scheme}://127.0.0.1:1/respcache-cli-test?cache=x");
        let run = respcache(&["stats", "--cache", &url]);
        if run.stderr.contains("needs the") {
            let line = run.error(1);
            assert!(
                line.contains(&format!("needs the `{feature}` feature")),
                "{line}"
            );
        }
    }
    // The filesystem backend is not a default feature.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("fs://{}?cache=x", dir.path().display());
    let run = respcache(&["stats", "--cache", &url]);
    if cfg!(feature = "fs") {
        run.ok();
    } else {
        let line = run.error(1);
        assert!(
            line.contains("needs the `fs` feature of respcache"),
            "{line}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let (_dir, url, _) = filled();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_respcache"))
        .args(["ls", "--cache", &url])
        .stdout(writer)
        .output()
        .unwrap();
    let run = run_of(output);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
}

/// A folder inside a filesystem store where an entry file belongs (a stray
/// `mkdir`, another program): `stats` and `ls` skip it with a counted note
/// and exit 0, instead of failing on the first one.
#[cfg(feature = "fs")]
#[test]
fn stats_and_ls_skip_a_folder_inside_a_filesystem_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend = format!("fs://{}", dir.path().display());
    fill(&backend, "shop");
    let url = cache_url(&backend, "shop");
    let before = stats(&url);
    let foreign = dir.path().join("shop/tracks/ab/cd").join("abcd".repeat(16));
    std::fs::create_dir_all(foreign.join("inside")).unwrap();

    let run = respcache(&["stats", "--cache", &url]);
    run.ok();
    assert!(
        run.stderr
            .contains("skipped 1 entry the store could not decode"),
        "{run:#?}"
    );
    assert_eq!(stats(&url), before);

    let run = respcache(&["ls", "--cache", &url]);
    let listed = rows(run.ok());
    assert_eq!(listed.len(), 8, "{run:#?}");
    assert!(run.stderr.contains("skipped 1 entry"), "{run:#?}");
}

#[test]
fn stats_shows_the_budget_and_how_full_it_is() {
    let (dir, backend) = sqlite_file();
    fill(&backend, "shop");
    let url = format!("{backend}?cache=shop&max_bytes=1MB&max_entries=100");
    let out = respcache(&["stats", "--cache", &url]).ok().to_owned();
    let line = out
        .lines()
        .find(|l| l.starts_with("budget of the whole sqlite backend"))
        .unwrap_or_else(|| panic!("no budget line in {out}"));
    assert!(line.contains("of 976.6 KiB"), "{line}");
    assert!(line.contains("8 of 100 entries (8 %)"), "{line}");
    // Without a budget: the size, and that there is no limit.
    let plain = respcache(&["stats", "--cache", &cache_url(&backend, "shop")]);
    assert!(plain.ok().contains("(no max_bytes)"), "{plain:?}");
    let json = respcache(&["stats", "--cache", &url, "--json"]);
    let lines = json_lines(json.ok());
    let last = lines.last().unwrap();
    assert_eq!(last["budget"]["max_bytes"], 1_000_000);
    assert_eq!(last["budget"]["max_entries"], 100);
    assert_eq!(last["usage"]["entries"], 8);
    assert!(last["usage"]["bytes"].as_u64().unwrap() > 0);
    drop(dir);
}

#[test]
fn purge_to_a_size_trims_the_least_recently_used_first() {
    let (dir, backend) = sqlite_file();
    fill(&backend, "shop");
    let url = cache_url(&backend, "shop");
    let before = stats(&url)["total"][0];
    assert_eq!(before, 8);
    let run = respcache(&["purge", "--cache", &url, "--to", "700B"]);
    let out = run.ok();
    assert!(out.starts_with("removed "), "{out}");
    let after = stats(&url);
    let left = after["total"][0];
    assert!(left < before && left > 0, "{left} of {before} left");
    // The fill wrote tracks first and the HTTP responses last.
    assert!(
        !after.contains_key("tracks") || after["tracks"][0] < 3,
        "{after:?}"
    );
    assert_eq!(after["http"][0], 2, "{after:?}");
    let run = respcache(&["purge", "--cache", &url, "--to", "0"]);
    assert!(run.ok().contains("0 B in 0 entries now"), "{run:?}");
    assert_eq!(stats(&url)["total"][0], 0);
    // --to is a whole-backend trim: no filters with it.
    let run = respcache(&["purge", "--cache", &url, "--to", "1MB", "--expired"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("cannot be used with"), "{run:?}");
    let run = respcache(&["purge", "--cache", &url, "--to", "lots"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("not a size"), "{run:?}");
    drop(dir);
}

/// Issue 19: `purge --tag` removes every entry with the tag, through the
/// backend's tag index; with other filters or `--dry-run`, by a scan.
#[test]
fn purge_by_tag_alone_with_filters_and_dry_run() {
    let (_dir, backend) = sqlite_file();
    let url = cache_url(&backend, "shop");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use respcache::{Entry, Key, KeyPart, KeySchema, Name, StoreSpec, Tags, Timestamp};
        let b = respcache::connect(&backend).await.unwrap();
        let spec = StoreSpec::new(
            Name::new("shop").unwrap(),
            Name::new("products").unwrap(),
            KeySchema::new([("id", respcache::FieldKind::Integer)]).unwrap(),
        );
        let store = b.open_store(&spec).await.unwrap();
        let now = Timestamp::now();
        let tagged = |id: i64, tags: &[&str], stale: bool| {
            Entry::new(
                Key::new("GET", [KeyPart::Int(id)]),
                now,
                format!("product {id}"),
            )
            .with_expires_at(Some(if stale {
                now.saturating_sub(HOUR)
            } else {
                now.saturating_add(HOUR)
            }))
            .with_tags(Tags::new(tags.iter().copied()).unwrap())
        };
        store
            .put_many(vec![
                tagged(1, &["summer", "shoes"], false),
                tagged(2, &["summer"], true),
                tagged(3, &["shoes"], false),
                tagged(4, &[], false),
            ])
            .await
            .unwrap();
    });
    let dry = respcache(&["purge", "--cache", &url, "--tag", "summer", "--dry-run"]);
    assert!(rows(dry.ok()).contains(&vec!["products".to_owned(), "2".to_owned()]));
    assert_eq!(stats(&url)["products"][0], 4, "a dry run removes nothing");
    // With another filter: stale AND tagged summer: product 2.
    let both = respcache(&["purge", "--cache", &url, "--tag", "summer", "--expired"]);
    assert!(rows(both.ok()).contains(&vec!["products".to_owned(), "1".to_owned()]));
    // Alone, through the index.
    let alone = respcache(&["purge", "--cache", &url, "--tag", "shoes"]);
    assert!(rows(alone.ok()).contains(&vec!["products".to_owned(), "2".to_owned()]));
    assert_eq!(
        stats(&url)["products"][0],
        1,
        "only the untagged one is left"
    );
    let bad = respcache(&["purge", "--cache", &url, "--tag", ""]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("--tag"), "{bad:?}");
    assert_eq!(
        respcache(&["purge", "--cache", &url, "--tag", "x", "--all"]).code,
        Some(2)
    );
}
