//! Consul HTTP API v1 wire types, shared by the registry node (server side),
//! its CLI, `registrator` and `templater` (client side).
//!
//! Every type serializes with Consul's exact CamelCase field names. Incoming
//! bodies should be decoded with [`decode::from_slice`], which matches field names
//! the way Go's decoder does (case-insensitive, snake_case accepted).
//!
//! # Layout
//! - [`kv`], [`catalog`], [`health`], [`agent`], [`session`], [`txn`], [`event`],
//!   [`operator`]: wire types.
//! - [`prepared_query`]: `/v1/query` definitions and execute answers.
//! - [`query`]: query parameters and the `X-Consul-*` headers of blocking reads.
//! - [`duration`]: Go duration strings (`"10s"`).
//! - [`decode`]: Go-compatible lenient JSON decoding; [`gojson`]: Go-compatible indented output.
//! - `client` (feature `client`): a typed async client with blocking-query support.
#![warn(missing_docs)]

pub mod agent;
pub mod catalog;
pub mod decode;
pub mod duration;
pub mod event;
pub mod gojson;
pub mod health;
pub mod kv;
pub mod operator;
pub mod prepared_query;
pub mod query;
pub mod session;
pub mod txn;

#[cfg(feature = "client")]
pub mod client;

pub use agent::*;
pub use catalog::*;
pub use duration::GoDuration;
pub use event::*;
pub use health::*;
pub use kv::*;
pub use operator::*;
pub use prepared_query::*;
pub use query::*;
pub use session::*;
pub use txn::*;

/// The Consul release whose API this implementation follows.
pub const CONSUL_COMPAT_VERSION: &str = "1.22.0";

/// Our own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Base64 (standard alphabet) for `Option<Vec<u8>>` fields: `null` when absent.
pub mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as base64 text or `null`.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from base64 text or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(None),
            Some(t) => STANDARD
                .decode(t.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
