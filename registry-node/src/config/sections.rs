//! Nested blocks of the agent configuration (`ports { }`, `dns_config { }`, `acl { }`...).
//!
//! Keys and defaults follow Consul's agent configuration reference. Blocks the
//! registry accepts for compatibility but does not act on (ACL enforcement, TLS
//! material, telemetry sinks) are still typed, so a typo inside them is reported.

use std::collections::BTreeMap;
use std::time::Duration;

use registry_api::GoDuration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn secs(n: u64) -> GoDuration {
    GoDuration(Duration::from_secs(n))
}

fn millis(n: u64) -> GoDuration {
    GoDuration(Duration::from_millis(n))
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------------------
// addresses / ports

/// `addresses { }`: per-interface bind addresses; each defaults to `client_addr`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressesConfig {
    /// DNS listener address(es), space separated.
    #[serde(default)]
    pub dns: String,
    /// HTTP listener address(es); `unix:///path` allowed.
    #[serde(default)]
    pub http: String,
    /// HTTPS listener address(es); `unix:///path` allowed.
    #[serde(default)]
    pub https: String,
    /// gRPC listener address(es).
    #[serde(default)]
    pub grpc: String,
    /// gRPC-TLS listener address(es).
    #[serde(default)]
    pub grpc_tls: String,
}

/// `ports { }`. `-1` disables a listener; `0` lets the OS pick (used by tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsConfig {
    /// DNS (UDP and TCP).
    #[serde(default = "default_port_dns")]
    pub dns: i32,
    /// HTTP API.
    #[serde(default = "default_port_http")]
    pub http: i32,
    /// HTTPS API (off by default).
    #[serde(default = "default_port_disabled")]
    pub https: i32,
    /// gRPC (off by default; 8502 in `-dev`).
    #[serde(default = "default_port_disabled")]
    pub grpc: i32,
    /// gRPC over TLS (off by default).
    #[serde(default = "default_port_disabled")]
    pub grpc_tls: i32,
    /// Serf LAN gossip (TCP and UDP).
    #[serde(default = "default_port_serf_lan")]
    pub serf_lan: i32,
    /// Serf WAN gossip (servers).
    #[serde(default = "default_port_serf_wan")]
    pub serf_wan: i32,
    /// Server RPC (Raft and forwarding).
    #[serde(default = "default_port_server")]
    pub server: i32,
    /// Lowest port for automatically assigned sidecar services.
    #[serde(default = "default_port_sidecar_min")]
    pub sidecar_min_port: i32,
    /// Highest port for automatically assigned sidecar services.
    #[serde(default = "default_port_sidecar_max")]
    pub sidecar_max_port: i32,
    /// Lowest port for exposed checks.
    #[serde(default = "default_port_expose_min")]
    pub expose_min_port: i32,
    /// Highest port for exposed checks.
    #[serde(default = "default_port_expose_max")]
    pub expose_max_port: i32,
}

fn default_port_dns() -> i32 {
    8600
}
fn default_port_http() -> i32 {
    8500
}
fn default_port_disabled() -> i32 {
    -1
}
fn default_port_serf_lan() -> i32 {
    8301
}
fn default_port_serf_wan() -> i32 {
    8302
}
fn default_port_server() -> i32 {
    8300
}
fn default_port_sidecar_min() -> i32 {
    21000
}
fn default_port_sidecar_max() -> i32 {
    21255
}
fn default_port_expose_min() -> i32 {
    21500
}
fn default_port_expose_max() -> i32 {
    21755
}

impl Default for PortsConfig {
    fn default() -> Self {
        PortsConfig {
            dns: default_port_dns(),
            http: default_port_http(),
            https: default_port_disabled(),
            grpc: default_port_disabled(),
            grpc_tls: default_port_disabled(),
            serf_lan: default_port_serf_lan(),
            serf_wan: default_port_serf_wan(),
            server: default_port_server(),
            sidecar_min_port: default_port_sidecar_min(),
            sidecar_max_port: default_port_sidecar_max(),
            expose_min_port: default_port_expose_min(),
            expose_max_port: default_port_expose_max(),
        }
    }
}

