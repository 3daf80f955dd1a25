//! Makes sure the table exists, has respcache's key schema, and purges on
//! `purge_at`.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::waiters::table_exists::WaitUntilTableExistsError;
use aws_sdk_dynamodb::waiters::table_not_exists::WaitUntilTableNotExistsError;
use respcache_core::{ErrorKind, Result};

use crate::error::{RESOURCE_NOT_FOUND, backend_error, chain};
use crate::item::{PK, PURGE_AT, SK};
use crate::shared::{Shared, build_error};

/// How long to wait for a new table to become `ACTIVE`.
const CREATE_WAIT: Duration = Duration::from_secs(120);

/// Checks the table; creates it (on demand, TTL on `purge_at`) when it is
/// missing and `create` allows.
///
/// # Errors
///
/// [`Configuration`](ErrorKind::Configuration) when the table is missing and
/// `create` is false, or has another key schema; the mapped SDK error when
/// DynamoDB cannot be reached.
pub(crate) async fn ensure(shared: &Shared, create: bool) -> Result<()> {
    match describe(shared).await? {
        Some(table) if table.table_status() != Some(&TableStatus::Deleting) => {
            check_key_schema(&shared.table, table.key_schema())?;
            if table.table_status() != Some(&TableStatus::Active) {
                wait_active(shared).await?;
            }
        }
        // Being deleted (the last store of a per-cache table was dropped):
        // wait until it is gone, then create it anew.
        Some(_) => {
            wait_deleted(shared).await?;
            create_missing(shared, create).await?;
        }
        None => create_missing(shared, create).await?,
    }
    ensure_ttl(shared, create).await;
    Ok(())
}

/// The table's description; `None` when it does not exist.
async fn describe(shared: &Shared) -> Result<Option<TableDescription>> {
    match shared
        .client
        .describe_table()
        .table_name(shared.table.clone())
        .send()
        .await
    {
        Ok(out) => match out.table {
            Some(table) => Ok(Some(table)),
            None => Err(backend_error(
                ErrorKind::Backend,
                format!("DescribeTable on {:?} returned no table", shared.table),
            )),
        },
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(shared.sdk_error(e)),
    }
}

async fn create_missing(shared: &Shared, create: bool) -> Result<()> {
    if !create {
        return Err(backend_error(
            ErrorKind::Configuration,
            format!(
                "DynamoDB table {:?} does not exist and create_table is false: create it \
                 (partition key {PK:?} S, sort key {SK:?} S, TTL on {PURGE_AT:?}) or allow \
                 respcache to (create_table=true)",
                shared.table
            ),
        ));
    }
    create_table(shared).await?;
    wait_active(shared).await
}

/// Deletes the table; a table already gone, or busy (being created or
/// deleted by someone else), is left alone.
pub(crate) async fn delete(shared: &Shared) -> Result<()> {
    match shared
        .client
        .delete_table()
        .table_name(shared.table.clone())
        .send()
        .await
    {
        Ok(_) => {
            tracing::info!(table = %shared.table, "respcache: deleted the DynamoDB table");
            Ok(())
        }
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_resource_not_found_exception() || s.is_resource_in_use_exception()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(shared.sdk_error(e)),
    }
}

/// Whether `err` is DynamoDB's `ResourceNotFoundException` (the table is
/// missing), by the service's error code that
/// [`map_sdk_error`](crate::error::map_sdk_error) keeps.
pub(crate) fn is_missing_table(err: &respcache_core::Error) -> bool {
    crate::error::service_code(err) == Some(RESOURCE_NOT_FOUND)
}

async fn wait_deleted(shared: &Shared) -> Result<()> {
    shared
        .client
        .wait_until_table_not_exists()
        .table_name(shared.table.clone())
        .wait(CREATE_WAIT)
        .await
        .map(|_| ())
        .map_err(|e| {
            let kind = if matches!(e, WaitUntilTableNotExistsError::ExceededMaxWait(_)) {
                ErrorKind::Timeout
            } else {
                ErrorKind::Backend
            };
            backend_error(
                kind,
                format!(
                    "waiting for DynamoDB table {:?} to finish deleting: {}",
                    shared.table,
                    chain(&e)
                ),
            )
            .with_source(e)
        })
}

