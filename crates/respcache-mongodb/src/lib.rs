#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod document;
mod error;
mod indexes;
mod lease;
mod names;
mod store;
mod write;

pub use backend::MongoDbBackend;
pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT, DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_URL, DateWrites, ENV_URL, MongoDbConfig,
};
pub use document::{MAX_DOCUMENT_BYTES, MAX_PAYLOAD_BYTES};
pub use store::MongoDbStore;

/// The driver, re-exported so a program builds its own [`mongodb::Client`]
/// (for [`MongoDbBackend::from_client`]) with exactly the version respcache uses.
pub use mongodb;

/// The URL scheme of this backend (`mongodb://`); [`SRV_SCHEME`]
/// (`mongodb+srv://`) is accepted too.
pub const SCHEME: &str = "mongodb";

/// The DNS seed-list scheme (`mongodb+srv://`, e.g. MongoDB Atlas).
pub const SRV_SCHEME: &str = "mongodb+srv";

/// The backend's name in errors and logs.
pub(crate) const NAME: &str = "mongodb";