impl PortsConfig {
    /// Every port with its key, for validation messages.
    pub fn named(&self) -> [(&'static str, i32); 12] {
        [
            ("dns", self.dns),
            ("http", self.http),
            ("https", self.https),
            ("grpc", self.grpc),
            ("grpc_tls", self.grpc_tls),
            ("serf_lan", self.serf_lan),
            ("serf_wan", self.serf_wan),
            ("server", self.server),
            ("sidecar_min_port", self.sidecar_min_port),
            ("sidecar_max_port", self.sidecar_max_port),
            ("expose_min_port", self.expose_min_port),
            ("expose_max_port", self.expose_max_port),
        ]
    }
}

// ---------------------------------------------------------------------------
// DNS

/// `dns_config { }` (Consul §3.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Serve from any server, not only the leader.
    #[serde(default = "yes")]
    pub allow_stale: bool,
    /// How stale an answer may be before the leader is asked.
    #[serde(default = "default_max_stale")]
    pub max_stale: GoDuration,
    /// TTL of node lookups.
    #[serde(default)]
    pub node_ttl: GoDuration,
    /// TTL of service lookups by service name (`"*"` and `"prefix*"` allowed).
    #[serde(default)]
    pub service_ttl: BTreeMap<String, GoDuration>,
    /// Set TC on UDP answers with more than 3 records (or over 512 bytes).
    #[serde(default)]
    pub enable_truncate: bool,
    /// Leave out instances whose checks are warning, not only critical.
    #[serde(default)]
    pub only_passing: bool,
    /// `sequential` or `random` order of asking `recursors`.
    #[serde(default = "default_recursor_strategy")]
    pub recursor_strategy: String,
    /// Timeout of one recursive query.
    #[serde(default = "default_recursor_timeout")]
    pub recursor_timeout: GoDuration,
    /// Do not compress DNS answers.
    #[serde(default)]
    pub disable_compression: bool,
    /// Deprecated cap of UDP answers.
    #[serde(default = "default_udp_answer_limit")]
    pub udp_answer_limit: u32,
    /// Cap of A/AAAA records per answer (0 = no cap).
    #[serde(default)]
    pub a_record_limit: u32,
    /// Add node meta as TXT records to the additional section.
    #[serde(default = "yes")]
    pub enable_additional_node_meta_txt: bool,
    /// SOA timers.
    #[serde(default)]
    pub soa: SoaConfig,
    /// Answer from the agent cache.
    #[serde(default)]
    pub use_cache: bool,
    /// Oldest cached answer served (0 = no limit).
    #[serde(default)]
    pub cache_max_age: GoDuration,
    /// Enterprise, deprecated; accepted and ignored.
    #[serde(default)]
    pub prefer_namespace: bool,
}

fn default_max_stale() -> GoDuration {
    secs(87600 * 3600)
}
fn default_recursor_strategy() -> String {
    "sequential".to_string()
}
fn default_recursor_timeout() -> GoDuration {
    secs(2)
}
fn default_udp_answer_limit() -> u32 {
    3
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            allow_stale: true,
            max_stale: default_max_stale(),
            node_ttl: GoDuration::default(),
            service_ttl: BTreeMap::new(),
            enable_truncate: false,
            only_passing: false,
            recursor_strategy: default_recursor_strategy(),
            recursor_timeout: default_recursor_timeout(),
            disable_compression: false,
            udp_answer_limit: default_udp_answer_limit(),
            a_record_limit: 0,
            enable_additional_node_meta_txt: true,
            soa: SoaConfig::default(),
            use_cache: false,
            cache_max_age: GoDuration::default(),
            prefer_namespace: false,
        }
    }
}

