//! Consul's DNS interface (consul.md §3): `NAME.service.consul`, `NODE.node.consul`,
//! `HEX.addr.consul`, … over UDP and TCP on `-dns-port` (8600).
//!
//! Split so that the logic is testable without sockets:
//! - [`query`]: question name → [`query::Lookup`] (pure);
//! - [`answer`]: store snapshot + lookup → records and RCODE (pure);
//! - [`cache`]: healthy instances per service, kept while the service is unchanged;
//! - [`server`]: the hickory `RequestHandler` that reads the agent's store,
//!   applies the UDP limits and sends the reply (TCP);
//! - [`udp`]: the UDP loop, answering in place;
//! - [`remote`]: client agents' questions answered by a server over RPC.
//!
//! Not yet here: connect/ingress/virtual forms, cross-DC lookups.

/// Whether `name` can be looked up by DNS (Consul: alphanumerics and dashes).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Consul's warning for a service registered under a name DNS cannot serve.
pub fn warn_if_not_dns_label(service: &str) {
    if !is_dns_label(service) {
        tracing::warn!(
            service,
            "agent: Service name will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes."
        );
    }
}

pub mod answer;
pub mod cache;
pub mod query;
pub mod recursor;
pub mod remote;
pub mod server;
pub mod udp;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Config;

/// `dns_config { soa { } }` timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Soa {
    /// SOA expire.
    pub expire: u32,
    /// SOA minimum; also the TTL of the SOA record (negative caching).
    pub min_ttl: u32,
    /// SOA refresh.
    pub refresh: u32,
    /// SOA retry.
    pub retry: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Soa {
            expire: 86400,
            min_ttl: 0,
            refresh: 3600,
            retry: 600,
        }
    }
}

/// What the DNS server needs from the configuration (`domain`, `alt_domain`, `dns_config`).
/// Serializable: client agents send theirs along with forwarded questions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DnsOptions {
    /// Primary zone, lowercase with the trailing dot (`consul.`).
    pub domain: String,
    /// Second zone answered like the first ("" = none).
    pub alt_domain: String,
    /// TTL of node records.
    pub node_ttl: Duration,
    /// TTL of service records: exact name, `prefix*` (longest wins) or `*`.
    pub service_ttl: BTreeMap<String, Duration>,
    /// Drop warning instances too, not only critical ones.
    pub only_passing: bool,
    /// Set TC when a UDP answer was cut to `udp_answer_limit` records.
    pub enable_truncate: bool,
    /// Records in a UDP answer without EDNS (capped at 8 like Consul).
    pub udp_answer_limit: usize,
    /// Cap of A/AAAA answers (0 = none).
    pub a_record_limit: usize,
    /// Node meta as TXT in the additional section of A/AAAA/SRV answers.
    pub enable_additional_node_meta_txt: bool,
    /// SOA timers.
    pub soa: Soa,
    /// Accepted; hickory always compresses names (no-op for now).
    pub disable_compression: bool,
    /// Servers answer from their own store without asking the leader...
    pub allow_stale: bool,
    /// ...unless they last heard from it longer ago than this (`max_stale`).
    pub max_stale: Duration,
    /// Upstream servers for names outside our zones (`recursors`, `-recursor`).
    pub recursors: Vec<std::net::SocketAddr>,
    /// Ask them in random order (`recursor_strategy = "random"`), not in turn.
    pub recursor_random: bool,
    /// How long one recursor may take (`recursor_timeout`).
    pub recursor_timeout: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            domain: "consul.".into(),
            alt_domain: String::new(),
            node_ttl: Duration::ZERO,
            service_ttl: BTreeMap::new(),
            only_passing: false,
            enable_truncate: false,
            udp_answer_limit: 3,
            a_record_limit: 0,
            enable_additional_node_meta_txt: true,
            soa: Soa::default(),
            disable_compression: false,
            allow_stale: true,
            max_stale: Duration::from_secs(87600 * 3600),
            recursors: Vec::new(),
            recursor_random: false,
            recursor_timeout: Duration::from_secs(2),
        }
    }
}

impl DnsOptions {
    /// From the loaded configuration.
    pub fn from_config(config: &Config) -> DnsOptions {
        let d = &config.dns_config;
        DnsOptions {
            domain: zone(&config.domain),
            alt_domain: zone(&config.alt_domain),
            node_ttl: d.node_ttl.get(),
            service_ttl: d
                .service_ttl
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.get()))
                .collect(),
            only_passing: d.only_passing,
            enable_truncate: d.enable_truncate,
            udp_answer_limit: d.udp_answer_limit as usize,
            a_record_limit: d.a_record_limit as usize,
            enable_additional_node_meta_txt: d.enable_additional_node_meta_txt,
            soa: Soa {
                expire: d.soa.expire,
                min_ttl: d.soa.min_ttl,
                refresh: d.soa.refresh,
                retry: d.soa.retry,
            },
            disable_compression: d.disable_compression,
            allow_stale: d.allow_stale,
            max_stale: d.max_stale.get(),
            recursors: config
                .recursors
                .iter()
                .filter_map(|r| {
                    let parsed = recursor::parse_recursor(r);
                    if parsed.is_none() {
                        tracing::warn!(recursor = %r, "dns: ignoring a recursor that is not ip[:port]");
                    }
                    parsed
                })
                .collect(),
            recursor_random: d.recursor_strategy == "random",
            recursor_timeout: d.recursor_timeout.get(),
        }
    }

    /// TTL of a service's records: exact name, else the longest matching
    /// `prefix*`, else `*`, else 0 (Consul's `GetTTLForService`).
    pub fn service_ttl(&self, service: &str) -> Duration {
        let service = service.to_ascii_lowercase();
        if let Some(ttl) = self.service_ttl.get(&service) {
            return *ttl;
        }
        self.service_ttl
            .iter()
            .filter_map(|(k, v)| {
                let prefix = k.strip_suffix('*')?;
                service.starts_with(prefix).then_some((prefix.len(), *v))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, v)| v)
            .unwrap_or(Duration::ZERO)
    }
}

/// A zone name as matched: lowercase, with the trailing dot ("" stays "").
fn zone(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dns_labels_are_alphanumerics_and_dashes() {
        assert!(super::is_dns_label("web-3"));
        assert!(!super::is_dns_label("web_3"));
        assert!(!super::is_dns_label("web.3"));
        assert!(!super::is_dns_label(""));
    }

    use super::*;

    #[test]
    fn service_ttl_exact_prefix_wildcard() {
        let mut o = DnsOptions::default();
        assert_eq!(o.service_ttl("web"), Duration::ZERO);
        o.service_ttl.insert("*".into(), Duration::from_secs(5));
        o.service_ttl.insert("db*".into(), Duration::from_secs(10));
        o.service_ttl
            .insert("db-main*".into(), Duration::from_secs(20));
        o.service_ttl.insert("web".into(), Duration::from_secs(30));
        assert_eq!(o.service_ttl("web"), Duration::from_secs(30));
        assert_eq!(o.service_ttl("WEB"), Duration::from_secs(30));
        assert_eq!(o.service_ttl("web2"), Duration::from_secs(5));
        assert_eq!(o.service_ttl("db-replica"), Duration::from_secs(10));
        assert_eq!(o.service_ttl("db-main-1"), Duration::from_secs(20));
    }

    #[test]
    fn zone_names_are_normalized() {
        assert_eq!(zone("Consul"), "consul.");
        assert_eq!(zone("example.org."), "example.org.");
        assert_eq!(zone(""), "");
    }
}
