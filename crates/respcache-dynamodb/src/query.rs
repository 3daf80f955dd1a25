//! Paginated Query streams over one partition (never a table Scan).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, Select as DdbSelect};
use futures::StreamExt;
use futures::stream::BoxStream;
use respcache_core::{Result, Select, Timestamp};

use crate::item::{self, EXPIRES_AT, Item, PK, PURGE_AT, SK, TAGS};
use crate::shared::Shared;

/// One Query over the partition `pk`.
#[derive(Clone, Debug, Default)]
pub(crate) struct QuerySpec {
    pk: String,
    filter: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    projection: Option<String>,
    count_only: bool,
    limit: Option<i32>,
}

impl QuerySpec {
    /// Every item of partition `pk`.
    pub(crate) fn partition(pk: impl Into<String>) -> Self {
        QuerySpec {
            pk: pk.into(),
            ..QuerySpec::default()
        }
    }

    /// Only entries `select` matches at `now`, and none past its purge time
    /// at `wall` (DynamoDB may not have deleted them yet).
    pub(crate) fn entries(mut self, select: Select, now: Timestamp, wall: Timestamp) -> Self {
        self.names.insert("#purge".into(), PURGE_AT.into());
        self.values
            .insert(":wall".into(), item::n(item::purged_through(wall)));
        self.filter
            .push("(attribute_not_exists(#purge) OR #purge > :wall)".into());
        match select {
            Select::All => {}
            Select::Fresh => {
                self.names.insert("#exp".into(), EXPIRES_AT.into());
                self.values.insert(":now".into(), item::n(now.as_millis()));
                self.filter
                    .push("(attribute_not_exists(#exp) OR #exp > :now)".into());
            }
            Select::Expired => {
                self.names.insert("#exp".into(), EXPIRES_AT.into());
                self.values.insert(":now".into(), item::n(now.as_millis()));
                self.filter.push("#exp <= :now".into());
            }
        }
        self
    }

    /// Only items whose `tags` set contains `tag`.
    pub(crate) fn tagged(mut self, tag: &str) -> Self {
        self.names.insert("#tags".into(), TAGS.into());
        self.values.insert(":tag".into(), item::s(tag));
        self.filter.push("contains(#tags, :tag)".into());
        self
    }

    /// Read only these attributes (and the primary key).
    pub(crate) fn project(mut self, attributes: &[&str]) -> Self {
        let mut parts = Vec::new();
        for attribute in [PK, SK].iter().chain(attributes) {
            let placeholder = format!("#p_{attribute}");
            if self
                .names
                .insert(placeholder.clone(), (*attribute).to_owned())
                .is_none()
            {
                parts.push(placeholder);
            }
        }
        self.projection = Some(parts.join(", "));
        self
    }

    /// Count only (`Select: COUNT`): pages carry no items.
    pub(crate) fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// At most `limit` items per page.
    pub(crate) fn limit(mut self, limit: i32) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// One page of a Query.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) items: Vec<Item>,
    pub(crate) count: u64,
}

/// The pages of `spec`, one request each, in sort key order.
pub(crate) fn pages(shared: Arc<Shared>, spec: QuerySpec) -> BoxStream<'static, Result<Page>> {
    // State: None = done; Some(None) = first page; Some(Some(key)) = resume.
    futures::stream::try_unfold(Some(None), move |state: Option<Option<Item>>| {
        let shared = Arc::clone(&shared);
        let spec = spec.clone();
        async move {
            let Some(start) = state else {
                return Ok(None);
            };
            let out = request(&shared, spec, start)
                .send()
                .await
                .map_err(|e| shared.sdk_error(e))?;
            let count = u64::try_from(out.count).unwrap_or(0);
            let next = out.last_evaluated_key.filter(|k| !k.is_empty()).map(Some);
            let page = Page {
                items: out.items.unwrap_or_default(),
                count,
            };
            Ok(Some((page, next)))
        }
    })
    .boxed()
}

fn request(
    shared: &Shared,
    spec: QuerySpec,
    start: Option<Item>,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    let QuerySpec {
        pk,
        filter,
        mut names,
        mut values,
        projection,
        count_only,
        limit,
    } = spec;
    names.insert("#pk".into(), PK.into());
    values.insert(":pk".into(), AttributeValue::S(pk));
    let condition = "#pk = :pk";
    let mut query = shared
        .client
        .query()
        .table_name(shared.table.clone())
        .key_condition_expression(condition)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .consistent_read(shared.consistent_read)
        .set_exclusive_start_key(start)
        .set_projection_expression(projection)
        .limit(limit.unwrap_or(shared.page_size));
    if !filter.is_empty() {
        query = query.filter_expression(filter.join(" AND "));
    }
    if count_only {
        query = query.select(DdbSelect::Count);
    }
    query
}

/// How many items `spec` matches.
pub(crate) async fn count(shared: Arc<Shared>, spec: QuerySpec) -> Result<u64> {
    let mut pages = pages(shared, spec.count_only());
    let mut total = 0u64;
    while let Some(page) = pages.next().await {
        total += page?.count;
    }
    Ok(total)
}