/// `dns_config { soa { } }`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaConfig {
    /// SOA expire.
    #[serde(default = "default_soa_expire")]
    pub expire: u32,
    /// SOA minimum (negative-caching) TTL.
    #[serde(default)]
    pub min_ttl: u32,
    /// SOA refresh.
    #[serde(default = "default_soa_refresh")]
    pub refresh: u32,
    /// SOA retry.
    #[serde(default = "default_soa_retry")]
    pub retry: u32,
}

fn default_soa_expire() -> u32 {
    86400
}
fn default_soa_refresh() -> u32 {
    3600
}
fn default_soa_retry() -> u32 {
    600
}

impl Default for SoaConfig {
    fn default() -> Self {
        SoaConfig {
            expire: default_soa_expire(),
            min_ttl: 0,
            refresh: default_soa_refresh(),
            retry: default_soa_retry(),
        }
    }
}

// ---------------------------------------------------------------------------
// Raft / performance / limits / autopilot

/// `performance { }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceConfig {
    /// Scales Raft timing: 1 is fastest, 10 slowest (default 5).
    #[serde(default = "default_raft_multiplier")]
    pub raft_multiplier: u32,
    /// How long a leaving server keeps serving RPCs.
    #[serde(default = "default_leave_drain_time")]
    pub leave_drain_time: GoDuration,
    /// How long RPCs are held while there is no leader.
    #[serde(default = "default_rpc_hold_timeout")]
    pub rpc_hold_timeout: GoDuration,
}

fn default_raft_multiplier() -> u32 {
    5
}
fn default_leave_drain_time() -> GoDuration {
    secs(5)
}
fn default_rpc_hold_timeout() -> GoDuration {
    secs(7)
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            raft_multiplier: default_raft_multiplier(),
            leave_drain_time: default_leave_drain_time(),
            rpc_hold_timeout: default_rpc_hold_timeout(),
        }
    }
}

/// `limits { }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent HTTP connections per client IP.
    #[serde(default = "default_http_max_conns_per_client")]
    pub http_max_conns_per_client: u32,
    /// Concurrent RPC connections per client IP.
    #[serde(default = "default_rpc_max_conns_per_client")]
    pub rpc_max_conns_per_client: u32,
    /// RPC requests per second a client agent may send (absent = unlimited).
    #[serde(default)]
    pub rpc_rate: Option<f64>,
    /// Burst of `rpc_rate`.
    #[serde(default = "default_rpc_max_burst")]
    pub rpc_max_burst: u32,
    /// Largest KV value in bytes.
    #[serde(default = "default_kv_max_value_size")]
    pub kv_max_value_size: u64,
    /// Largest transaction request body in bytes.
    #[serde(default = "default_txn_max_req_len")]
    pub txn_max_req_len: u64,
    /// Timeout of an HTTPS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub https_handshake_timeout: GoDuration,
    /// Timeout of an RPC TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub rpc_handshake_timeout: GoDuration,
    /// Timeout of a client-to-server RPC.
    #[serde(default = "default_rpc_client_timeout")]
    pub rpc_client_timeout: GoDuration,
    /// Concurrent requests that may read the request body (0 = no limit).
    #[serde(default)]
    pub request_limits: Option<Value>,
}

fn default_http_max_conns_per_client() -> u32 {
    200
}
fn default_rpc_max_conns_per_client() -> u32 {
    100
}
fn default_rpc_max_burst() -> u32 {
    1000
}
fn default_kv_max_value_size() -> u64 {
    512 * 1024
}
fn default_txn_max_req_len() -> u64 {
    512 * 1024
}
fn default_handshake_timeout() -> GoDuration {
    secs(5)
}
fn default_rpc_client_timeout() -> GoDuration {
    secs(60)
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            http_max_conns_per_client: default_http_max_conns_per_client(),
            rpc_max_conns_per_client: default_rpc_max_conns_per_client(),
            rpc_rate: None,
            rpc_max_burst: default_rpc_max_burst(),
            kv_max_value_size: default_kv_max_value_size(),
            txn_max_req_len: default_txn_max_req_len(),
            https_handshake_timeout: default_handshake_timeout(),
            rpc_handshake_timeout: default_handshake_timeout(),
            rpc_client_timeout: default_rpc_client_timeout(),
            request_limits: None,
        }
    }
}

