//! Which key schema `copy` creates a destination store with.
//!
//! SQLite makes one typed column per key field, so a store written there
//! needs the field names and types. They come, in this order, from:
//! `--schema REPO=FIELD:KIND,...`; the source backend
//! ([`Backend::stored_schema`](respcache::Backend::stored_schema): SQLite
//! records them); the destination, if it already has the store (an earlier,
//! interrupted copy, or the application created it); the repositories
//! respcache itself defines (`kv` of a `KeyValueCache`, `http` and
//! `http_redirects` of the HTTP client) when the first entry's key fits.
//! Other backends store keys that describe themselves and accept any
//! schema, so without one the copy still works there.

use std::collections::HashMap;

use respcache::kv;
use respcache::{FieldKind, Key, KeySchema, Name};
use respcache_http::{HTTP_REPOSITORY, REDIRECTS_REPOSITORY, REQUEST_FIELD};

use crate::cache::Cache;
use crate::failure::{CliResult, Failure};

/// `--schema` values by repository.
pub(crate) type Overrides = HashMap<String, KeySchema>;

/// Reads `--schema tracks=version:text,id:text` values (an empty field
/// list, `tracks=`, is a key of the method alone).
pub(crate) fn parse_overrides(values: &[String]) -> CliResult<Overrides> {
    let mut out = Overrides::new();
    for value in values {
        let bad = |why: &str| {
            Failure::new(format!(
                "--schema {value:?}: {why} (expected REPO=FIELD:KIND,... with KIND text or int)"
            ))
        };
        let (repo, fields) = value.split_once('=').ok_or_else(|| bad("no '='"))?;
        Name::new(repo).map_err(|e| bad(&e.to_string()))?;
        let mut parsed = Vec::new();
        for field in fields.split(',').filter(|f| !f.is_empty()) {
            let (name, kind) = field.split_once(':').unwrap_or((field, "text"));
            let kind = match kind {
                "text" => FieldKind::Text,
                "int" | "integer" => FieldKind::Integer,
                other => return Err(bad(&format!("unknown kind {other:?}"))),
            };
            parsed.push((name, kind));
        }
        let schema = KeySchema::new(parsed).map_err(|e| bad(&e.to_string()))?;
        if out.insert(repo.to_owned(), schema).is_some() {
            return Err(bad("the repository is given twice"));
        }
    }
    Ok(out)
}

/// The schema of a repository respcache defines itself.
fn well_known(repository: &str) -> Option<KeySchema> {
    let field = match repository {
        kv::REPOSITORY => kv::KEY_FIELD,
        HTTP_REPOSITORY | REDIRECTS_REPOSITORY => REQUEST_FIELD,
        _ => return None,
    };
    KeySchema::new([(field, FieldKind::Text)]).ok()
}

/// Whether a backend types its key columns, so a store it creates must
/// have the right schema (see `Backend::stored_schema`).
fn needs_schema(backend: &str) -> bool {
    backend == "sqlite"
}

/// What `copy` does with one repository.
pub(crate) enum Decision {
    /// Create (or open) the destination store with this schema.
    Copy(KeySchema),
    /// Nothing to copy and no way to create the store right: say why.
    Skip(String),
}

/// Decides the destination schema of `repository`, whose source records
/// `recorded` (if anything). `first` is the key of one of its entries
/// (`None`: the repository is empty).
pub(crate) async fn decide(
    src: &Cache,
    dst: &Cache,
    repository: &Name,
    recorded: Option<&KeySchema>,
    overrides: &Overrides,
    first: Option<&Key>,
) -> CliResult<Decision> {
    if let Some(schema) = overrides.get(repository.as_str()).or(recorded) {
        return Ok(Decision::Copy(schema.clone()));
    }
    if let Some(schema) = dst.schema(repository).await? {
        return Ok(Decision::Copy(schema));
    }
    if let Some(schema) =
        well_known(repository.as_str()).filter(|s| first.is_none_or(|k| s.validate(k).is_ok()))
    {
        return Ok(Decision::Copy(schema));
    }
    match first {
        // A key of the method alone: the empty schema is the exact one.
        Some(key) if key.fields().is_empty() => Ok(Decision::Copy(KeySchema::default())),
        _ if !needs_schema(dst.backend_name()) => Ok(Decision::Copy(KeySchema::default())),
        None => Ok(Decision::Skip(format!(
            "repository {repository} is empty and {} does not record its key fields: \
             not created in {}",
            src.backend_name(),
            dst.location()
        ))),
        Some(key) => Err(Failure::new(format!(
            "repository {repository}: {} does not record its key fields, which {} needs \
             (a key looks like {}); pass --schema {repository}=FIELD:KIND,... \
             (KIND text or int), or let your application create the store in the \
             destination first",
            src.backend_name(),
            dst.backend_name(),
            key.encode()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_names_and_kinds() -> Result<(), String> {
        let o = parse_overrides(&[
            "tracks=version:text,id".into(),
            "pages=n:int".into(),
            "root=".into(),
        ])
        .map_err(|_| "parse failed".to_owned())?;
        let tracks = o.get("tracks").ok_or("tracks")?;
        let kinds: Vec<(&str, FieldKind)> = tracks
            .fields()
            .iter()
            .map(|f| (f.name(), f.kind()))
            .collect();
        assert_eq!(
            kinds,
            [("version", FieldKind::Text), ("id", FieldKind::Text)]
        );
        assert_eq!(
            o.get("pages").map(|s| s.fields()[0].kind()),
            Some(FieldKind::Integer)
        );
        assert_eq!(o.get("root").map(|s| s.fields().len()), Some(0));
        for bad in ["tracks", "a.b=id", "t=id:float", "t=id,id"] {
            assert!(parse_overrides(&[bad.into()]).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn respcache_repositories_are_known() {
        assert!(well_known("kv").is_some());
        assert!(well_known("http").is_some());
        assert!(well_known("tracks").is_none());
    }
}
