//! Typed async client of the HTTP API (feature `client`), used by the CLI
//! subcommands, `registrator` and `templater`.
//!
//! Every method is a thin wrapper over two primitives:
//! - [`Client::query`]: a GET that understands blocking queries (`?index=&wait=`),
//!   consistency modes and the `X-Consul-*` response headers, and
//! - an internal write helper for PUT/DELETE.
//!
//! Errors read like Consul's Go client (`Unexpected response code: 500 (No cluster
//! leader)`), except that a refused connection says what to do about it.
//!
//! A watch loop over a blocking endpoint looks like this:
//!
//! ```no_run
//! # async fn watch(client: registry_api::client::Client) -> Result<(), registry_api::client::ClientError> {
//! use registry_api::client::next_index;
//! use registry_api::QueryOptions;
//! let mut opts = QueryOptions::default();
//! loop {
//!     let (services, meta) = client.catalog_services(&opts).await?;
//!     // ... use `services` ...
//!     opts.wait_index = next_index(opts.wait_index, meta.last_index);
//! }
//! # }
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::{AgentSelf, Member};
use crate::catalog::{AgentService, AgentServiceRegistration, Node, NodeServices, ServiceNode};
use crate::duration::format_duration;
use crate::event::UserEvent;
use crate::health::{CheckServiceNode, HealthCheck};
use crate::kv::KVPair;
use crate::operator::{KeyringRequest, KeyringResponse, RaftConfiguration};
use crate::prepared_query::{PreparedQuery, PreparedQueryExecuteResponse};
use crate::query::{
    Consistency, DEFAULT_WAIT, HEADER_INDEX, HEADER_KNOWN_LEADER, HEADER_LAST_CONTACT,
    HEADER_TOKEN, QueryMeta, QueryOptions,
};
use crate::session::{IdResponse, SessionEntry, SessionRequest};
use crate::txn::{TxnOp, TxnResponse};

/// Address used when neither a flag nor `CONSUL_HTTP_ADDR` gives one.
pub const DEFAULT_HTTP_ADDR: &str = "http://127.0.0.1:8500";
/// Environment variable holding the agent address (`host:port` or a URL).
pub const ENV_HTTP_ADDR: &str = "CONSUL_HTTP_ADDR";
/// Environment variable holding the ACL token.
pub const ENV_HTTP_TOKEN: &str = "CONSUL_HTTP_TOKEN";

/// Time limit of a request that does not block.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time limit for establishing the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack on top of `wait + wait/16` for a blocking read: the server adds up to
/// wait/16 of jitter, and the response still has to travel back.
const BLOCKING_MARGIN: Duration = Duration::from_secs(10);

/// Errors of [`Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address has a scheme other than `http`/`https`/`unix`.
    #[error("Unknown protocol scheme: {0}")]
    UnknownScheme(String),
    /// `https://` addresses need TLS, which this build does not include.
    #[error("https not supported yet: this build has no TLS support (address {0})")]
    HttpsUnsupported(String),
    /// `unix://` addresses are not supported.
    #[error("unix sockets not supported yet (address {0})")]
    UnixUnsupported(String),
    /// The address could not be parsed as `host:port` or a URL.
    #[error("invalid agent address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// Nothing listens at the agent address.
    #[error(
        "Error connecting to agent at {addr}: connection refused. Is the agent running? \
         Set -http-addr or CONSUL_HTTP_ADDR."
    )]
    ConnectionRefused {
        /// The agent address.
        addr: String,
    },
    /// Another failure to connect (DNS, unreachable host, connect timeout).
    #[error("Error connecting to agent at {addr}: {reason}")]
    Connect {
        /// The agent address.
        addr: String,
        /// The underlying error chain.
        reason: String,
    },
    /// The request did not complete within its time limit.
    #[error("{method} {path} timed out after {}", format_duration(*timeout))]
    Timeout {
        /// HTTP method.
        method: Method,
        /// Request path.
        path: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The agent answered with a non-2xx status (Consul's Go client wording).
    #[error("Unexpected response code: {status} ({body})")]
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body, trimmed.
        body: String,
    },
    /// The connection broke while sending the request or reading the response.
    #[error("{method} {path} failed: {reason}")]
    Transport {
        /// HTTP method.
        method: Method,
        /// Request path.
        path: String,
        /// The underlying error chain.
        reason: String,
    },
    /// The response body is not the expected JSON.
    #[error("failed to decode the response of {path}: {source}")]
    Decode {
        /// Request path.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The request body could not be encoded.
    #[error("failed to encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
}

impl ClientError {
    /// The HTTP status, when the agent answered with a non-2xx one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the agent answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the agent could not be reached at all. Its message already starts
    /// with `Error connecting to agent`, so callers print it without more context.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectionRefused { .. } | ClientError::Connect { .. }
        )
    }

    /// Whether the address or the build is the problem, not the agent.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            ClientError::UnknownScheme(_)
                | ClientError::HttpsUnsupported(_)
                | ClientError::UnixUnsupported(_)
                | ClientError::InvalidAddress { .. }
                | ClientError::Build(_)
        )
    }
}

/// Options of `PUT /v1/kv/:key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvPutOptions {
    /// Opaque client flags (sent only when non-zero, as Consul's client does).
    pub flags: u64,
    /// Check-and-set: 0 writes only if the key is absent, N only if its
    /// ModifyIndex is N.
    pub cas: Option<u64>,
    /// Acquire the lock with this session.
    pub acquire: Option<String>,
    /// Release the lock held by this session.
    pub release: Option<String>,
}

/// Filters of `PUT /v1/event/fire/:name` (regular expressions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFireOptions {
    /// Node name filter.
    pub node: Option<String>,
    /// Service name filter.
    pub service: Option<String>,
    /// Tag filter (needs `service`).
    pub tag: Option<String>,
}