/// `autopilot { }`: server health and dead-server cleanup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutopilotConfig {
    /// Remove failed servers from Raft when a new one joins.
    #[serde(default = "yes")]
    pub cleanup_dead_servers: bool,
    /// A server is unhealthy when it has not heard from the leader for this long.
    #[serde(default = "default_last_contact_threshold")]
    pub last_contact_threshold: GoDuration,
    /// A server is unhealthy when it trails the leader by more log entries.
    #[serde(default = "default_max_trailing_logs")]
    pub max_trailing_logs: u64,
    /// Never remove servers below this count.
    #[serde(default)]
    pub min_quorum: u32,
    /// A new server must be healthy this long before it becomes a voter.
    #[serde(default = "default_server_stabilization_time")]
    pub server_stabilization_time: GoDuration,
    /// Enterprise; accepted and ignored.
    #[serde(default)]
    pub redundancy_zone_tag: String,
    /// Enterprise; accepted and ignored.
    #[serde(default)]
    pub disable_upgrade_migration: bool,
    /// Enterprise; accepted and ignored.
    #[serde(default)]
    pub upgrade_version_tag: String,
}

fn default_last_contact_threshold() -> GoDuration {
    millis(200)
}
fn default_max_trailing_logs() -> u64 {
    250
}
fn default_server_stabilization_time() -> GoDuration {
    secs(10)
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold: default_last_contact_threshold(),
            max_trailing_logs: default_max_trailing_logs(),
            min_quorum: 0,
            server_stabilization_time: default_server_stabilization_time(),
            redundancy_zone_tag: String::new(),
            disable_upgrade_migration: false,
            upgrade_version_tag: String::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// Gossip

/// `gossip_lan { }` / `gossip_wan { }`. Unset keys take the pool's defaults,
/// which differ between LAN and WAN; read them through [`GossipConfig::lan`] and
/// [`GossipConfig::wan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipConfig {
    /// Members gossiped to per interval.
    #[serde(default)]
    pub gossip_nodes: Option<u32>,
    /// Gossip period.
    #[serde(default)]
    pub gossip_interval: Option<GoDuration>,
    /// Failure-detector probe period.
    #[serde(default)]
    pub probe_interval: Option<GoDuration>,
    /// Wait for a direct probe ack before indirect probes.
    #[serde(default)]
    pub probe_timeout: Option<GoDuration>,
    /// Suspicion timeout multiplier.
    #[serde(default)]
    pub suspicion_mult: Option<u32>,
    /// Broadcast retransmit multiplier.
    #[serde(default)]
    pub retransmit_mult: Option<u32>,
}

/// Gossip parameters with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipParams {
    /// Members gossiped to per interval.
    pub gossip_nodes: u32,
    /// Gossip period.
    pub gossip_interval: Duration,
    /// Probe period.
    pub probe_interval: Duration,
    /// Direct probe timeout.
    pub probe_timeout: Duration,
    /// Suspicion timeout multiplier.
    pub suspicion_mult: u32,
    /// Broadcast retransmit multiplier.
    pub retransmit_mult: u32,
}

impl GossipConfig {
    fn fill(&self, base: GossipParams) -> GossipParams {
        GossipParams {
            gossip_nodes: self.gossip_nodes.unwrap_or(base.gossip_nodes),
            gossip_interval: self
                .gossip_interval
                .map_or(base.gossip_interval, GoDuration::get),
            probe_interval: self
                .probe_interval
                .map_or(base.probe_interval, GoDuration::get),
            probe_timeout: self
                .probe_timeout
                .map_or(base.probe_timeout, GoDuration::get),
            suspicion_mult: self.suspicion_mult.unwrap_or(base.suspicion_mult),
            retransmit_mult: self.retransmit_mult.unwrap_or(base.retransmit_mult),
        }
    }

