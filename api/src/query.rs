//! Query parameters and response headers of blocking reads: one place for the
//! header names and the defaults.

use std::time::Duration;

/// Raft index of the returned view; pass it back as `?index=` to block.
pub const HEADER_INDEX: &str = "X-Consul-Index";
/// Whether the answering server knows a leader.
pub const HEADER_KNOWN_LEADER: &str = "X-Consul-KnownLeader";
/// Milliseconds since the answering server last heard from the leader.
pub const HEADER_LAST_CONTACT: &str = "X-Consul-LastContact";
/// `leader`, `stale` or `consistent`.
pub const HEADER_EFFECTIVE_CONSISTENCY: &str = "X-Consul-Effective-Consistency";
/// Always `allow` until ACLs exist.
pub const HEADER_DEFAULT_ACL_POLICY: &str = "X-Consul-Default-Acl-Policy";
/// ACL token header.
pub const HEADER_TOKEN: &str = "X-Consul-Token";

/// Default blocking wait (Consul's `default_query_time`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Maximum blocking wait (Consul's `max_query_time`).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Consistency mode of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Served by the leader.
    #[default]
    Default,
    /// Served by any server from local state.
    Stale,
    /// The leader confirms leadership with a quorum first.
    Consistent,
}

/// Options of a read request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Datacenter (`?dc=`).
    pub datacenter: Option<String>,
    /// Block until the view's index exceeds this (`?index=`).
    pub wait_index: u64,
    /// Maximum blocking time (`?wait=`).
    pub wait_time: Option<Duration>,
    /// Consistency mode.
    pub consistency: Consistency,
    /// bexpr filter (`?filter=`).
    pub filter: Option<String>,
    /// ACL token.
    pub token: Option<String>,
}

/// Metadata returned with a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Consul-Index`.
    pub last_index: u64,
    /// `X-Consul-KnownLeader`.
    pub known_leader: bool,
    /// `X-Consul-LastContact` in milliseconds.
    pub last_contact_ms: u64,
}