fn check_key_schema(table: &str, schema: &[KeySchemaElement]) -> Result<()> {
    let has = |name: &str, kind: KeyType| {
        schema
            .iter()
            .any(|k| k.attribute_name() == name && *k.key_type() == kind)
    };
    if schema.len() == 2 && has(PK, KeyType::Hash) && has(SK, KeyType::Range) {
        return Ok(());
    }
    let found: Vec<String> = schema
        .iter()
        .map(|k| format!("{} {}", k.attribute_name(), k.key_type().as_str()))
        .collect();
    Err(backend_error(
        ErrorKind::Configuration,
        format!(
            "DynamoDB table {table:?} has the key schema [{}]; respcache needs partition key \
             {PK:?} (S, HASH) and sort key {SK:?} (S, RANGE): use another table",
            found.join(", ")
        ),
    ))
}

async fn create_table(shared: &Shared) -> Result<()> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(build_error)
    };
    let created = shared
        .client
        .create_table()
        .table_name(shared.table.clone())
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .send()
        .await;
    match created {
        Ok(_) => {
            tracing::info!(table = %shared.table, "respcache: created the DynamoDB table");
            Ok(())
        }
        // Another process created it at the same time.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(shared.sdk_error(e)),
    }
}

async fn wait_active(shared: &Shared) -> Result<()> {
    shared
        .client
        .wait_until_table_exists()
        .table_name(shared.table.clone())
        .wait(CREATE_WAIT)
        .await
        .map(|_| ())
        .map_err(|e| {
            let kind = if matches!(e, WaitUntilTableExistsError::ExceededMaxWait(_)) {
                ErrorKind::Timeout
            } else {
                ErrorKind::Backend
            };
            backend_error(
                kind,
                format!(
                    "waiting for DynamoDB table {:?} to become ACTIVE: {}",
                    shared.table,
                    chain(&e)
                ),
            )
            .with_source(e)
        })
}

/// Turns on TTL on `purge_at` when it is off and `may_change` allows;
/// only warns otherwise: without it, expired entries are still hidden
/// from every read, DynamoDB just does not delete them.
async fn ensure_ttl(shared: &Shared, may_change: bool) {
    let described = shared
        .client
        .describe_time_to_live()
        .table_name(shared.table.clone())
        .send()
        .await;
    let (status, attribute) = match &described {
        Ok(out) => match out.time_to_live_description() {
            Some(d) => (d.time_to_live_status().cloned(), d.attribute_name()),
            None => (None, None),
        },
        Err(e) => {
            tracing::warn!(table = %shared.table, error = %chain(e),
                "respcache: could not read the table's TTL setting");
            return;
        }
    };
    let on = matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    );
    if on && attribute == Some(PURGE_AT) {
        return;
    }
    if on || matches!(status, Some(TimeToLiveStatus::Disabling)) || !may_change {
        tracing::warn!(
            table = %shared.table,
            ttl_attribute = ?attribute,
            ttl_status = ?status,
            "respcache: DynamoDB TTL is not enabled on {PURGE_AT:?}; stale entries past their \
             retention are hidden from reads but not deleted by DynamoDB"
        );
        return;
    }
    let spec = match TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(PURGE_AT)
        .build()
    {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(error = %e, "respcache: could not build the TTL request");
            return;
        }
    };
    match shared
        .client
        .update_time_to_live()
        .table_name(shared.table.clone())
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => tracing::info!(table = %shared.table, "respcache: enabled TTL on {PURGE_AT:?}"),
        // Enabled meanwhile by another process.
        Err(e) if e.message().is_some_and(|m| m.contains("already enabled")) => {}
        Err(e) => tracing::warn!(table = %shared.table, error = %chain(&e),
            "respcache: could not enable TTL on {PURGE_AT:?}"),
    }
}