    /// LAN parameters (memberlist's `DefaultLANConfig`).
    pub fn lan(&self) -> GossipParams {
        self.fill(GossipParams {
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            suspicion_mult: 4,
            retransmit_mult: 4,
        })
    }

    /// WAN parameters (memberlist's `DefaultWANConfig`).
    pub fn wan(&self) -> GossipParams {
        self.fill(GossipParams {
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            retransmit_mult: 4,
        })
    }
}

// ---------------------------------------------------------------------------
// UI / HTTP

/// `ui_config { }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the web UI.
    #[serde(default)]
    pub enabled: bool,
    /// Serve the UI from this directory instead of the embedded assets.
    #[serde(default)]
    pub dir: String,
    /// URL path the UI is served under.
    #[serde(default = "default_ui_content_path")]
    pub content_path: String,
    /// Metrics provider of the UI (accepted, not used).
    #[serde(default)]
    pub metrics_provider: String,
    /// Metrics provider files (accepted, not used).
    #[serde(default)]
    pub metrics_provider_files: Vec<String>,
    /// Metrics provider options (accepted, not used).
    #[serde(default)]
    pub metrics_provider_options_json: String,
    /// Metrics proxy block (accepted, not used).
    #[serde(default)]
    pub metrics_proxy: Option<Value>,
    /// Dashboard links shown by the UI.
    #[serde(default)]
    pub dashboard_url_templates: BTreeMap<String, String>,
}

fn default_ui_content_path() -> String {
    "/ui/".to_string()
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: false,
            dir: String::new(),
            content_path: default_ui_content_path(),
            metrics_provider: String::new(),
            metrics_provider_files: Vec::new(),
            metrics_provider_options_json: String::new(),
            metrics_proxy: None,
            dashboard_url_templates: BTreeMap::new(),
        }
    }
}

/// `http_config { }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// URL path prefixes answered with 403.
    #[serde(default)]
    pub block_endpoints: Vec<String>,
    /// Headers added to every HTTP response.
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// CIDRs allowed to use write endpoints (empty = everyone).
    #[serde(default)]
    pub allow_write_http_from: Vec<String>,
    /// Allow `?cached` reads.
    #[serde(default = "yes")]
    pub use_cache: bool,
    /// Largest request header block (0 = library default).
    #[serde(default)]
    pub max_header_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            block_endpoints: Vec::new(),
            response_headers: BTreeMap::new(),
            allow_write_http_from: Vec::new(),
            use_cache: true,
            max_header_bytes: 0,
        }
    }
}

/// `rpc { }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Serve streaming RPCs.
    #[serde(default = "yes")]
    pub enable_streaming: bool,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            enable_streaming: true,
        }
    }
}

// ---------------------------------------------------------------------------
// Accepted, not enforced: ACL, TLS, telemetry, connect

/// `acl { }`: parsed for compatibility; ACLs are not enforced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// ACL system on.
    #[serde(default)]
    pub enabled: bool,
    /// `allow` or `deny`.
    #[serde(default = "default_acl_default_policy")]
    pub default_policy: String,
    /// `allow`, `deny`, `extend-cache` or `async-cache`.
    #[serde(default = "default_acl_down_policy")]
    pub down_policy: String,
    /// Policy cache TTL.
    #[serde(default = "default_acl_ttl")]
    pub policy_ttl: GoDuration,
    /// Role cache TTL.
    #[serde(default = "default_acl_ttl")]
    pub role_ttl: GoDuration,
    /// Token cache TTL.
    #[serde(default = "default_acl_ttl")]
    pub token_ttl: GoDuration,
    /// Legacy TTL.
    #[serde(default)]
    pub ttl: Option<GoDuration>,
    /// Apply `list` policy to KV listing.
    #[serde(default)]
    pub enable_key_list_policy: bool,
    /// Replicate tokens from the primary datacenter.
    #[serde(default)]
    pub enable_token_replication: bool,
    /// Persist tokens set through the API.
    #[serde(default)]
    pub enable_token_persistence: bool,
    /// Tokens.
    #[serde(default)]
    pub tokens: AclTokens,
    /// Enterprise; accepted and ignored.
    #[serde(default)]
    pub msp_disable_bootstrap: bool,
}