/// The peer `DELETE /v1/operator/raft/peer` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftPeer<'a> {
    /// By server RPC address (`ip:port`): `?address=`.
    Address(&'a str),
    /// By server (node) ID: `?id=`.
    Id(&'a str),
}

/// Computes the `?index=` for the next blocking read from the previous one and
/// the `X-Consul-Index` just returned, following Consul's rules for clients:
/// - the index went backwards (snapshot restore, leader change to a server with an
///   older view, a different agent): reset to 0 so the next read returns at once
///   with a fresh view instead of blocking on a stale index;
/// - the index is 0: use 1, because blocking on index 0 returns immediately and
///   would make the watch loop spin.
pub fn next_index(prev: u64, new: u64) -> u64 {
    if new < prev {
        0
    } else if new < 1 {
        1
    } else {
        new
    }
}

/// The HTTP time limit of a blocking read that asks the server to wait `wait`:
/// the server may hold it for `wait + wait/16` (jitter), then the answer has to
/// reach us.
pub fn blocking_timeout(wait: Duration) -> Duration {
    wait + wait / 16 + BLOCKING_MARGIN
}

/// Characters left as they are in a request path (Go's path escaping keeps these).
fn keep_in_path(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/$&+,:;=@".contains(&b)
}

/// Percent-encodes a path (a KV key, a service name) so that `?`, `#`, `%`,
/// spaces and non-ASCII bytes survive; `/` is kept.
pub fn escape_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw.as_bytes() {
        if keep_in_path(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Parses the `X-Consul-*` headers of a read.
pub fn parse_query_meta(headers: &HeaderMap) -> QueryMeta {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    QueryMeta {
        last_index: text(HEADER_INDEX).and_then(|v| v.parse().ok()).unwrap_or(0),
        known_leader: text(HEADER_KNOWN_LEADER) == Some("true"),
        last_contact_ms: text(HEADER_LAST_CONTACT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// Normalises an agent address to a base URL without a trailing slash.
fn normalize_addr(addr: &str) -> Result<String, ClientError> {
    let addr = addr.trim();
    let (scheme, rest) = match addr.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_string(), addr),
    };
    match scheme.as_str() {
        "http" => {}
        "https" => return Err(ClientError::HttpsUnsupported(addr.to_string())),
        "unix" => return Err(ClientError::UnixUnsupported(addr.to_string())),
        _ => return Err(ClientError::UnknownScheme(scheme)),
    }
    let invalid = |reason: String| ClientError::InvalidAddress {
        addr: addr.to_string(),
        reason,
    };
    if rest.is_empty() {
        return Err(invalid("empty host".into()));
    }
    let base = format!("http://{}", rest.trim_end_matches('/'));
    let url = reqwest::Url::parse(&base).map_err(|e| invalid(e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("empty host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed".into()));
    }
    Ok(base)
}

/// The error chain of a reqwest error as one line (`a: b: c`).
fn error_chain(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether the connection was refused (nothing listening at the address).
fn is_refused(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = s.source();
    }
    error_chain(err)
        .to_ascii_lowercase()
        .contains("connection refused")
}

/// Body of a write.
enum Body<'a> {
    None,
    Json(Vec<u8>),
    Raw(&'a [u8]),
}

/// Typed client of one agent's HTTP API. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    /// Sent as `X-Consul-Token` unless a request carries its own.
    token: Option<String>,
    /// Sent as `?dc=` unless a read names its own.
    datacenter: Option<String>,
    /// Limit of requests that do not block.
    timeout: Duration,
}

impl Client {
    /// A client of the agent at `addr`: `127.0.0.1:8500`, `http://host:port` or
    /// `https://...` (rejected: no TLS in this build).
    pub fn new(addr: &str) -> Result<Client, ClientError> {
        let base = normalize_addr(addr)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base,
            token: None,
            datacenter: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A client configured like Consul's tools: `CONSUL_HTTP_ADDR` (default
    /// `http://127.0.0.1:8500`) and `CONSUL_HTTP_TOKEN`.
    pub fn from_env() -> Result<Client, ClientError> {
        let addr = std::env::var(ENV_HTTP_ADDR)
            .ok()
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string());
        let client = Client::new(&addr)?;
        Ok(match std::env::var(ENV_HTTP_TOKEN) {
            Ok(token) => client.with_token(token),
            Err(_) => client,
        })
    }

    /// Sends `token` as `X-Consul-Token` (an empty token sends none).
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Targets datacenter `dc` (`?dc=`) unless a read names its own; empty means the agent's.
    pub fn with_datacenter(mut self, dc: impl Into<String>) -> Client {
        let dc = dc.into();
        self.datacenter = (!dc.is_empty()).then_some(dc);
        self
    }

    /// Time limit of requests that do not block (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The agent's base URL (`http://127.0.0.1:8500`).
    pub fn address(&self) -> &str {
        &self.base
    }

    // ---------------------------------------------------------------------------
    // Primitives

    /// A request with the token header and the default datacenter.
    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token.or(self.token.as_deref()) {
            rb = rb.header(HEADER_TOKEN, token);
        }
        rb
    }

    /// Sends a request, mapping transport failures to [`ClientError`].
    async fn send(
        &self,
        rb: RequestBuilder,
        method: &Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        rb.timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, method, path, timeout))
    }

    fn transport_error(
        &self,
        err: reqwest::Error,
        method: &Method,
        path: &str,
        timeout: Duration,
    ) -> ClientError {
        if err.is_connect() {
            if is_refused(&err) {
                return ClientError::ConnectionRefused {
                    addr: self.base.clone(),
                };
            }
            return ClientError::Connect {
                addr: self.base.clone(),
                reason: error_chain(&err),
            };
        }
        if err.is_timeout() {
            return ClientError::Timeout {
                method: method.clone(),
                path: path.to_string(),
                timeout,
            };
        }
        ClientError::Transport {
            method: method.clone(),
            path: path.to_string(),
            reason: error_chain(&err),
        }
    }

    /// Reads the body of a response, turning non-2xx statuses into [`ClientError::Status`].
    async fn body(
        &self,
        resp: Response,
        method: &Method,
        path: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, method, path, timeout))?
            .to_vec();
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        Ok((status, bytes))
    }

    /// Blocking-aware GET of `path` (which starts with `/v1/`), decoded as JSON.
    ///
    /// Returns `None` when the agent answers 404 (a missing KV key) or the body is
    /// `null` (an unknown node). `params` are added to those derived from `opts`.
    /// A blocking read (`opts.wait_index > 0`) gets an HTTP time limit of
    /// [`blocking_timeout`] of the requested wait (default 5 minutes).
    pub async fn query<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        opts: &QueryOptions,
    ) -> Result<(Option<T>, QueryMeta), ClientError> {
        self.read(path, params, opts, true).await
    }

    /// [`Client::query`] for endpoints that never answer 404 when they work: a 404
    /// there is an error, not an empty result.
    async fn read_required<T: DeserializeOwned + Default>(
        &self,
        path: &str,
        params: &[(&str, String)],
        opts: &QueryOptions,
    ) -> Result<(T, QueryMeta), ClientError> {
        let (value, meta) = self.read(path, params, opts, false).await?;
        Ok((value.unwrap_or_default(), meta))
    }

    async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        opts: &QueryOptions,
        allow_404: bool,
    ) -> Result<(Option<T>, QueryMeta), ClientError> {
        let method = Method::GET;
        let mut all: Vec<(&str, String)> = params.to_vec();
        if let Some(dc) = opts.datacenter.as_ref().or(self.datacenter.as_ref()) {
            all.push(("dc", dc.clone()));
        }
        if opts.wait_index > 0 {
            all.push(("index", opts.wait_index.to_string()));
        }
        if let Some(wait) = opts.wait_time {
            all.push(("wait", format_duration(wait)));
        }
        match opts.consistency {
            Consistency::Default => {}
            Consistency::Stale => all.push(("stale", String::new())),
            Consistency::Consistent => all.push(("consistent", String::new())),
        }
        if let Some(filter) = opts.filter.as_ref().filter(|f| !f.is_empty()) {
            all.push(("filter", filter.clone()));
        }
        let timeout = if opts.wait_index > 0 {
            blocking_timeout(opts.wait_time.unwrap_or(DEFAULT_WAIT)).max(self.timeout)
        } else {
            self.timeout
        };
        let rb = self
            .request(method.clone(), path, opts.token.as_deref())
            .query(&all);
        let resp = self.send(rb, &method, path, timeout).await?;
        let meta = parse_query_meta(resp.headers());
        if allow_404 && resp.status() == StatusCode::NOT_FOUND {
            return Ok((None, meta));
        }
        let (_, bytes) = self.body(resp, &method, path, timeout).await?;
        Ok((decode_optional(path, &bytes)?, meta))
    }

    /// PUT or DELETE with the default datacenter; returns status and body of a 2xx answer.
    async fn write(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let resp = self
            .write_response(method.clone(), path, params, body)
            .await?;
        self.body(resp, &method, path, self.timeout).await
    }

    async fn write_response(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response, ClientError> {
        let mut all: Vec<(&str, String)> = params.to_vec();
        if let Some(dc) = &self.datacenter {
            all.push(("dc", dc.clone()));
        }
        let mut rb = self.request(method.clone(), path, None).query(&all);
        rb = match body {
            Body::None => rb,
            Body::Json(bytes) => rb.header("Content-Type", "application/json").body(bytes),
            Body::Raw(bytes) => rb.body(bytes.to_vec()),
        };
        self.send(rb, &method, path, self.timeout).await
    }

    /// A write whose answer is JSON.
    async fn write_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Option<T>, ClientError> {
        let (_, bytes) = self.write(method, path, params, body).await?;
        decode_optional(path, &bytes)
    }

    /// A write whose answer is `true`/`false`.
    async fn write_bool(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<bool, ClientError> {
        Ok(self
            .write_json::<bool>(method, path, params, body)
            .await?
            .unwrap_or(false))
    }

    // ---------------------------------------------------------------------------
    // KV

    /// `GET /v1/kv/:key`: the entry, or `None` when the key does not exist.
    pub async fn kv_get(
        &self,
        key: &str,
        opts: &QueryOptions,
    ) -> Result<(Option<KVPair>, QueryMeta), ClientError> {
        let (pairs, meta) = self.query::<Vec<KVPair>>(&kv_path(key), &[], opts).await?;
        Ok((pairs.and_then(|p| p.into_iter().next()), meta))
    }

    /// `GET /v1/kv/:prefix?recurse`: every entry under the prefix (empty when none).
    pub async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
    ) -> Result<(Vec<KVPair>, QueryMeta), ClientError> {
        let params = [("recurse", String::new())];
        let (pairs, meta) = self
            .query::<Vec<KVPair>>(&kv_path(prefix), &params, opts)
            .await?;
        Ok((pairs.unwrap_or_default(), meta))
    }

    /// `GET /v1/kv/:prefix?keys[&separator=]`: key names under the prefix, stopping
    /// at `separator` when one is given (an empty separator lists every key).
    pub async fn kv_keys(
        &self,
        prefix: &str,
        separator: Option<&str>,
        opts: &QueryOptions,
    ) -> Result<(Vec<String>, QueryMeta), ClientError> {
        let mut params = vec![("keys", String::new())];
        if let Some(sep) = separator.filter(|s| !s.is_empty()) {
            params.push(("separator", sep.to_string()));
        }
        let (keys, meta) = self
            .query::<Vec<String>>(&kv_path(prefix), &params, opts)
            .await?;
        Ok((keys.unwrap_or_default(), meta))
    }

    /// `PUT /v1/kv/:key`: `false` when a CAS or lock condition failed.
    pub async fn kv_put(
        &self,
        key: &str,
        value: &[u8],
        opts: &KvPutOptions,
    ) -> Result<bool, ClientError> {
        let mut params = Vec::new();
        if opts.flags != 0 {
            params.push(("flags", opts.flags.to_string()));
        }
        if let Some(cas) = opts.cas {
            params.push(("cas", cas.to_string()));
        }
        if let Some(session) = &opts.acquire {
            params.push(("acquire", session.clone()));
        }
        if let Some(session) = &opts.release {
            params.push(("release", session.clone()));
        }
        self.write_bool(Method::PUT, &kv_path(key), &params, Body::Raw(value))
            .await
    }

    /// `DELETE /v1/kv/:key[?recurse][&cas=N]`: `false` when the CAS failed.
    pub async fn kv_delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<bool, ClientError> {
        let mut params = Vec::new();
        if recurse {
            params.push(("recurse", String::new()));
        }
        if let Some(cas) = cas {
            params.push(("cas", cas.to_string()));
        }
        self.write_bool(Method::DELETE, &kv_path(key), &params, Body::None)
            .await
    }

    /// `PUT /v1/txn`: the HTTP status (200 committed, 409 rolled back) and the answer.
    pub async fn txn(&self, ops: &[TxnOp]) -> Result<(u16, TxnResponse), ClientError> {
        let path = "/v1/txn";
        let body = serde_json::to_vec(ops).map_err(ClientError::Encode)?;
        let resp = self
            .write_response(Method::PUT, path, &[], Body::Json(body))
            .await?;
        let status = resp.status();
        if status == StatusCode::CONFLICT {
            // A rolled-back transaction is an answer, not a failure: read it as such.
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| self.transport_error(e, &Method::PUT, path, self.timeout))?;
            let answer = decode_optional(path, &bytes)?.unwrap_or_default();
            return Ok((status.as_u16(), answer));
        }
        let (status, bytes) = self.body(resp, &Method::PUT, path, self.timeout).await?;
        Ok((
            status.as_u16(),
            decode_optional(path, &bytes)?.unwrap_or_default(),
        ))
    }

    // ---------------------------------------------------------------------------
    // Catalog

    /// `GET /v1/catalog/services`: service name → union of its tags.
    pub async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(std::collections::BTreeMap<String, Vec<String>>, QueryMeta), ClientError> {
        let (map, meta) = self
            .read_required::<std::collections::BTreeMap<String, Option<Vec<String>>>>(
                "/v1/catalog/services",
                &[],
                opts,
            )
            .await?;
        Ok((
            map.into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
            meta,
        ))
    }

    /// `GET /v1/catalog/nodes`.
    pub async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<Node>, QueryMeta), ClientError> {
        self.read_required("/v1/catalog/nodes", &[], opts).await
    }

    /// `GET /v1/catalog/datacenters` (not blocking).
    pub async fn catalog_datacenters(&self) -> Result<Vec<String>, ClientError> {
        let opts = QueryOptions::default();
        Ok(self
            .read_required("/v1/catalog/datacenters", &[], &opts)
            .await?
            .0)
    }

    /// `GET /v1/catalog/service/:name[?tag=..]`: instances having every tag.
    pub async fn catalog_service(
        &self,
        name: &str,
        tags: &[&str],
        opts: &QueryOptions,
    ) -> Result<(Vec<ServiceNode>, QueryMeta), ClientError> {
        let params: Vec<(&str, String)> = tags.iter().map(|t| ("tag", t.to_string())).collect();
        let path = format!("/v1/catalog/service/{}", escape_path(name));
        self.read_required(&path, &params, opts).await
    }

    /// `GET /v1/catalog/node/:node`: `None` for an unknown node.
    pub async fn catalog_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(Option<NodeServices>, QueryMeta), ClientError> {
        let path = format!("/v1/catalog/node/{}", escape_path(node));
        self.query(&path, &[], opts).await
    }

    // ---------------------------------------------------------------------------
    // Health

    /// `GET /v1/health/service/:name[?tag=..][&passing=1]`.
    pub async fn health_service(
        &self,
        name: &str,
        tags: &[&str],
        passing: bool,
        opts: &QueryOptions,
    ) -> Result<(Vec<CheckServiceNode>, QueryMeta), ClientError> {
        let mut params: Vec<(&str, String)> = tags.iter().map(|t| ("tag", t.to_string())).collect();
        if passing {
            params.push(("passing", "1".to_string()));
        }
        let path = format!("/v1/health/service/{}", escape_path(name));
        self.read_required(&path, &params, opts).await
    }

    /// `GET /v1/health/node/:node`: node and service checks of a node.
    pub async fn health_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(Vec<HealthCheck>, QueryMeta), ClientError> {
        let path = format!("/v1/health/node/{}", escape_path(node));
        self.read_required(&path, &[], opts).await
    }

    /// `GET /v1/health/checks/:service`: checks bound to a service name.
    pub async fn health_checks(
        &self,
        service: &str,
        opts: &QueryOptions,
    ) -> Result<(Vec<HealthCheck>, QueryMeta), ClientError> {
        let path = format!("/v1/health/checks/{}", escape_path(service));
        self.read_required(&path, &[], opts).await
    }

    /// `GET /v1/health/state/:state` (`any`, `passing`, `warning`, `critical`).
    pub async fn health_state(
        &self,
        state: &str,
        opts: &QueryOptions,
    ) -> Result<(Vec<HealthCheck>, QueryMeta), ClientError> {
        let path = format!("/v1/health/state/{}", escape_path(state));
        self.read_required(&path, &[], opts).await
    }

    // ---------------------------------------------------------------------------
    // Agent

    /// `GET /v1/agent/self`.
    pub async fn agent_self(
        &self,
        opts: &QueryOptions,
    ) -> Result<(AgentSelf, QueryMeta), ClientError> {
        self.read_required("/v1/agent/self", &[], opts).await
    }

    /// `GET /v1/agent/members[?wan=1]`: the LAN (or WAN) gossip pool as this agent sees it.
    pub async fn agent_members(
        &self,
        wan: bool,
        opts: &QueryOptions,
    ) -> Result<(Vec<Member>, QueryMeta), ClientError> {
        let params = if wan {
            vec![("wan", "1".to_string())]
        } else {
            Vec::new()
        };
        self.read_required("/v1/agent/members", &params, opts).await
    }

    /// `GET /v1/agent/services`: local services keyed by ID.
    pub async fn agent_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(std::collections::BTreeMap<String, AgentService>, QueryMeta), ClientError> {
        self.read_required("/v1/agent/services", &[], opts).await
    }

    /// `GET /v1/agent/checks`: local checks keyed by check ID.
    pub async fn agent_checks(
        &self,
        opts: &QueryOptions,
    ) -> Result<(std::collections::BTreeMap<String, HealthCheck>, QueryMeta), ClientError> {
        self.read_required("/v1/agent/checks", &[], opts).await
    }

    /// `PUT /v1/agent/service/register`.
    pub async fn agent_service_register(
        &self,
        registration: &AgentServiceRegistration,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(registration).map_err(ClientError::Encode)?;
        let path = "/v1/agent/service/register";
        self.write(Method::PUT, path, &[], Body::Json(body))
            .await
            .map(drop)
    }

    /// `PUT /v1/agent/service/deregister/:id`.
    pub async fn agent_service_deregister(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/agent/service/deregister/{}", escape_path(id));
        self.write(Method::PUT, &path, &[], Body::None)
            .await
            .map(drop)
    }

    /// `PUT /v1/agent/join/:address[?wan=1]`.
    pub async fn agent_join(&self, addr: &str, wan: bool) -> Result<(), ClientError> {
        let path = format!("/v1/agent/join/{}", escape_path(addr));
        let params = if wan {
            vec![("wan", "1".to_string())]
        } else {
            Vec::new()
        };
        self.write(Method::PUT, &path, &params, Body::None)
            .await
            .map(drop)
    }

    /// `PUT /v1/agent/leave`: graceful leave, then the agent shuts down.
    pub async fn agent_leave(&self) -> Result<(), ClientError> {
        self.write(Method::PUT, "/v1/agent/leave", &[], Body::None)
            .await
            .map(drop)
    }

    /// `PUT /v1/agent/reload`.
    pub async fn agent_reload(&self) -> Result<(), ClientError> {
        self.write(Method::PUT, "/v1/agent/reload", &[], Body::None)
            .await
            .map(drop)
    }

    /// `PUT /v1/agent/force-leave/:node[?prune=1][&wan=1]`.
    pub async fn agent_force_leave(
        &self,
        node: &str,
        prune: bool,
        wan: bool,
    ) -> Result<(), ClientError> {
        let path = format!("/v1/agent/force-leave/{}", escape_path(node));
        let mut params = Vec::new();
        if prune {
            params.push(("prune", "1".to_string()));
        }
        if wan {
            params.push(("wan", "1".to_string()));
        }
        self.write(Method::PUT, &path, &params, Body::None)
            .await
            .map(drop)
    }

    // ---------------------------------------------------------------------------
    // Status

    /// `GET /v1/status/leader`: the leader's `ip:port`, "" when there is none.
    pub async fn status_leader(
        &self,
        opts: &QueryOptions,
    ) -> Result<(String, QueryMeta), ClientError> {
        self.read_required("/v1/status/leader", &[], opts).await
    }

    /// `GET /v1/status/peers`: Raft voters' `ip:port`.
    pub async fn status_peers(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<String>, QueryMeta), ClientError> {
        self.read_required("/v1/status/peers", &[], opts).await
    }

    // ---------------------------------------------------------------------------
    // Operator

    /// `GET /v1/operator/raft/configuration[?stale]`: the Raft servers (servers only).
    pub async fn raft_configuration(
        &self,
        opts: &QueryOptions,
    ) -> Result<(RaftConfiguration, QueryMeta), ClientError> {
        self.read_required("/v1/operator/raft/configuration", &[], opts)
            .await
    }

    /// `DELETE /v1/operator/raft/peer?address=|id=`: removes a server from the
    /// Raft configuration.
    pub async fn raft_remove_peer(&self, peer: RaftPeer<'_>) -> Result<(), ClientError> {
        let param = match peer {
            RaftPeer::Address(address) => ("address", address.to_string()),
            RaftPeer::Id(id) => ("id", id.to_string()),
        };
        self.write(
            Method::DELETE,
            "/v1/operator/raft/peer",
            &[param],
            Body::None,
        )
        .await
        .map(drop)
    }

    /// `GET /v1/operator/keyring`: the installed gossip keys, one answer per pool.
    /// `relay_factor` (0–5) and `local_only` are sent only when set, as Consul's client does.
    pub async fn keyring_list(
        &self,
        relay_factor: u8,
        local_only: bool,
    ) -> Result<Vec<KeyringResponse>, ClientError> {
        let mut params = keyring_params(relay_factor);
        if local_only {
            params.push(("local-only", "true".to_string()));
        }
        let opts = QueryOptions::default();
        Ok(self
            .read_required("/v1/operator/keyring", &params, &opts)
            .await?
            .0)
    }

    /// `POST /v1/operator/keyring`: installs a new gossip key on every member.
    pub async fn keyring_install(&self, key: &str, relay_factor: u8) -> Result<(), ClientError> {
        self.keyring_change(Method::POST, key, relay_factor).await
    }

    /// `PUT /v1/operator/keyring`: makes an installed key the primary one.
    pub async fn keyring_use(&self, key: &str, relay_factor: u8) -> Result<(), ClientError> {
        self.keyring_change(Method::PUT, key, relay_factor).await
    }

    /// `DELETE /v1/operator/keyring`: removes a key that is not the primary one.
    pub async fn keyring_remove(&self, key: &str, relay_factor: u8) -> Result<(), ClientError> {
        self.keyring_change(Method::DELETE, key, relay_factor).await
    }

    async fn keyring_change(
        &self,
        method: Method,
        key: &str,
        relay_factor: u8,
    ) -> Result<(), ClientError> {
        let body = KeyringRequest {
            key: key.to_string(),
        };
        let body = serde_json::to_vec(&body).map_err(ClientError::Encode)?;
        let params = keyring_params(relay_factor);
        self.write(method, "/v1/operator/keyring", &params, Body::Json(body))
            .await
            .map(drop)
    }

    // ---------------------------------------------------------------------------
    // Sessions

    /// `PUT /v1/session/create`: the new session's ID.
    pub async fn session_create(&self, request: &SessionRequest) -> Result<String, ClientError> {
        let path = "/v1/session/create";
        let body = serde_json::to_vec(request).map_err(ClientError::Encode)?;
        let answer: Option<IdResponse> = self
            .write_json(Method::PUT, path, &[], Body::Json(body))
            .await?;
        answer.map(|a| a.id).ok_or_else(|| ClientError::Decode {
            path: path.to_string(),
            source: serde::de::Error::custom("empty answer"),
        })
    }

    /// `PUT /v1/session/destroy/:id`.
    pub async fn session_destroy(&self, id: &str) -> Result<bool, ClientError> {
        let path = format!("/v1/session/destroy/{}", escape_path(id));
        self.write_bool(Method::PUT, &path, &[], Body::None).await
    }

    /// `GET /v1/session/info/:id`: `None` for an unknown session.
    pub async fn session_info(
        &self,
        id: &str,
        opts: &QueryOptions,
    ) -> Result<(Option<SessionEntry>, QueryMeta), ClientError> {
        let path = format!("/v1/session/info/{}", escape_path(id));
        let (list, meta) = self.query::<Vec<SessionEntry>>(&path, &[], opts).await?;
        Ok((list.and_then(|l| l.into_iter().next()), meta))
    }

    /// `PUT /v1/session/renew/:id`: the renewed session, `None` when it no longer exists.
    pub async fn session_renew(&self, id: &str) -> Result<Option<SessionEntry>, ClientError> {
        let path = format!("/v1/session/renew/{}", escape_path(id));
        match self
            .write_json::<Vec<SessionEntry>>(Method::PUT, &path, &[], Body::None)
            .await
        {
            Ok(list) => Ok(list.and_then(|l| l.into_iter().next())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/session/list`.
    pub async fn session_list(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<SessionEntry>, QueryMeta), ClientError> {
        self.read_required("/v1/session/list", &[], opts).await
    }

    /// `GET /v1/session/node/:node`.
    pub async fn session_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(Vec<SessionEntry>, QueryMeta), ClientError> {
        let path = format!("/v1/session/node/{}", escape_path(node));
        self.read_required(&path, &[], opts).await
    }

    // ---------------------------------------------------------------------------
    // Prepared queries

    /// `POST /v1/query`: the new query's ID.
    pub async fn prepared_query_create(
        &self,
        query: &PreparedQuery,
    ) -> Result<String, ClientError> {
        let path = "/v1/query";
        let body = serde_json::to_vec(query).map_err(ClientError::Encode)?;
        let answer: Option<IdResponse> = self
            .write_json(Method::POST, path, &[], Body::Json(body))
            .await?;
        answer.map(|a| a.id).ok_or_else(|| ClientError::Decode {
            path: path.to_string(),
            source: serde::de::Error::custom("empty answer"),
        })
    }

    /// `PUT /v1/query/:id` (the ID comes from `query.id`).
    pub async fn prepared_query_update(&self, query: &PreparedQuery) -> Result<(), ClientError> {
        let path = format!("/v1/query/{}", escape_path(&query.id));
        let body = serde_json::to_vec(query).map_err(ClientError::Encode)?;
        self.write(Method::PUT, &path, &[], Body::Json(body))
            .await
            .map(drop)
    }

    /// `DELETE /v1/query/:id`.
    pub async fn prepared_query_delete(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/query/{}", escape_path(id));
        self.write(Method::DELETE, &path, &[], Body::None)
            .await
            .map(drop)
    }

    /// `GET /v1/query`.
    pub async fn prepared_query_list(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<PreparedQuery>, QueryMeta), ClientError> {
        self.read_required("/v1/query", &[], opts).await
    }

    /// `GET /v1/query/:id/execute`: `None` for an unknown ID or name.
    pub async fn prepared_query_execute(
        &self,
        id_or_name: &str,
        opts: &QueryOptions,
    ) -> Result<(Option<PreparedQueryExecuteResponse>, QueryMeta), ClientError> {
        let path = format!("/v1/query/{}/execute", escape_path(id_or_name));
        self.query(&path, &[], opts).await
    }

    // ---------------------------------------------------------------------------
    // Events

    /// `PUT /v1/event/fire/:name`: the event as the agent recorded it.
    pub async fn event_fire(
        &self,
        name: &str,
        payload: &[u8],
        opts: &EventFireOptions,
    ) -> Result<UserEvent, ClientError> {
        let path = format!("/v1/event/fire/{}", escape_path(name));
        let mut params = Vec::new();
        for (key, value) in [
            ("node", &opts.node),
            ("service", &opts.service),
            ("tag", &opts.tag),
        ] {
            if let Some(v) = value {
                params.push((key, v.clone()));
            }
        }
        let body = if payload.is_empty() {
            Body::None
        } else {
            Body::Raw(payload)
        };
        let event: Option<UserEvent> = self.write_json(Method::PUT, &path, &params, body).await?;
        Ok(event.unwrap_or_default())
    }

    /// `GET /v1/event/list[?name=]`: the recent events this agent saw. Its index is
    /// agent-local (do not compare it across agents).
    pub async fn event_list(
        &self,
        name: Option<&str>,
        opts: &QueryOptions,
    ) -> Result<(Vec<UserEvent>, QueryMeta), ClientError> {
        let params: Vec<(&str, String)> = name
            .filter(|n| !n.is_empty())
            .map(|n| ("name", n.to_string()))
            .into_iter()
            .collect();
        self.read_required("/v1/event/list", &params, opts).await
    }

    /// `PUT` of a JSON body to any endpoint, for the few not wrapped above.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        body: &B,
    ) -> Result<Option<T>, ClientError> {
        let body = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        self.write_json(Method::PUT, path, params, Body::Json(body))
            .await
    }
}

/// `/v1/kv/<key>` with the key escaped; a leading `/` is dropped, as Consul's client does.
fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", escape_path(key.trim_start_matches('/')))
}

/// `?relay-factor=N` when non-zero.
fn keyring_params(relay_factor: u8) -> Vec<(&'static str, String)> {
    if relay_factor > 0 {
        vec![("relay-factor", relay_factor.to_string())]
    } else {
        Vec::new()
    }
}

/// Decodes a JSON body; an empty body or `null` is `None`.
fn decode_optional<T: DeserializeOwned>(
    path: &str,
    bytes: &[u8],
) -> Result<Option<T>, ClientError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Option<T>>(bytes).map_err(|source| ClientError::Decode {
        path: path.to_string(),
        source,
    })
}

fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    ClientError::Status {
        status: status.as_u16(),
        body: String::from_utf8_lossy(body).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// Serves one canned HTTP response on a fresh port and hands back the raw request.
    async fn serve_once(
        status: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(body);
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= head_end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            sock.write_all(response.as_bytes()).await.unwrap();
            sock.shutdown().await.ok();
            String::from_utf8_lossy(&buf).into_owned()
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn next_index_follows_consul_client_rules() {
        // First read and normal progress.
        assert_eq!(next_index(0, 5), 5);
        assert_eq!(next_index(5, 9), 9);
        // Unchanged view (wait timed out): keep blocking on the same index.
        assert_eq!(next_index(9, 9), 9);
        // Backwards: reset so the next read returns a fresh view at once.
        assert_eq!(next_index(9, 3), 0);
        // Never block on index 0, it would spin.
        assert_eq!(next_index(0, 0), 1);
        // Backwards to 0 resets too; the answer after that is then sanitised to >= 1.
        assert_eq!(next_index(4, 0), 0);
    }

    #[test]
    fn blocking_timeout_exceeds_wait_plus_jitter() {
        for secs in [1u64, 10, 300, 600] {
            let wait = Duration::from_secs(secs);
            assert!(blocking_timeout(wait) > wait + wait / 16);
        }
    }

    #[test]
    fn addresses_normalise_like_consul() {
        assert_eq!(
            normalize_addr("127.0.0.1:8500").unwrap(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            normalize_addr("localhost:8500").unwrap(),
            "http://localhost:8500"
        );
        assert_eq!(
            normalize_addr("http://10.0.0.1:8500/").unwrap(),
            "http://10.0.0.1:8500"
        );
        assert_eq!(normalize_addr("[::1]:8500").unwrap(), "http://[::1]:8500");
        assert!(matches!(
            normalize_addr("https://a:8501"),
            Err(ClientError::HttpsUnsupported(_))
        ));
        assert!(matches!(
            normalize_addr("unix:///tmp/c.sock"),
            Err(ClientError::UnixUnsupported(_))
        ));
        let err = normalize_addr("ftp://a").unwrap_err();
        assert_eq!(err.to_string(), "Unknown protocol scheme: ftp");
        assert!(normalize_addr("http://").is_err());
    }

    #[test]
    fn paths_are_escaped() {
        assert_eq!(escape_path("a/b c?d#e%f"), "a/b%20c%3Fd%23e%25f");
        assert_eq!(escape_path("web:8080@x"), "web:8080@x");
        assert_eq!(escape_path("é"), "%C3%A9");
        assert_eq!(kv_path("/foo/bar"), "/v1/kv/foo/bar");
        assert_eq!(kv_path(""), "/v1/kv/");
    }

    #[tokio::test]
    async fn query_sends_options_and_parses_meta() {
        let (addr, server) = serve_once(
            "200 OK",
            &[
                ("X-Consul-Index", "42"),
                ("X-Consul-KnownLeader", "true"),
                ("X-Consul-LastContact", "7"),
            ],
            r#"{"web":["v1"],"consul":null}"#,
        )
        .await;
        let client = Client::new(&addr)
            .unwrap()
            .with_token("secret")
            .with_datacenter("dc2");
        let opts = QueryOptions {
            wait_index: 41,
            wait_time: Some(Duration::from_secs(90)),
            consistency: Consistency::Stale,
            filter: Some("ServiceName == web".into()),
            ..QueryOptions::default()
        };
        let (services, meta) = client.catalog_services(&opts).await.unwrap();
        assert_eq!(
            meta,
            QueryMeta {
                last_index: 42,
                known_leader: true,
                last_contact_ms: 7
            }
        );
        assert_eq!(services.get("web").unwrap(), &vec!["v1".to_string()]);
        assert!(services.get("consul").unwrap().is_empty());
        let request = server.await.unwrap();
        let line = request.lines().next().unwrap();
        assert!(line.starts_with("GET /v1/catalog/services?"), "{line}");
        for part in [
            "dc=dc2",
            "index=41",
            "wait=1m30s",
            "stale=",
            "filter=ServiceName+%3D%3D+web",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        assert!(
            request
                .to_ascii_lowercase()
                .contains("x-consul-token: secret")
        );
    }

    #[tokio::test]
    async fn missing_kv_key_is_none_not_an_error() {
        let (addr, _server) = serve_once("404 Not Found", &[("X-Consul-Index", "9")], "").await;
        let client = Client::new(&addr).unwrap();
        let (pair, meta) = client
            .kv_get("nope", &QueryOptions::default())
            .await
            .unwrap();
        assert!(pair.is_none());
        assert_eq!(meta.last_index, 9);
    }

    #[tokio::test]
    async fn non_2xx_reads_like_consuls_go_client() {
        let (addr, _server) =
            serve_once("500 Internal Server Error", &[], "No cluster leader\n").await;
        let client = Client::new(&addr).unwrap();
        let err = client
            .catalog_nodes(&QueryOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert_eq!(
            err.to_string(),
            "Unexpected response code: 500 (No cluster leader)"
        );
    }

    #[tokio::test]
    async fn refused_connection_says_what_to_do() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = Client::new(&format!("127.0.0.1:{port}")).unwrap();
        let err = client
            .agent_members(false, &QueryOptions::default())
            .await
            .unwrap_err();
        assert!(err.is_connection_error(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "Error connecting to agent at http://127.0.0.1:{port}: connection refused. \
                 Is the agent running? Set -http-addr or CONSUL_HTTP_ADDR."
            )
        );
    }

    #[tokio::test]
    async fn kv_put_sends_raw_body_and_options() {
        let (addr, server) = serve_once("200 OK", &[], "false").await;
        let client = Client::new(&addr).unwrap();
        let opts = KvPutOptions {
            flags: 5,
            cas: Some(0),
            ..KvPutOptions::default()
        };
        let ok = client.kv_put("a b/c", b"hello", &opts).await.unwrap();
        assert!(!ok);
        let request = server.await.unwrap();
        assert!(
            request.starts_with("PUT /v1/kv/a%20b/c?flags=5&cas=0 "),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\nhello"), "{request}");
    }

    #[tokio::test]
    async fn rolled_back_txn_is_an_answer() {
        let body = r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"key doesn't exist"}]}"#;
        let (addr, _server) = serve_once("409 Conflict", &[], body).await;
        let client = Client::new(&addr).unwrap();
        let (status, answer) = client.txn(&[]).await.unwrap();
        assert_eq!(status, 409);
        assert_eq!(answer.errors.unwrap()[0].what, "key doesn't exist");
    }
    #[tokio::test]
    async fn raft_configuration_and_remove_peer() {
        let body = r#"{"Servers":[{"ID":"id-1","Node":"n1","Address":"127.0.0.1:8300","Leader":true,"ProtocolVersion":"3","Voter":true,"LastIndex":9}],"Index":4}"#;
        let (addr, server) = serve_once("200 OK", &[("X-Consul-Index", "4")], body).await;
        let client = Client::new(&addr).unwrap();
        let opts = QueryOptions {
            consistency: Consistency::Stale,
            ..QueryOptions::default()
        };
        let (config, meta) = client.raft_configuration(&opts).await.unwrap();
        assert_eq!((config.index, meta.last_index), (4, 4));
        assert_eq!(config.servers[0].node, "n1");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /v1/operator/raft/configuration?stale= "),
            "{request}"
        );

        let (addr, server) = serve_once("200 OK", &[], "").await;
        let client = Client::new(&addr).unwrap();
        client
            .raft_remove_peer(RaftPeer::Address("10.0.0.9:8300"))
            .await
            .unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("DELETE /v1/operator/raft/peer?address=10.0.0.9%3A8300 "),
            "{request}"
        );
        let (addr, server) = serve_once("200 OK", &[], "").await;
        let client = Client::new(&addr).unwrap();
        client.raft_remove_peer(RaftPeer::Id("abc")).await.unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("DELETE /v1/operator/raft/peer?id=abc "),
            "{request}"
        );
    }

    #[tokio::test]
    async fn keyring_methods_send_consul_requests() {
        let body = r#"[{"WAN":false,"Datacenter":"dc1","Segment":"","Keys":{"k1":1},"PrimaryKeys":{"k1":1},"NumNodes":1}]"#;
        let (addr, server) = serve_once("200 OK", &[], body).await;
        let client = Client::new(&addr).unwrap();
        let pools = client.keyring_list(2, true).await.unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].keys.get("k1"), Some(&1));
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /v1/operator/keyring?relay-factor=2&local-only=true "),
            "{request}"
        );

        for (method, expected) in [("install", "POST"), ("use", "PUT"), ("remove", "DELETE")] {
            let (addr, server) = serve_once("200 OK", &[], "").await;
            let client = Client::new(&addr).unwrap();
            let result = match method {
                "install" => client.keyring_install("a2V5", 0).await,
                "use" => client.keyring_use("a2V5", 0).await,
                _ => client.keyring_remove("a2V5", 0).await,
            };
            result.unwrap();
            let request = server.await.unwrap();
            assert!(
                request.starts_with(&format!("{expected} /v1/operator/keyring HTTP/1.1")),
                "{request}"
            );
            assert!(request.ends_with(r#"{"Key":"a2V5"}"#), "{request}");
        }

        let (addr, _server) = serve_once(
            "500 Internal Server Error",
            &[],
            "gossip encryption is not enabled",
        )
        .await;
        let client = Client::new(&addr).unwrap();
        let err = client.keyring_list(0, false).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unexpected response code: 500 (gossip encryption is not enabled)"
        );
    }
}
