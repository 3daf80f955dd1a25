#![doc = include_str!("../README.md")]

mod backend;
mod batch;
mod config;
mod connect;
mod error;
mod item;
mod lease;
mod parts;
mod query;
mod shared;
mod store;
mod table;

pub use backend::DynamoDbBackend;
pub use config::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DEFAULT_TABLE,
    DynamoDbConfig, TableMode,
};
pub use store::DynamoDbStore;

/// The AWS configuration loader this crate uses.
pub use aws_config;
/// The AWS SDK for DynamoDB this crate is built on, so a program can build
/// a client (and an `aws_config::SdkConfig`) of the same version.
pub use aws_sdk_dynamodb;

/// The URL scheme of this backend: `dynamodb://TABLE?...`.
pub const SCHEME: &str = "dynamodb";

/// The backend's name in errors and in [`respcache_core::Backend::name`].
pub(crate) const NAME: &str = "dynamodb";