fn default_acl_default_policy() -> String {
    "allow".to_string()
}
fn default_acl_down_policy() -> String {
    "extend-cache".to_string()
}
fn default_acl_ttl() -> GoDuration {
    secs(30)
}

impl Default for AclConfig {
    fn default() -> Self {
        AclConfig {
            enabled: false,
            default_policy: default_acl_default_policy(),
            down_policy: default_acl_down_policy(),
            policy_ttl: default_acl_ttl(),
            role_ttl: default_acl_ttl(),
            token_ttl: default_acl_ttl(),
            ttl: None,
            enable_key_list_policy: false,
            enable_token_replication: false,
            enable_token_persistence: false,
            tokens: AclTokens::default(),
            msp_disable_bootstrap: false,
        }
    }
}

/// `acl { tokens { } }` (old names kept as their own keys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclTokens {
    /// Bootstrap management token.
    #[serde(default)]
    pub initial_management: String,
    /// Old name of `initial_management`.
    #[serde(default)]
    pub master: String,
    /// Token for requests without one.
    #[serde(default)]
    pub default: String,
    /// Token the agent uses for its own operations.
    #[serde(default)]
    pub agent: String,
    /// Break-glass token for agent endpoints.
    #[serde(default)]
    pub agent_recovery: String,
    /// Old name of `agent_recovery`.
    #[serde(default)]
    pub agent_master: String,
    /// Replication token.
    #[serde(default)]
    pub replication: String,
    /// Token for DNS lookups.
    #[serde(default)]
    pub dns: String,
    /// Token for services and checks defined in config files.
    #[serde(default)]
    pub config_file_service_registration: String,
    /// Enterprise; accepted and ignored.
    #[serde(default)]
    pub managed_service_provider: Vec<Value>,
}

/// `tls { }`: parsed for compatibility (TLS listeners are not implemented yet).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Settings every section inherits.
    #[serde(default)]
    pub defaults: TlsSection,
    /// Server RPC.
    #[serde(default)]
    pub internal_rpc: TlsSection,
    /// HTTPS API.
    #[serde(default)]
    pub https: TlsSection,
    /// gRPC.
    #[serde(default)]
    pub grpc: TlsSection,
}

/// One `tls { <section> { } }` block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// CA bundle.
    #[serde(default)]
    pub ca_file: String,
    /// Directory of CA certificates.
    #[serde(default)]
    pub ca_path: String,
    /// Certificate.
    #[serde(default)]
    pub cert_file: String,
    /// Private key.
    #[serde(default)]
    pub key_file: String,
    /// `TLSv1_0` .. `TLSv1_3`.
    #[serde(default)]
    pub tls_min_version: String,
    /// Cipher suites, comma separated.
    #[serde(default)]
    pub tls_cipher_suites: String,
    /// Require client certificates.
    #[serde(default)]
    pub verify_incoming: Option<bool>,
    /// Verify server certificates.
    #[serde(default)]
    pub verify_outgoing: Option<bool>,
    /// Check `server.<dc>.<domain>` in server certificates.
    #[serde(default)]
    pub verify_server_hostname: Option<bool>,
    /// Use the auto-encrypt certificate for gRPC.
    #[serde(default)]
    pub use_auto_cert: Option<bool>,
}

/// `telemetry { }`: parsed for compatibility; only Prometheus retention is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Keep Prometheus metrics this long (0 = Prometheus endpoint off).
    #[serde(default)]
    pub prometheus_retention_time: GoDuration,
    /// Leave the hostname out of metric names.
    #[serde(default)]
    pub disable_hostname: bool,
    /// Prefix of every metric.
    #[serde(default = "default_metrics_prefix")]
    pub metrics_prefix: String,
    /// Allow metrics not matched by `prefix_filter`.
    #[serde(default = "yes")]
    pub filter_default: bool,
    /// `+prefix` / `-prefix` rules.
    #[serde(default)]
    pub prefix_filter: Vec<String>,
    /// statsd sink.
    #[serde(default)]
    pub statsd_address: String,
    /// statsite sink.
    #[serde(default)]
    pub statsite_address: String,
    /// DogStatsD sink.
    #[serde(default)]
    pub dogstatsd_addr: String,
    /// DogStatsD tags.
    #[serde(default)]
    pub dogstatsd_tags: Vec<String>,
    /// Retry sinks that failed to connect.
    #[serde(default = "yes")]
    pub retry_failed_connection: bool,
    /// Host metrics.
    #[serde(default)]
    pub enable_host_metrics: bool,
    /// Per-tenancy usage metrics off.
    #[serde(default)]
    pub disable_per_tenancy_usage_metrics: bool,
    /// Circonus API token.
    #[serde(default)]
    pub circonus_api_token: String,
    /// Circonus API app.
    #[serde(default)]
    pub circonus_api_app: String,
    /// Circonus API URL.
    #[serde(default)]
    pub circonus_api_url: String,
    /// Circonus submission interval.
    #[serde(default)]
    pub circonus_submission_interval: String,
    /// Circonus submission URL.
    #[serde(default)]
    pub circonus_submission_url: String,
    /// Circonus check ID.
    #[serde(default)]
    pub circonus_check_id: String,
    /// Circonus metric activation.
    #[serde(default)]
    pub circonus_check_force_metric_activation: String,
    /// Circonus instance ID.
    #[serde(default)]
    pub circonus_check_instance_id: String,
    /// Circonus search tag.
    #[serde(default)]
    pub circonus_check_search_tag: String,
    /// Circonus display name.
    #[serde(default)]
    pub circonus_check_display_name: String,
    /// Circonus tags.
    #[serde(default)]
    pub circonus_check_tags: String,
    /// Circonus broker ID.
    #[serde(default)]
    pub circonus_broker_id: String,
    /// Circonus broker select tag.
    #[serde(default)]
    pub circonus_broker_select_tag: String,
}

fn default_metrics_prefix() -> String {
    "consul".to_string()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            prometheus_retention_time: GoDuration::default(),
            disable_hostname: false,
            metrics_prefix: default_metrics_prefix(),
            filter_default: true,
            prefix_filter: Vec::new(),
            statsd_address: String::new(),
            statsite_address: String::new(),
            dogstatsd_addr: String::new(),
            dogstatsd_tags: Vec::new(),
            retry_failed_connection: true,
            enable_host_metrics: false,
            disable_per_tenancy_usage_metrics: false,
            circonus_api_token: String::new(),
            circonus_api_app: String::new(),
            circonus_api_url: String::new(),
            circonus_submission_interval: String::new(),
            circonus_submission_url: String::new(),
            circonus_check_id: String::new(),
            circonus_check_force_metric_activation: String::new(),
            circonus_check_instance_id: String::new(),
            circonus_check_search_tag: String::new(),
            circonus_check_display_name: String::new(),
            circonus_check_tags: String::new(),
            circonus_broker_id: String::new(),
            circonus_broker_select_tag: String::new(),
        }
    }
}

/// `connect { }`: parsed for compatibility (no service mesh).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// Connect on.
    #[serde(default)]
    pub enabled: bool,
    /// CA provider name.
    #[serde(default)]
    pub ca_provider: String,
    /// CA provider settings (kept opaque).
    #[serde(default)]
    pub ca_config: Option<Value>,
    /// WAN federation through mesh gateways.
    #[serde(default)]
    pub enable_mesh_gateway_wan_federation: bool,
}
